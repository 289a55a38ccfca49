"""Debian's headless Chromium driven by Selenium, cut off from every network but loopback.

`start_chromium` starts it; `Browser` is what a test holds: every WebDriver call runs in a
thread (`await browser.call(fn)`), because the API under test is served on the test's own event
loop, which a blocking call would stop. The performance log records every request the page
sends (`requested_urls`), so a test can show that nothing left the machine (`leaving_the_machine`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from selenium.webdriver import Chrome, ChromeOptions
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

T = TypeVar("T")

INSTALL_HINT = (
    "Chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)"
)
# Debian's paths first, then whatever PATH finds.
CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "chromedriver")
WIDE, NARROW = 1280, 390
HEIGHT = 900
# Every host but loopback goes to a proxy on the discard port, where nothing listens (Chromium
# never proxies loopback), and no name but localhost resolves: a request meant for another
# machine fails on this one. Background services that would call home are off.
OFFLINE = (
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
)
HEADLESS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage")
# Schemes that never reach a network: the page's own data, or the browser's.
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome", "chrome-error"})


def which(candidates: tuple[str, ...]) -> str | None:
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    return None


def find_chromium() -> tuple[str, str] | None:
    """(chromium, chromedriver), or None when either is missing."""
    binary, driver = which(CHROMIUM), which(CHROMEDRIVER)
    return (binary, driver) if binary and driver else None


def start_chromium(binary: str, driver: str) -> Chrome:
    """Headless Chromium, offline but for loopback, logging the page's network and console."""
    options = ChromeOptions()
    options.binary_location = binary
    for arg in (*HEADLESS, *OFFLINE, f"--window-size={WIDE},{HEIGHT}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # Both paths are given, so Selenium never looks for (or downloads) a driver itself.
    service = Service(executable_path=driver, env={**os.environ, "SE_OFFLINE": "true"})
    return Chrome(options=options, service=service)


def metrics(width: int, height: int) -> dict[str, Any]:
    """A viewport of exactly `width` x `height` CSS pixels; a phone's below 600 px wide."""
    return {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}


def read_log(driver: Chrome, name: str) -> list[dict[str, Any]]:
    """Chromium's `name` log ("performance", "browser") since it was last read; reading empties it."""
    entries: list[dict[str, Any]] = driver.get_log(name)  # type: ignore[no-untyped-call]  # selenium leaves it untyped
    return entries


def on_loopback(url: str) -> bool:
    """The URL stays on this machine: loopback host, or a scheme that reaches no network."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def leaving_the_machine(urls: list[str]) -> list[str]:
    """The URLs of `urls` that name another machine."""
    return [u for u in urls if not on_loopback(u)]


@dataclass
class Browser:
    """One test's view of the session's Chromium; `shots` is where screenshots go."""

    driver: Chrome
    shots: Path
    # What the logs held since the test began (reading a Chromium log empties it).
    urls: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    # URL -> Chromium's reason, for each request that failed (Network.loadingFailed).
    failed: dict[str, str] = field(default_factory=dict)
    _ids: dict[str, str] = field(default_factory=dict)

    async def call(self, fn: Callable[[Chrome], T]) -> T:
        """fn(driver) in a thread, so the loop keeps serving the API while it waits."""
        return await asyncio.to_thread(fn, self.driver)

    async def open(self, url: str) -> None:
        """Load `url` and wait for its load event."""
        await self.call(lambda d: d.get(url))

    async def wait_for(self, css: str, *, within: float = 30.0) -> WebElement:
        """The first element matching `css` once it is visible; fails after `within` seconds."""
        condition = expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css))

        def wait(d: Chrome) -> WebElement:
            found: WebElement = WebDriverWait(d, within).until(condition, f"no visible {css!r}")
            return found

        return await self.call(wait)

    async def until(
        self, condition: Callable[[Chrome], T], *, within: float = 30.0, what: str = ""
    ) -> T:
        """condition(driver), polled until it returns something truthy, which it returns; fails
        naming `what` after `within` seconds (for what changes without a reload)."""

        def wait(d: Chrome) -> T:
            found: T = WebDriverWait(d, within).until(condition, f"not within {within}s: {what}")
            return found

        return await self.call(wait)

    async def size(self, width: int, height: int = HEIGHT) -> None:
        """Lay the page out exactly `width` CSS pixels wide (WIDE, NARROW), as a phone would."""
        override = metrics(width, height)
        await self.call(lambda d: d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", override))

    async def requested_urls(self) -> list[str]:
        """Every URL the page asked for since the test began (Network.requestWillBeSent), in
        order; also notes in `failed` why each failed request failed."""
        entries = await self.call(lambda d: read_log(d, "performance"))
        for entry in entries:
            message = json.loads(entry["message"])["message"]
            method, params = message.get("method"), message.get("params", {})
            if method == "Network.requestWillBeSent":
                self.urls.append(params["request"]["url"])
                self._ids[params["requestId"]] = params["request"]["url"]
            elif method == "Network.loadingFailed":
                self.failed[self._ids.get(params["requestId"], "?")] = params["errorText"]
        return list(self.urls)

    async def console(self) -> list[dict[str, Any]]:
        """The console's messages since the test began: level, source, message (CSP refusals
        among them, at level SEVERE)."""
        self.messages.extend(await self.call(lambda d: read_log(d, "browser")))
        return list(self.messages)

    async def screenshot(self, name: str) -> Path:
        """The viewport as `<shots>/<name>.png`; returns its path."""
        path = self.shots / f"{name}.png"
        self.shots.mkdir(parents=True, exist_ok=True)
        saved = await self.call(lambda d: d.save_screenshot(str(path)))
        assert saved, f"no screenshot saved at {path}"
        return path

    async def reset(self) -> None:
        """A blank page, no cookies, a viewport of WIDE x HEIGHT, and the logs emptied: every
        test starts from the same place."""

        def clear(d: Chrome) -> None:
            d.get("about:blank")
            d.execute_cdp_cmd("Network.clearBrowserCookies", {})
            d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics(WIDE, HEIGHT))
            read_log(d, "performance")
            read_log(d, "browser")

        await self.call(clear)
        self.urls.clear()
        self.messages.clear()
        self.failed.clear()
        self._ids.clear()
