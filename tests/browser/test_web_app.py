"""The approvers' web app in Debian's headless Chromium against a real API and worker, with no
network but loopback: sign in, find the gate in the inbox, modify it through the generated form,
watch the run complete without reloading, batch decisions, what a non-approver sees, forged
posts, a key rotated away, the keyboard alone, and a phone-wide screen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from tests.support.browser import NARROW, Browser, leaving_the_machine

Auth = Callable[[str], dict[str, str]]


def two_approvers(team: str) -> dict[str, Any]:
    """`prepare`, then `release` (test.sleep) behind a gate two of `team` must pass."""
    return {
        "name": "twokeys",
        "input": {"type": "object", "properties": {"ref": {"type": "string"}}},
        "steps": [
            {"id": "prepare", "tool": "test.echo", "with": {"ref": "${input.ref}"}},
            {
                "id": "release",
                "needs": ["prepare"],
                "tool": "test.sleep",
                "with": {"seconds": 1.0},
                "approval": {
                    "approvers": [f"role:{team}"],
                    "quorum": 2,
                    "review": "Release **${input.ref}**? <script>alert(1)</script>",
                },
            },
        ],
    }


async def open_gate(http: httpx.AsyncClient, workflow_id: str, auth: Auth) -> None:
    async def probe() -> list[str]:
        status = (await http.get(f"/workflows/{workflow_id}", headers=auth("root"))).json()
        return [g["gate"] for g in status.get("open_gates", [])]

    await eventually(probe, lambda gates: bool(gates), f"{workflow_id} at its gate")


async def sign_in(browser: Browser, api_url: str, key: str, then: str = "/ui/inbox") -> None:
    """Type the key and press Enter, as a person at the keyboard would."""
    await browser.open(f"{api_url}/ui/signin?next={then}")
    field = await browser.wait_for("#key")
    await browser.call(lambda d: field.send_keys(key, Keys.ENTER))
    await browser.wait_for("form.signout")


async def click(browser: Browser, css: str) -> None:
    element = await browser.wait_for(css)
    await browser.call(lambda d: element.click())


async def text_of(browser: Browser, css: str) -> str:
    element = await browser.wait_for(css)
    return str(await browser.call(lambda d: element.text))


async def fits(browser: Browser) -> bool:
    """The page needs no sideways scrolling at the current width."""
    width = await browser.call(
        lambda d: d.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
    )
    return bool(width[0] <= width[1] + 1)


UNLABELLED = """
return [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
  .filter(e => e.offsetParent !== null)
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map(e => e.outerHTML.slice(0, 80));
"""


async def unlabelled(browser: Browser) -> list[str]:
    return list(await browser.call(lambda d: d.execute_script(UNLABELLED)))


async def test_sign_in_modify_through_the_form_and_watch_the_run_complete_live(
    browser: Browser,
    api_url: str,
    http: httpx.AsyncClient,
    start_run: StartRun,
    keys: dict[str, str],
    team: str,
    as_: Auth,
) -> None:
    """Alice signs in, sees the gate in the inbox, modifies it through the form generated from
    the tool's input schema (a difference first), and watches the run page: when Bob's approval
    makes the quorum, the page shows the run completed without being reloaded. Every request
    stayed on this machine, and every control has a label."""
    workflow_id = await start_run(two_approvers(team), {"ref": "v7"}, who="root")
    await open_gate(http, workflow_id, as_)
    await sign_in(browser, api_url, keys["alice"])
    card = await text_of(browser, f'li.card[data-gate="{workflow_id}/release"]')
    assert "Release v7?" in card and "<script>" in card  # markup shown as text, never run
    assert await unlabelled(browser) == []
    await browser.screenshot("inbox")
    await click(browser, f'li.card[data-gate="{workflow_id}/release"] a.gate-link')
    seconds = await browser.wait_for('input[name="f.seconds"]')
    assert await unlabelled(browser) == []
    await browser.screenshot("gate")
    await browser.call(lambda d: (seconds.clear(), seconds.send_keys("0.5")))
    await click(browser, "#modify-fields button[type=submit]")
    diff = await text_of(browser, "table.diff")
    assert "seconds" in diff and "1.0" in diff and "0.5" in diff
    await click(browser, "button.primary")
    assert "was recorded" in await text_of(browser, "p.ok")

    await browser.open(f"{api_url}/ui/runs/{workflow_id}")
    await browser.wait_for(".runstate .state-waiting")
    await browser.call(lambda d: d.execute_script("window.stillTheSamePage = true"))
    r = await http.post(
        f"/workflows/{workflow_id}/gates/release",
        json={"action": "approve"},
        headers=as_("bob"),
    )
    assert r.status_code == 200, r.text
    await browser.wait_for(".runstate .state-completed", within=60)
    assert await browser.call(lambda d: d.execute_script("return window.stillTheSamePage"))
    await browser.screenshot("run")
    status = await wait_state(http, workflow_id, "completed", as_("root"))
    release = next(s for s in status["steps"] if s["id"] == "release")
    assert release["state"] == "succeeded"
    assert leaving_the_machine(await browser.requested_urls()) == []


async def test_batch_approve_two_gates_after_the_confirmation_page(
    browser: Browser,
    api_url: str,
    http: httpx.AsyncClient,
    start_run: StartRun,
    keys: dict[str, str],
    as_: Auth,
) -> None:
    """Two gates ticked in the inbox are listed on the confirmation page, and approved only by
    its button; both runs then complete."""
    runs = [await start_run(inp={"ref": f"batch{i}"}) for i in range(2)]
    for workflow_id in runs:
        await open_gate(http, workflow_id, as_)
    await sign_in(browser, api_url, keys["bob"])
    for workflow_id in runs:
        await click(browser, f'li.card[data-gate="{workflow_id}/release"] input[name=pick]')
    await click(browser, "button[name=action][value=approve]")
    listed = await text_of(browser, "table.list")
    assert all(workflow_id in listed for workflow_id in runs)
    for workflow_id in runs:  # nothing decided before the confirmation
        status = (await http.get(f"/workflows/{workflow_id}", headers=as_("root"))).json()
        assert status["open_gates"], workflow_id
    await click(browser, "button.primary")
    results = await text_of(browser, "table.list")
    assert results.count("approved — gate approved") == 2
    for workflow_id in runs:
        await wait_state(http, workflow_id, "completed", as_("root"))


FORGE = """
const done = arguments[arguments.length - 1];
Promise.all([
  fetch(arguments[0], {method: 'POST', body: arguments[1],
    headers: {'Content-Type': 'application/x-www-form-urlencoded'}}).then(r => r.status),
  fetch('/workflows', {credentials: 'include'}).then(r => r.status),
]).then(done);
"""


async def test_a_non_approver_sees_no_buttons_and_forged_posts_are_refused(
    browser: Browser,
    api_url: str,
    http: httpx.AsyncClient,
    start_run: StartRun,
    keys: dict[str, str],
    as_: Auth,
) -> None:
    """Vic (a viewer the gate does not name) sees the gate's subject and no decision buttons; a
    decision posted from the page without the CSRF token is a 403, the JSON API answers the page
    401, and the gate is still open."""
    workflow_id = await start_run(inp={"ref": "nv"})
    await open_gate(http, workflow_id, as_)
    await sign_in(browser, api_url, keys["vic"], f"/ui/runs/{workflow_id}/gates/release")
    assert "not among this gate's approvers" in await text_of(browser, "main")
    buttons = await browser.call(lambda d: d.find_elements(By.CSS_SELECTOR, "button[name=action]"))
    assert buttons == []
    path = f"/ui/runs/{workflow_id}/gates/release"
    codes = await browser.call(
        lambda d: d.execute_async_script(FORGE, path, "action=approve&digest=x")
    )
    assert codes == [403, 401]
    status = (await http.get(f"/workflows/{workflow_id}", headers=as_("root"))).json()
    assert [g["gate"] for g in status["open_gates"]] == ["release"]


async def test_a_key_rotated_away_while_signed_in_ends_the_session(
    browser: Browser, api_url: str, keys: dict[str, str], tmp_path: Path
) -> None:
    """Once Alice's key is gone from the keys file, the next page she opens is the sign-in page
    saying her session ended."""
    await sign_in(browser, api_url, keys["alice"])
    path = tmp_path / "keys.yaml"
    entries = [e for e in yaml.safe_load(path.read_text()) if e["principal"] != "alice"]
    path.write_text(yaml.safe_dump(entries))

    async def reopen() -> str:
        await browser.open(f"{api_url}/ui/inbox")
        return str(await browser.call(lambda d: d.current_url))

    await eventually(reopen, lambda url: "/ui/signin" in url, "sent to sign in")
    assert "session ended" in await text_of(browser, "p.notice")


async def test_keyboard_alone_and_a_phone_wide_screen(
    browser: Browser,
    api_url: str,
    http: httpx.AsyncClient,
    start_run: StartRun,
    keys: dict[str, str],
    as_: Auth,
) -> None:
    """At 390 px the inbox, the gate panel and the run page need no sideways scrolling; on the
    panel, Tab reaches the Approve button with a visible focus ring and Enter decides."""
    workflow_id = await start_run(inp={"ref": "kb"})
    await open_gate(http, workflow_id, as_)
    await browser.size(NARROW)
    await sign_in(browser, api_url, keys["alice"])
    assert await fits(browser)
    await browser.screenshot("inbox-390")
    await browser.open(f"{api_url}/ui/runs/{workflow_id}/gates/release")
    await browser.wait_for("button[value=approve]")
    assert await fits(browser)
    await browser.screenshot("gate-390")
    focused = ""
    for _ in range(40):
        await browser.call(lambda d: d.switch_to.active_element.send_keys(Keys.TAB))
        focused = await browser.call(
            lambda d: d.execute_script(
                "const e = document.activeElement;"
                "return e.value === 'approve' ? getComputedStyle(e).outlineStyle : ''"
            )
        )
        if focused:
            break
    assert focused not in ("", "none")
    await browser.call(lambda d: d.switch_to.active_element.send_keys(Keys.ENTER))
    assert "was recorded" in await text_of(browser, "p.ok")
    await browser.open(f"{api_url}/ui/runs/{workflow_id}")
    await browser.wait_for(".runstate")
    assert await fits(browser)
    await wait_state(http, workflow_id, "completed", as_("root"))


def answered(team: str) -> dict[str, Any]:
    """`check` waits at a gate whose form asks for a ticket and a risk; `use` echoes them."""
    return {
        "name": "formed",
        "steps": [
            {
                "id": "check",
                "tool": "test.echo",
                "with": {"plan": "deploy"},
                "approval": {
                    "approvers": [f"role:{team}"],
                    "review": "Give the change record",
                    "form": {
                        "type": "object",
                        "title": "Change record",
                        "required": ["ticket", "risk"],
                        "properties": {
                            "ticket": {"type": "string", "title": "Change ticket", "minLength": 3},
                            "risk": {
                                "type": "string",
                                "title": "Risk",
                                "oneOf": [
                                    {"const": "low", "title": "Low"},
                                    {"const": "high", "title": "High"},
                                ],
                            },
                            "hosts": {"type": "integer", "minimum": 1, "default": 1},
                        },
                    },
                },
            },
            {
                "id": "use",
                "needs": ["check"],
                "tool": "test.echo",
                "with": {
                    "ticket": "${steps.check.gate.response.ticket}",
                    "risk": "${steps.check.gate.response.risk}",
                },
            },
        ],
        "output": {"ticket": "${steps.use.output.ticket}", "risk": "${steps.use.output.risk}"},
    }


async def test_a_typed_form_is_answered_in_the_page_and_read_by_the_next_step(
    browser: Browser,
    api_url: str,
    http: httpx.AsyncClient,
    start_run: StartRun,
    keys: dict[str, str],
    team: str,
    as_: Auth,
) -> None:
    """The gate's form shows as labelled controls; the page will not send an approve with a
    required answer missing; answered, the next step gets the ticket and the risk."""
    workflow_id = await start_run(answered(team), {}, who="root")
    await open_gate(http, workflow_id, as_)
    await sign_in(browser, api_url, keys["alice"], f"/ui/runs/{workflow_id}/gates/check")
    ticket = await browser.wait_for('input[name="r.ticket"]')
    assert "Change record" in await text_of(browser, "fieldset.answers legend")
    assert await unlabelled(browser) == []
    await click(browser, "button[value=approve]")
    missing = await browser.call(lambda d: ticket.get_attribute("validationMessage"))
    assert missing  # the browser refused to send it: the ticket is required
    await browser.call(lambda d: ticket.send_keys("CHG-42"))
    risk = await browser.wait_for('select[name="r.risk"]')
    await browser.call(lambda d: risk.send_keys("High"))
    await browser.screenshot("gate-form")
    await click(browser, "button[value=approve]")
    assert "was recorded" in await text_of(browser, "p.ok")
    status = await wait_state(http, workflow_id, "completed", as_("root"))
    assert status["output"] == {"ticket": "CHG-42", "risk": "high"}
    decided = [e for e in status["audit"] if e.get("action") == "approve"]
    assert decided[-1]["response"] == {"ticket": "CHG-42", "risk": "high", "hosts": 1}
