"""A signed link in Debian's headless Chromium against a real API and worker: opening it twice
(a mail scanner, then the person) decides nothing; the page's form decides; the run goes on; the
link is refused afterwards; no request left the machine and the token went nowhere but its page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By

from activities.config import Settings
from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from tests.support.browser import Browser, leaving_the_machine
from tests.support.channels import channel_settings, link_for

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def api_settings(
    settings: Settings, tmp_path: Path, keys: dict[str, str], definitions: Path
) -> Settings:
    """The API tests' settings with a link key (and an empty address book)."""
    base = settings.model_copy(
        update={
            "stepgate_api_keys_file": tmp_path / "keys.yaml",
            "stepgate_definitions_dir": definitions,
        }
    )
    return channel_settings(base, tmp_path, {})


async def open_gate(http: httpx.AsyncClient, workflow_id: str, auth: Auth) -> dict[str, Any]:
    async def probe() -> list[dict[str, Any]]:
        status = (await http.get(f"/workflows/{workflow_id}", headers=auth("root"))).json()
        return list(status.get("open_gates", []))

    gates = await eventually(probe, bool, f"{workflow_id} at its gate")
    return dict(gates[0])


async def test_a_link_opened_twice_decides_nothing_its_form_decides_once(
    browser: Browser,
    api_url: str,
    http: httpx.AsyncClient,
    start_run: StartRun,
    api_settings: Settings,
    as_: Auth,
) -> None:
    """Bob's link, opened twice, shows the gate with its buttons and leaves it open; a comment
    and Approve on the page record his vote and the run completes; the link then shows that the
    gate is closed. The token appears in no request but the page's own."""
    workflow_id = await start_run(inp={"ref": "link1"})
    gate = await open_gate(http, workflow_id, as_)
    token = link_for(api_settings, gate, workflow_id, "bob")
    link = f"{api_url}/ui/links/{token}"
    for _ in range(2):
        await browser.open(link)
        await browser.wait_for("button[name=action][value=approve]")
        still = await open_gate(http, workflow_id, as_)
        assert still["state"] == "open" and still["approvals"] == []
    await browser.screenshot("link")
    comment = await browser.wait_for("#comment")
    await browser.call(lambda d: comment.send_keys("looks right"))
    approve = await browser.wait_for("button[name=action][value=approve]")
    await browser.call(lambda d: approve.click())
    recorded = await browser.wait_for("p.ok")
    assert "approve" in await browser.call(lambda d: recorded.text)
    status = await wait_state(http, workflow_id, "completed", as_("root"))
    release = next(s for s in status["steps"] if s["id"] == "release")
    assert release["gate"]["decided_by"] == "bob"

    await browser.open(link)
    refused = await browser.wait_for("p.error")
    assert "no longer open" in await browser.call(lambda d: refused.text)
    buttons = await browser.call(lambda d: d.find_elements(By.CSS_SELECTOR, "button[name=action]"))
    assert buttons == []
    urls = await browser.requested_urls()
    assert leaving_the_machine(urls) == []
    assert all("/ui/links/" in u for u in urls if token in u)
