"""Production settings refuse to start unsafe, and `check --deploy` is clean under them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOOD = {
    "DJANGO_SETTINGS_MODULE": "config.settings_production",
    "SECRET_KEY": "k3J9x-QmP2v_Lz8RwT4nY6cB1aE5sD7fG0hU9iO2pA3qS4wE5rT6yU7iO8pL9zX0",
    "ALLOWED_HOSTS": "promo.example.com",
    "DEBUG": "0",
    "DATABASE_URL": "sqlite:///:memory:",
    "METRICS_TOKEN": "m7Qx-2bVn9LpR4tW",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in GOOD}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**clean, **GOOD, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"DEBUG": "1"}, "refuse DEBUG"),
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "insecure-development-key-only-for-debug"}, "SECRET_KEY"),
        ({"SECRET_KEY": "short-key"}, "SECRET_KEY"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
    ],
)
def test_unsafe_production_settings_refuse_to_start(env, complaint):
    result = manage("check", **env)
    assert result.returncode != 0 and complaint in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        # the default networks (loopback) and no proxy hop: behind a proxy on the same host
        # every caller comes from loopback
        {"METRICS_TOKEN": ""},
        {"METRICS_TOKEN": "", "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,127.0.0.1/32"},
        {"METRICS_TOKEN": "", "METRICS_ALLOWED_NETWORKS": "::1/128"},
    ],
)
def test_metrics_open_to_a_same_host_proxy_refuse_to_start(env):
    result = manage("check", **env)
    assert result.returncode != 0 and "METRICS_TOKEN" in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"METRICS_TOKEN": "", "METRICS_ALLOWED_NETWORKS": "10.20.0.0/16"},
        {"METRICS_TOKEN": "", "METRICS_ALLOWED_NETWORKS": ""},
        {"METRICS_TOKEN": "", "TRUSTED_PROXY_HOPS": "1"},
    ],
)
def test_metrics_behind_explicit_networks_or_counted_proxies_start_without_a_token(env):
    result = manage("check", **env)
    assert result.returncode == 0, result.stderr


def test_check_deploy_is_clean():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
