"""/docs and /redoc in Debian's headless Chromium, with no network but loopback: they render from
this server alone, under their Content-Security-Policy, and Swagger UI's Authorize still works."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from selenium.webdriver.common.by import By

from api.docs_pages import DOCS_CSP, REDOC_CSP
from tests.support.browser import NARROW, Browser, leaving_the_machine


def refusals(messages: list[dict[str, Any]]) -> list[str]:
    """The console's Content-Security-Policy refusals and errors (ReDoc's warnings about the
    document's schemas are neither)."""
    return [
        str(m["message"])
        for m in messages
        if m["level"] == "SEVERE" or "Content Security Policy" in str(m["message"])
    ]


async def click(browser: Browser, css: str) -> None:
    element = await browser.wait_for(css)
    await browser.call(lambda d: element.click())


async def test_swagger_ui_renders_offline_from_this_server_alone(
    browser: Browser, api_url: str, http: httpx.AsyncClient
) -> None:
    """/docs lists the API's operations with every other host unreachable: each request the page
    sends stays on loopback, the page carries its policy, and the policy refuses nothing."""
    r = await http.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == DOCS_CSP
    await browser.open(f"{api_url}/docs")
    await browser.wait_for(".opblock")
    await browser.wait_for(".btn.authorize")
    titles = await browser.call(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    assert len(titles) > 20
    await browser.screenshot("docs")
    await browser.size(NARROW)
    await browser.wait_for(".opblock")
    await browser.screenshot("docs-390")
    urls = await browser.requested_urls()
    assert f"{api_url}/openapi.json" in urls
    assert any("/docs/static/swagger-ui-bundle.js?v=" in u for u in urls), urls
    assert leaving_the_machine(urls) == []
    assert refusals(await browser.console()) == []


async def test_swagger_ui_authorize_sends_the_key_as_a_bearer_token(
    browser: Browser, api_url: str, keys: dict[str, str]
) -> None:
    """A key entered in Swagger UI's Authorize dialog goes with "Try it out": GET /tools, which
    needs a key, answers 200 in the page, and the policy refuses none of it."""
    await browser.open(f"{api_url}/docs#/tools")
    await click(browser, ".btn.authorize")
    field = await browser.wait_for(".modal-ux input")
    await browser.call(lambda d: field.send_keys(keys["vic"]))
    await click(browser, ".modal-ux .auth-btn-wrapper .authorize")
    await click(browser, ".modal-ux .btn-done")
    await click(browser, "#operations-tools-list_tools_tools_get .opblock-summary")
    await click(browser, "#operations-tools-list_tools_tools_get .try-out__btn")
    await click(browser, "#operations-tools-list_tools_tools_get .execute")
    status = await browser.wait_for(".live-responses-table tr.response .response-col_status")
    assert (await browser.call(lambda d: status.text)).startswith("200")
    curl = await browser.until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".curl-command").text, what="the curl command"
    )
    assert f"Authorization: Bearer {keys['vic']}" in curl
    await browser.screenshot("docs-authorized")
    assert leaving_the_machine(await browser.requested_urls()) == []
    assert refusals(await browser.console()) == []


async def test_redoc_renders_offline_from_this_server_alone(
    browser: Browser, api_url: str, http: httpx.AsyncClient
) -> None:
    """/redoc shows the API's title and its menu with every other host unreachable: each
    request stays on loopback (Redocly's logo, fetched from a CDN by default, is not), the page
    carries its policy, and the policy refuses nothing, its search worker included."""
    r = await http.get("/redoc")
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == REDOC_CSP
    await browser.open(f"{api_url}/redoc")
    title = await browser.wait_for(".api-content h1")
    assert (await browser.call(lambda d: title.text)).startswith("Stepgate")
    await browser.wait_for(".menu-content li")
    search = await browser.wait_for(".menu-content input")
    await browser.call(lambda d: search.send_keys("approvals"))
    await browser.wait_for("[data-role='search:results'] li")
    await browser.screenshot("redoc")
    await browser.size(NARROW)
    await browser.wait_for(".api-content h1")
    await browser.screenshot("redoc-390")
    urls = await browser.requested_urls()
    assert any(u.startswith("blob:") for u in urls), "ReDoc's search worker did not start"
    assert leaving_the_machine(urls) == []
    assert refusals(await browser.console()) == []


async def test_the_network_log_sees_a_request_that_would_leave(
    browser: Browser, api_url: str
) -> None:
    """Control: a page with no policy (a JSON route) that fetches from another host shows that
    URL in the network log, and the browser's dead proxy, not this machine's network, refuses it."""
    await browser.open(f"{api_url}/healthz")
    fetch: Callable[[Any], object] = lambda d: d.execute_script(  # noqa: E731
        "return fetch('https://cdn.example.net/x.js', {mode: 'no-cors'})"
        ".then(() => 'loaded', () => 'failed');"
    )
    assert await browser.call(fetch) == "failed"
    assert leaving_the_machine(await browser.requested_urls()) == ["https://cdn.example.net/x.js"]
    assert browser.failed["https://cdn.example.net/x.js"] == "net::ERR_PROXY_CONNECTION_FAILED"
