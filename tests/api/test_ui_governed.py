"""A governed run in the web app: its page shows the phase, the plan, the tier and the reasons,
and its review gate's panel offers the elders their actions, with the plan as a tree."""

from __future__ import annotations

import httpx
from markupsafe import escape

from tests.api.test_governed import (  # noqa: F401  (fixtures, found by name)
    Auth,
    gov,
    gov_settings,
    govern,
    keys,
    llm,
    phase,
)
from tests.api.test_ui_session import sign_in


async def test_a_governed_run_page_shows_plan_tier_and_reasons(
    gov: httpx.AsyncClient,  # noqa: F811
    as_: Auth,
    keys: dict[str, str],  # noqa: F811
) -> None:
    """A tier 3 plan waiting for elders: the run page names the phase, the tier with its
    reasons and the plan's steps; the review gate's panel gives an elder the decision buttons
    and the plan to modify as JSON; a viewer gets the panel without them."""
    http = gov
    run = await govern(http, as_, "deploy it", {"text": "v3", "environment": "production"})
    waiting = await phase(http, as_, run, "review")
    reasons = waiting["governed"]["assessment"]["reasons"]
    await sign_in(http, keys["eve"])
    # eve is an elder without `read`: the run page is refused, the gate's panel is hers.
    assert (await http.get(f"/ui/runs/{run}")).status_code == 403
    panel = await http.get(f"/ui/runs/{run}/gates/review")
    assert panel.status_code == 200, panel.text
    assert 'name="action" value="approve"' in panel.text and 'id="modify-json"' in panel.text
    assert "summarize" in panel.text
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as viewer:
        await sign_in(viewer, keys["vic"])
        page = await viewer.get(f"/ui/runs/{run}")
        assert page.status_code == 200
        assert "Governed run" in page.text and "review" in page.text
        assert "3 (score" in page.text
        assert reasons and all(str(escape(r)) in page.text for r in reasons[:3])
        seen = await viewer.get(f"/ui/runs/{run}/gates/review")
        assert seen.status_code == 200 and 'name="action"' not in seen.text
    r = await http.post(f"/workflows/{run}/cancel", json={}, headers=as_("olga"))
    assert r.status_code == 202
