"""Browser tests: Playwright for Python driving Debian's Chromium against pytest-django's live server.

Needs `apt-get install chromium` and `pip install playwright` (no `playwright install`: the
system Chromium is used). Without them the tests skip with a loud reason, except in CI
(CI=true), where they fail.

Screenshots of every page go to test-artifacts/screenshots/ at the repository root; the ones the
README shows are refreshed in docs/screenshots/ too (`tour.shot(..., docs=True)`).
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]
INSTALL_HINT = "install chromium: apt-get install chromium; pip install playwright"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
# How long a step may wait for the page (ms); a 1,000-code job takes about a second.
TIMEOUT_MS = 20_000

_skipped_because: list[str] = []


def pytest_terminal_summary(terminalreporter):
    """A skip in a quiet run is easy to miss: say it at the end, in bold."""
    if _skipped_because:
        terminalreporter.write_line(
            f"BROWSER TESTS SKIPPED: {_skipped_because[0]}", yellow=True, bold=True
        )


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Chromium and Playwright, or a loud skip (a failure in CI)."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright for Python is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} is missing")
    if missing:
        reason = f"{'; '.join(missing)}: {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
        _skipped_because.append(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="package")
def browser(chromium_executable):
    """One headless Chromium for the browser tests.

    Package-scoped, not session-scoped: Playwright's sync API keeps an asyncio loop marked as
    running on the main thread while it is started, which makes Django refuse ORM calls there
    (SynchronousOnlyOperation). So Playwright stops as soon as the last browser test is done,
    and DJANGO_ALLOW_ASYNC_UNSAFE is set only while it runs, never for the rest of the suite.
    """
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(autouse=True)
def jobs_where_the_test_database_is(settings):
    """Background jobs run right after the request's commit, in the live server (the progress
    page still shows them); worker processes have tests of their own (tests/ops/test_worker.py)."""
    settings.PROMOCODES_BACKGROUND_FROM = 500
    settings.JOBS_INLINE = True


class Tour:
    """One page of the browser and what it saw: console errors, page errors, every request."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(base_url).netloc
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.requested: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: uncaught {exc}"))
        page.on("request", self._request)

    def _console(self, message) -> None:
        if message.type != "error":
            return
        # The browser asks for /favicon.ico by itself when a page names no icon, and the admin
        # has none: that 404 is the browser's guess, not something a page asked for.
        if urlsplit(message.location.get("url", "")).path == "/favicon.ico":
            return
        self.errors.append(f"{self.page.url}: console error: {message.text}")

    def _request(self, request) -> None:
        self.requested.append(request.url)
        parts = urlsplit(request.url)
        # data: and blob: URLs are read from the page itself, not fetched from a network.
        if parts.scheme in ("data", "blob"):
            return
        if parts.scheme not in ("http", "https") or parts.netloc != self.host:
            self.foreign.append(f"{self.page.url}: requested {request.url}")

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str):
        response = self.page.goto(self.url(path))
        assert response is not None and response.ok, f"{path}: HTTP {response and response.status}"
        return response

    def assert_clean(self) -> None:
        """No console error, no uncaught exception and nothing fetched from another host."""
        assert not self.errors, "\n".join(self.errors)
        assert not self.foreign, "\n".join(self.foreign)

    def shot(self, name: str, *, full_page: bool = True, docs: bool = False) -> Path:
        """Screenshot of the page (whole, or what the window shows) as
        test-artifacts/screenshots/NAME.png (and docs/screenshots/NAME.png, which the README
        shows, when `docs`), after checking that the page (and every one before it) stayed
        clean."""
        assert re.fullmatch(r"[0-9a-z-]+", name), name
        self.assert_clean()
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        if docs:
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            (DOCS_SCREENSHOTS / path.name).write_bytes(path.read_bytes())
        return path


@pytest.fixture
def tour(browser, live_server) -> Iterator[Tour]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        base_url=live_server.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    tour = Tour(page, live_server.url)
    try:
        yield tour
    finally:
        context.close()
