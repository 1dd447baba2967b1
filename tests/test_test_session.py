"""A test run cleans up after itself: its SQLite database and the beat files beside it."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_test_run_on_sqlite_leaves_no_files_in_the_temporary_directory(tmp_path):
    # given a temporary directory of its own, and a test whose worker process writes beats
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "PYTEST_ADDOPTS"}}
    # when a test session runs in it
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         f"--basetemp={tmp_path / 'pytest'}",
         "tests/ops/test_worker.py::test_a_worker_process_runs_a_queued_job_to_its_end[database]"],
        cwd=ROOT, env={**env, "TMPDIR": str(temporary)}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    # then its database, the database's journal and the beat files are gone with it
    assert sorted(p.name for p in temporary.iterdir()) == []
