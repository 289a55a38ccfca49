"""The web app's inbox, gate panel and decisions over real HTTP against a real worker: only the
actions a caller may take are offered, modify shows its difference first, a stale digest is
refused with the new subject, and a batch decides exactly what its confirmation listed."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from tests.api.conftest import StartRun
from tests.api.helpers import eventually, sse_events, wait_state
from tests.api.test_ui_session import csrf_of, sign_in
from tests.browser.test_web_app import answered

pytestmark = pytest.mark.asyncio


def digest_of(html: str) -> str:
    found = re.search(r'class="digest">([^<]+)<', html)
    assert found, "the page carries no digest"
    return found.group(1)


async def open_gates(
    http: httpx.AsyncClient, workflow_id: str, headers: dict[str, str]
) -> list[str]:
    status = (await http.get(f"/workflows/{workflow_id}", headers=headers)).json()
    return [g["gate"] for g in status.get("open_gates", [])]


async def open_gate(
    http: httpx.AsyncClient, workflow_id: str, headers: dict[str, str], gate: str = "release"
) -> None:
    """Wait until the run waits at `gate`."""
    await eventually(
        lambda: open_gates(http, workflow_id, headers),
        lambda gates: gate in gates,
        f"{workflow_id} at {gate}",
    )


async def test_inbox_and_gate_panel_offer_only_what_the_caller_may_do(
    http: httpx.AsyncClient,
    start_run: StartRun,
    keys: dict[str, str],
    as_: Callable[[str], dict[str, str]],
) -> None:
    """An approver sees the gate in the inbox and decision buttons on its panel; a viewer the
    gate names not sees the panel with its subject and no buttons."""
    workflow_id = await start_run(inp={"ref": "v1"})
    await open_gate(http, workflow_id, as_("root"))
    await sign_in(http, keys["alice"])
    inbox = await http.get("/ui/inbox")
    assert f'href="/ui/runs/{workflow_id}/gates/release"' in inbox.text
    panel = await http.get(f"/ui/runs/{workflow_id}/gates/release")
    assert panel.status_code == 200
    assert "Your decision" in panel.text
    for action in ("approve", "reject"):
        assert f'name="action" value="{action}"' in panel.text
    assert 'id="modify-fields"' in panel.text  # test.sleep's input schema as a form
    assert 'name="f.seconds"' in panel.text and 'type="number"' in panel.text
    live = await http.get(f"/ui/runs/{workflow_id}/gates/release/live")
    assert live.text.startswith('<div id="live">') and "release" in live.text
    # The page's live stream: the session's cookie, the run's status first.
    async with http.stream("GET", f"/ui/runs/{workflow_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        first = await anext(sse_events(stream))
    assert first["event"] == "status" and first["data"]["workflow_id"] == workflow_id

    viewer = httpx.AsyncClient(base_url=str(http.base_url), timeout=30)
    async with viewer:
        await sign_in(viewer, keys["vic"])
        seen = await viewer.get(f"/ui/runs/{workflow_id}/gates/release")
        assert seen.status_code == 200
        assert "release it?" in seen.text
        assert 'name="action"' not in seen.text
        assert "not among this gate's approvers" in seen.text
        # A forged decision from the viewer, with a good token, is refused by the gate rules.
        r = await viewer.post(
            f"/ui/runs/{workflow_id}/gates/release",
            data={"csrf": csrf_of(seen.text), "action": "approve", "digest": digest_of(seen.text)},
        )
        assert r.status_code == 403
        assert "not_authorized" in r.text or "not authorized" in r.text


async def test_modify_shows_the_difference_then_the_run_goes_on_with_it(
    http: httpx.AsyncClient,
    start_run: StartRun,
    keys: dict[str, str],
    as_: Callable[[str], dict[str, str]],
) -> None:
    """A modify through the generated form shows the change, is sent with the digest the page
    showed, and the step runs with the new input; a decision on a stale digest is a 409 page
    that shows the subject as it is now."""
    workflow_id = await start_run(inp={"ref": "v2"})
    await open_gate(http, workflow_id, as_("root"))
    await sign_in(http, keys["alice"])
    panel = await http.get(f"/ui/runs/{workflow_id}/gates/release")
    token, digest = csrf_of(panel.text), digest_of(panel.text)

    stale = await http.post(
        f"/ui/runs/{workflow_id}/gates/release",
        data={"csrf": token, "action": "approve", "digest": "0" * 64},
    )
    assert stale.status_code == 409
    assert "subject changed" in stale.text
    assert digest in stale.text  # the page shows the current subject's digest

    bad = await http.post(
        f"/ui/runs/{workflow_id}/gates/release/modify",
        data={"csrf": token, "digest": digest, "mode": "fields", "f.seconds": "soon"},
    )
    assert bad.status_code == 422
    assert "subject.seconds" in bad.text

    preview = await http.post(
        f"/ui/runs/{workflow_id}/gates/release/modify",
        data={"csrf": token, "digest": digest, "mode": "fields", "f.seconds": "0.25"},
    )
    assert preview.status_code == 200
    assert "<code>seconds</code>" in preview.text
    patch = re.search(r'name="patch" value="([^"]+)"', preview.text)
    assert patch is not None
    sent = await http.post(
        f"/ui/runs/{workflow_id}/gates/release",
        data={
            "csrf": token,
            "digest": digest,
            "action": "modify",
            "patch": patch.group(1).replace("&#34;", '"'),
            "comment": "shorter",
        },
    )
    assert sent.status_code == 303, sent.text
    status = await wait_state(http, workflow_id, "completed", as_("root"))
    modify = [e for e in status["audit"] if e.get("action") == "modify"]
    assert modify and modify[-1]["actor"] == "alice"
    assert modify[-1]["patch"] == {"seconds": 0.25}


async def test_batch_approves_exactly_the_confirmed_gates(
    http: httpx.AsyncClient,
    start_run: StartRun,
    keys: dict[str, str],
    as_: Callable[[str], dict[str, str]],
) -> None:
    """Two gates chosen in the inbox are listed on the confirmation page and approved by it;
    a third, not chosen, stays open."""
    runs = [await start_run(inp={"ref": f"b{i}"}) for i in range(3)]
    for workflow_id in runs:
        await open_gate(http, workflow_id, as_("root"))
    await sign_in(http, keys["bob"])
    inbox = await http.get("/ui/inbox")
    token = csrf_of(inbox.text)
    picks = re.findall(r'name="pick" value="([^"]+)"', inbox.text)
    chosen = [p for p in picks if p.split(" ")[0] in runs[:2]]
    assert len(chosen) == 2
    confirm = await http.post(
        "/ui/inbox/batch", data={"csrf": token, "action": "approve", "pick": chosen}
    )
    assert confirm.status_code == 200
    for workflow_id in runs[:2]:
        assert workflow_id in confirm.text
    assert runs[2] not in confirm.text
    done = await http.post(
        "/ui/inbox/batch/apply", data={"csrf": token, "action": "approve", "pick": chosen}
    )
    assert done.status_code == 200
    assert done.text.count("approved — gate") == 2
    for workflow_id in runs[:2]:
        await wait_state(http, workflow_id, "completed", as_("root"))
    status = (await http.get(f"/workflows/{runs[2]}", headers=as_("root"))).json()
    assert [g["gate"] for g in status["open_gates"]] == ["release"]


async def test_form_answers_are_checked_again_by_the_server(
    http: httpx.AsyncClient,
    start_run: StartRun,
    keys: dict[str, str],
    team: str,
    as_: Callable[[str], dict[str, str]],
) -> None:
    """Answers the page would have refused (a ticket too short, a risk not offered) sent anyway
    are a 422 page naming the field, and the gate stays open; a reject needs no answers."""
    workflow_id = await start_run(answered(team), {}, who="root")
    await open_gate(http, workflow_id, as_("root"), "check")
    await sign_in(http, keys["alice"])
    panel = await http.get(f"/ui/runs/{workflow_id}/gates/check")
    assert 'name="r.ticket"' in panel.text and 'minlength="3"' in panel.text
    base = {"csrf": csrf_of(panel.text), "digest": digest_of(panel.text), "action": "approve"}
    short = await http.post(
        f"/ui/runs/{workflow_id}/gates/check", data={**base, "r.ticket": "ab", "r.risk": "low"}
    )
    assert short.status_code == 422 and "response.ticket" in short.text
    odd = await http.post(
        f"/ui/runs/{workflow_id}/gates/check", data={**base, "r.ticket": "CHG-1", "r.risk": "mid"}
    )
    assert odd.status_code == 422 and "response.risk" in odd.text
    assert await open_gates(http, workflow_id, as_("root")) == ["check"]
    rejected = await http.post(
        f"/ui/runs/{workflow_id}/gates/check",
        data={**base, "action": "reject", "r.ticket": "", "r.risk": ""},
    )
    assert rejected.status_code == 303
    await wait_state(http, workflow_id, "failed", as_("root"))
