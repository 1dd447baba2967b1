"""/healthz (alive) and /readyz (database, migrations applied, a worker seen recently)."""

import datetime

import pytest
from django.core.management import call_command
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from ops import health
from ops.beats import beats


def seen_worker(seconds_ago: float) -> None:
    at = timezone.now() - datetime.timedelta(seconds=seconds_ago)
    beats().worker(worker="w", backend="database", started_at=at, at=at)


def test_healthz_answers_without_the_database(client):
    response = client.get("/healthz")
    assert (response.status_code, response.content) == (200, b"ok")


@pytest.mark.django_db
def test_readyz_shows_the_worker_but_a_web_server_stays_ready_without_one(client, settings):
    # given the last worker was seen ten minutes ago (a worker deploy, a crash)
    settings.READYZ_WORKER_SECONDS = 60
    seen_worker(seconds_ago=600)
    # then the web server stays in rotation, saying what it saw of the workers
    stale = client.get("/readyz")
    assert stale.status_code == 200
    assert stale.json() == {
        "ready": True,
        "checks": {"database": "ok", "migrations": "ok", "worker": "no worker seen for 600 s"},
    }
    # and a check that asks for a worker (?worker=1) is not ready
    assert client.get("/readyz?worker=1").status_code == 503
    seen_worker(seconds_ago=5)
    ready = client.get("/readyz?worker=1")
    assert (ready.status_code, ready.json()["checks"]["worker"]) == (200, "ok")


@pytest.mark.django_db
def test_readyz_without_a_needed_worker(client, settings):
    settings.READYZ_WORKER_SECONDS = 0
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_readyz_is_not_ready_while_migrations_are_missing(client, settings, monkeypatch):
    settings.READYZ_WORKER_SECONDS = 0
    monkeypatch.setattr(health, "_schema_ready", False)
    call_command("migrate", "ops", "zero", verbosity=0)
    try:
        missing = client.get("/readyz")
        assert missing.status_code == 503
        ops_migrations = sum(1 for app, _ in MigrationLoader(None).disk_migrations if app == "ops")
        assert missing.json()["checks"]["migrations"] == (
            f"{ops_migrations} migration(s) not applied"
        )
    finally:
        call_command("migrate", "ops", verbosity=0)
    assert client.get("/readyz").status_code == 200
