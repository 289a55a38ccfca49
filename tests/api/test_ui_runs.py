"""The web app's start page, run list and run page over real HTTP against a real worker, and its
pages for a run with a thousand for_each items: each a page at a time, none of them large."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from tests.api.test_run_pages import ITEMS, for_each
from tests.api.test_ui_session import csrf_of, sign_in

pytestmark = pytest.mark.asyncio
# What one page of the web app may weigh, whatever the run's size.
PAGE_MAX_BYTES = 1_048_576


async def test_start_form_then_run_page_and_run_list(
    http: httpx.AsyncClient, keys: dict[str, str], as_: Callable[[str], dict[str, str]]
) -> None:
    """A run started from the form generated from `hello`'s input schema opens its run page,
    which shows its step, state and output; the run list filtered by state lists it; a
    principal without `read` gets a 403 page, not the run."""
    await sign_in(http, keys["olga"])
    form = await http.get("/ui/start/hello")
    assert form.status_code == 200
    assert 'name="f.name"' in form.text and "required" in form.text
    empty = await http.post(
        "/ui/start/hello", data={"csrf": csrf_of(form.text), "mode": "fields", "f.name": ""}
    )
    assert empty.status_code == 422
    assert "input.name" in empty.text
    started = await http.post(
        "/ui/start/hello",
        data={"csrf": csrf_of(form.text), "mode": "fields", "f.name": "<b>Ada</b>"},
    )
    assert started.status_code == 303
    location = started.headers["location"]
    workflow_id = location.rsplit("/", 1)[-1]
    await wait_state(http, workflow_id, "completed", as_("root"))
    run = await http.get(location)
    assert run.status_code == 200
    assert "greet" in run.text and "state-succeeded" in run.text
    assert "Hello, &lt;b&gt;Ada&lt;/b&gt;!" in run.text  # data is text, never markup
    assert "<b>Ada</b>" not in run.text
    listed = await http.get("/ui/runs", params={"state": "completed", "pipeline": "hello"})
    assert f'href="/ui/runs/{workflow_id}"' in listed.text
    assert (await http.get("/ui/runs", params={"state": "bogus"})).status_code == 422

    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as other:
        await sign_in(other, keys["carol"])
        refused = await other.get(location)
        assert refused.status_code == 403
        assert "read" in refused.text and "Hello" not in refused.text


async def test_a_run_of_a_thousand_items_is_paged_on_every_page(
    http: httpx.AsyncClient,
    start_run: StartRun,
    keys: dict[str, str],
    team: str,
    as_: Callable[[str], dict[str, str]],
) -> None:
    """With a thousand items waiting at gates, the run page, the inbox and the items page each
    stay under 1 MiB, the inbox shows at most a hundred gates, the items page fifty with a link
    on, and the last item's gate panel opens."""
    workflow_id = await start_run(for_each(team, gated=True), {"n": list(range(ITEMS))}, who="root")

    async def opened() -> int:
        status = (await http.get(f"/workflows/{workflow_id}", headers=as_("vic"))).json()
        return int(status.get("open_gates_total", 0))

    await eventually(opened, lambda n: n == ITEMS, "all gates open", 120)
    await sign_in(http, keys["alice"])
    run = await http.get(f"/ui/runs/{workflow_id}")
    assert run.status_code == 200 and len(run.content) < PAGE_MAX_BYTES
    assert f"/ui/runs/{workflow_id}/steps/each/items" in run.text
    inbox = await http.get("/ui/inbox")
    assert len(inbox.content) < PAGE_MAX_BYTES
    # The gates memo lists a bounded number of a run's gates; the page shows at most 100.
    assert 0 < inbox.text.count('name="pick"') <= 100
    items = await http.get(f"/ui/runs/{workflow_id}/steps/each/items")
    assert len(items.content) < PAGE_MAX_BYTES
    assert items.text.count("/gates/each.") == 50
    following = re.search(r'href="([^"]+items\?cursor=49)"', items.text)
    assert following is not None
    second = await http.get(following.group(1).replace("&amp;", "&"))
    assert "/gates/each.50" in second.text
    panel = await http.get(f"/ui/runs/{workflow_id}/gates/each.{ITEMS - 1}")
    assert panel.status_code == 200
    assert f" {ITEMS - 1}" in panel.text and 'name="action" value="approve"' in panel.text
    await http.post(f"/workflows/{workflow_id}/cancel", headers=as_("root"))
