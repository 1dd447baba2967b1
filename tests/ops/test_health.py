"""/healthz (alive) and /readyz (database, migrations applied, a worker seen recently)."""

import datetime

import pytest
from django.core.management import call_command
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
def test_readyz_wants_a_worker_seen_within_the_limit(client, settings):
    settings.READYZ_WORKER_SECONDS = 60
    seen_worker(seconds_ago=600)
    stale = client.get("/readyz")
    assert stale.status_code == 503
    assert stale.json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "worker": "no worker seen for 600 s",
    }
    seen_worker(seconds_ago=5)
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["ready"]) == (200, True)


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
        assert missing.json()["checks"]["migrations"] == "1 migration(s) not applied"
    finally:
        call_command("migrate", "ops", verbosity=0)
    assert client.get("/readyz").status_code == 200
