"""SQLite by default; DATABASE_URL picks another database (PostgreSQL runs the `postgres` tests)."""

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.core import signals
from django.core.cache import cache
from django.db import close_old_connections, connection, connections

from tests.factories import UserFactory


def pytest_collection_modifyitems(config, items):
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... to run")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_unconfigure(config):
    """The SQLite test database's directory (the database, its journal, beat files) goes with the
    run; pytest-django has dropped the database by now."""
    directory = getattr(settings, "TEST_FILES_DIR", None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache: nothing cached by one test answers another."""
    cache.clear()


def run_in_threads(fn: Callable[[Any], Any], args: list[Any]) -> list[Any]:
    """Run fn(arg) for each arg at once, each on its own thread and database connection."""

    def call(arg):
        try:
            return fn(arg)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(args)) as pool:
        return list(pool.map(call, args))


@pytest.fixture(autouse=True)
def cold_rule_caches():
    """Each test starts without compiled rule sets or remembered API tokens: the test database
    reuses ids and rules versions that an earlier test may have compiled, and a rolled-back
    token leaves without the signal that makes the process forget it."""
    from django.core.cache import cache

    from common.authentication import verified_tokens_forget
    from promotions.engine.rules import rules_forget

    rules_forget()
    verified_tokens_forget()
    cache.clear()


@pytest.fixture
def wsgi_keeps_test_connection(settings):
    """For calls through the WSGI app itself (schemathesis), as Django's test client does: the
    request's end must not close the connection that holds the test's transaction, and the host
    schemathesis sends ("localhost") is allowed."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def operator(db):
    return UserFactory(username="operator", password="secret", is_superuser=True, is_staff=True)


class Door:
    """Calls /billmgr as a BILLmanager client would, and parses each format as such a client does."""

    def __init__(self, client, authinfo: str | None = "operator:secret"):
        self.client = client
        self.authinfo = authinfo

    def raw(self, func: str, *, out: str = "bjson", method: str = "get", **params):
        params = {"func": func, "out": out, **{k: str(v) for k, v in params.items()}}
        if self.authinfo and "auth" not in params:
            params["authinfo"] = self.authinfo
        if method == "json":
            return self.client.post("/billmgr", json.dumps(params), content_type="application/json")
        if method == "post":
            return self.client.post("/billmgr", params)
        return self.client.get("/billmgr", params)

    def __call__(self, func: str, *, out: str = "bjson", **params) -> dict:
        response = self.raw(func, out=out, **params)
        assert response.status_code == 200, response.content
        return parse(out, response.content)

    def options(self, func: str, *, out: str = "bjson", **params) -> dict[str, list[tuple]]:
        """A form's option lists (slist), read as a client of that format reads them."""
        response = self.raw(func, out=out, **params)
        assert response.status_code == 200, response.content
        return parse_slist(out, response.content)


DOC_JSON = ("json", "sjson", "xjson")


def parse(out: str, body: bytes) -> dict:
    """Normalise any format into bjson's shape, the way a BILLmanager client reads each one.
    A form's option lists are left out (read them with `parse_slist`)."""
    if out == "bjson":
        answer = json.loads(body)
        answer.pop("slist", None)
        return answer
    if out in DOC_JSON:
        return from_doc_json(json.loads(body)["doc"])
    return from_xml(ET.fromstring(body))


def parse_slist(out: str, body: bytes) -> dict[str, list[tuple[str, str]]]:
    """{field: [(value, label), ...]} from bjson's `slist`, sjson's `doc.slist` or xml's
    `<slist name=...><val key=...>`."""
    if out == "bjson":
        return {
            s["name"]: [(v["key"], v["label"]) for v in s["val"]]
            for s in json.loads(body).get("slist", [])
        }
    if out in DOC_JSON:
        return {
            s["$name"]: [(v["$key"], v["$"]) for v in s.get("val", [])]
            for s in json.loads(body)["doc"].get("slist", [])
        }
    return {
        s.get("name"): [(v.get("key"), v.text or "") for v in s.findall("val")]
        for s in ET.fromstring(body).findall("slist")
    }


def _value(node: dict) -> str:
    return node.get("$", "") if isinstance(node, dict) else str(node)


def from_doc_json(doc: dict) -> dict:
    """sjson as a client reads it: values under `$`, lists told by p_elems, errors at doc.error."""
    if "error" in doc:
        err = doc["error"]
        error = {"type": err["$type"], "object": err["$object"], "msg": err["msg"]["$"]}
        error.update({k: err[k]["$"] for k in ("detail", "param") if k in err})
        return {"error": error}
    if "p_elems" in doc:
        elems = doc.get("elem", [])
        elems = elems if isinstance(elems, list) else [elems]
        return {
            "elem": [{k: _value(v) for k, v in e.items()} for e in elems],
            **{k: _value(v) for k, v in doc.items() if k != "elem"},
        }
    if "ok" in doc:
        return {"ok": True, **{k: _value(v) for k, v in doc.items() if k != "ok"}}
    if "auth" in doc:
        return {"auth": doc["auth"]["$id"], "level": doc["auth"]["$level"]}
    return {k: _value(v) for k, v in doc.items() if k != "slist"}


def from_xml(root: ET.Element) -> dict:
    assert root.tag == "doc"
    err = root.find("error")
    if err is not None:
        error = {"type": err.get("type"), "object": err.get("object"), "msg": err.findtext("msg")}
        error.update({k: err.findtext(k) for k in ("detail", "param") if err.find(k) is not None})
        return {"error": error}
    if root.find("p_elems") is not None:
        return {
            "elem": [{c.tag: c.text or "" for c in e} for e in root.findall("elem")],
            **{c.tag: c.text or "" for c in root if c.tag != "elem"},
        }
    if root.find("ok") is not None:
        return {"ok": True, **{c.tag: c.text or "" for c in root if c.tag != "ok"}}
    if root.find("auth") is not None:
        return {"auth": root.find("auth").get("id"), "level": root.find("auth").get("level")}
    return {c.tag: c.text or "" for c in root if c.tag != "slist"}


@pytest.fixture
def staff(client, operator):
    """The test client, logged in to the admin as the operator."""
    client.force_login(operator)
    return client


@pytest.fixture
def door(client, operator) -> Door:
    return Door(client)


@pytest.fixture
def anonymous_door(client, db) -> Door:
    return Door(client, authinfo=None)
