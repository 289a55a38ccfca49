"""Browser tests: the session's headless Chromium (tests/support/browser.py) against the API the
API tests serve (tests/api/conftest.py's fixtures, imported here so both use one way to serve it)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver import Chrome

from tests.api.conftest import (  # noqa: F401  (fixtures, found by name)
    api_settings,
    as_,
    definitions,
    http,
    keys,
    registry,
    serve,
    start_run,
    team,
    worker,
)
from tests.support.browser import INSTALL_HINT, Browser, find_chromium, start_chromium

# CI installs Chromium and sets this, so browser tests fail there instead of skipping without it.
# Read at import: the suite clears STEPGATE_* variables around each test.
REQUIRE_BROWSER = os.environ.get("STEPGATE_TEST_REQUIRE_BROWSER") == "1"
# Where screenshots go: this folder when set, else one of the session's temporary folders.
SCREENSHOTS = os.environ.get("STEPGATE_SCREENSHOTS")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chrome]:
    """One headless Chromium per session, offline but for loopback (skipped when it is missing,
    failed instead under STEPGATE_TEST_REQUIRE_BROWSER=1)."""
    found = find_chromium()
    if found is None:
        if REQUIRE_BROWSER:
            pytest.fail(f"{INSTALL_HINT}; STEPGATE_TEST_REQUIRE_BROWSER=1 asks for them")
        pytest.skip(INSTALL_HINT)
    driver = start_chromium(*found)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder screenshots are saved in: $STEPGATE_SCREENSHOTS, or a temporary one."""
    return Path(SCREENSHOTS) if SCREENSHOTS else tmp_path_factory.mktemp("screenshots")


@pytest.fixture
async def browser(chromium: Chrome, screenshots: Path) -> AsyncIterator[Browser]:
    """The session's Chromium for one test: fresh logs, no cookies, 1280 px wide; left so."""
    view = Browser(chromium, screenshots)
    await view.reset()
    try:
        yield view
    finally:
        await view.reset()


@pytest.fixture
def api_url(http: httpx.AsyncClient) -> str:  # noqa: F811  (the fixture imported above)
    """The base URL of the API `http` talks to (a worker runs the test's queue), for the browser."""
    return str(http.base_url).rstrip("/")
