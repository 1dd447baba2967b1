"""Test settings: the real settings with a throwaway secret and a fast password hasher."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")

from config.settings import *  # noqa: F403
from config.settings import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, as the embedded default is, not Django's shared in-memory database: its locking is
    # the real one (parallel writers, tests/common/test_sqlite_writers.py), and worker and server
    # processes started by tests open the same database. One per test run, so runs side by side
    # (CI's steps, a developer's two terminals) never share it. It lives in a directory of the
    # run's own with everything beside it (journal, beat files), removed when the run ends
    # (tests/conftest.py).
    TEST_FILES_DIR = tempfile.mkdtemp(prefix=f"promo-test-{os.getpid()}-")
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(TEST_FILES_DIR, "test.sqlite3")}
