"""java_springboot and nodejs_express end to end through the API: the scripted model designs
and writes the service, the real OpenAPI validator checks the API, people decide each phase's
gate, and the real javac, java and node build and test what was generated."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from tests.catalog import sources
from tests.catalog.conftest import Auth, closed, decide, gate_open, phases, start, the_gate
from tests.catalog.model import CatalogModel

JAVA_INPUT = {"service": "items", "description": "Keep a list of items: list them, add one."}
NODE_INPUT = {"service": "items", "description": "Keep a list of items: list them, add one."}


async def test_java_service_is_specified_generated_reviewed_built_and_tested(
    api: httpx.AsyncClient, as_: Auth, model: CatalogModel
) -> None:
    """Each phase waits at its own gate for its own role, shows where the run is, and goes on
    when decided; a retry at the spec gate with a corrected document is validated again and is
    what the code is written from; javac compiles the generated sources and the generated test
    class passes under java."""
    wid = await start(api, as_("olga"), "java_springboot", JAVA_INPUT)

    s = await gate_open(api, wid, "spec_check", as_("vic"))
    assert phases(s)["spec"] == {"spec_draft": "succeeded", "spec_check": "waiting"}
    assert s["progress"]["done"] == 1
    gate = the_gate(s, "spec_check")
    assert (gate["stage"], gate["approvers"]) == ("after", ["role:architects"])
    assert gate["actions"] == ["approve", "reject", "retry", "cancel"]
    assert gate["subject"]["operations"] == ["GET /items", "POST /items"]
    refused = await decide(api, wid, gate, as_("dev"), "approve")
    assert refused.status_code == 403, refused.text

    # The architect asks for one more route: the corrected document is checked again.
    corrected = copy.deepcopy(sources.ITEMS_API)
    corrected["paths"]["/items"]["delete"] = {"responses": {"204": {"description": "cleared"}}}
    r = await decide(api, wid, gate, as_("ada"), "retry", patch={"document": corrected})
    assert r.status_code == 200, r.text
    s = await gate_open(api, wid, "spec_check", as_("vic"), after=gate["round"])
    gate = the_gate(s, "spec_check")
    assert gate["subject"]["operations"] == ["GET /items", "POST /items", "DELETE /items"]
    assert (await decide(api, wid, gate, as_("ada"), "approve")).status_code == 200

    s = await gate_open(api, wid, "code_generate", as_("vic"))
    assert phases(s)["spec"] == {"spec_draft": "succeeded", "spec_check": "succeeded"}
    assert phases(s)["code"]["code_generate"] == "waiting"
    gate = the_gate(s, "code_generate")
    assert gate["approvers"] == ["role:developers"] and gate["item"] is None
    assert all('"delete"' in asked for asked in model.asked["code"])
    assert len(model.asked["code"]) == len(sources.JAVA)
    assert (await decide(api, wid, gate, as_("dev"), "approve")).status_code == 200

    s = await gate_open(api, wid, "review", as_("vic"))
    assert set(phases(s)["code"].values()) == {"succeeded"}
    gate = the_gate(s, "review")
    assert gate["subject"]["json"]["findings"] == model.findings
    assert "modify" in gate["actions"] and gate["approvers"] == ["role:reviewers"]
    assert (await decide(api, wid, gate, as_("rev"), "approve")).status_code == 200

    s = await gate_open(api, wid, "build_test", as_("vic"))
    assert phases(s)["build"] == {"build_compile": "succeeded", "build_test": "waiting"}
    gate = the_gate(s, "build_test")
    assert gate["subject"]["exit_code"] == 0
    assert "ok: GET /items lists it" in gate["subject"]["stdout"]
    assert (await decide(api, wid, gate, as_("rel"), "approve")).status_code == 200

    done = await closed(api, wid, as_("vic"))
    assert done["state"] == "completed", done["error"]
    out = done["output"]
    assert out["files"] == list(sources.JAVA)
    assert out["operations"] == ["GET /items", "POST /items", "DELETE /items"]
    assert "ok: an unknown path is 404" in out["tests"]
    assert done["progress"]["percent"] == 100.0


async def test_java_build_fails_with_javac_message_when_a_source_does_not_compile(
    api: httpx.AsyncClient, as_: Auth, model: CatalogModel
) -> None:
    """An admin's run in approval_mode auto passes every gate without a person; a generated
    source that does not compile fails the build step with javac's own error."""
    model.java = dict(sources.JAVA_BROKEN)
    wid = await start(api, as_("root"), "java_springboot", JAVA_INPUT, approval_mode="auto")
    done = await closed(api, wid, as_("vic"))
    assert done["state"] == "failed"
    assert "'javac' exited with code 1" in done["error"]
    assert "ItemService.java:4: error: illegal start of expression" in done["error"]
    assert phases(done)["build"]["build_compile"] == "failed"


async def test_java_file_other_than_the_one_asked_for_is_asked_again_then_fails(
    api: httpx.AsyncClient, as_: Auth, model: CatalogModel
) -> None:
    """Each file's reply must name the file asked for (the reply schema's `const` is the item's
    path): a model that keeps writing another file is asked again, then the run fails saying
    so, and nothing reaches the build."""
    model.renamed = {"src/main/ItemService.java": "src/main/Other.java"}
    wid = await start(api, as_("root"), "java_springboot", JAVA_INPUT, approval_mode="auto")
    done = await closed(api, wid, as_("vic"))
    assert done["state"] == "failed"
    assert (
        "item 1 of step 'code_generate' failed: the model's reply does not follow "
        "response_format.json_schema: output.json.path: 'src/main/ItemService.java' was expected"
    ) in done["error"]
    asked = [a for a in model.asked["code"] if "Write src/main/ItemService.java" in a]
    assert len(asked) == 3
    assert phases(done)["build"] == {"build_compile": "skipped", "build_test": "skipped"}


async def test_node_service_checks_and_tests_with_node_after_each_gate(
    api: httpx.AsyncClient, as_: Auth, model: CatalogModel
) -> None:
    """The Node.js pipeline's four gates are decided through the API (the reviewer amends the
    findings kept with the run); node --check passes on every generated file and node --test
    runs the generated tests over HTTP on loopback."""
    wid = await start(api, as_("olga"), "nodejs_express", NODE_INPUT)
    gate = the_gate(await gate_open(api, wid, "spec_check", as_("vic")), "spec_check")
    assert (await decide(api, wid, gate, as_("ada"), "approve")).status_code == 200
    # One gate reviews every file: approve, reject or cancel, nothing else.
    gate = the_gate(await gate_open(api, wid, "code_generate", as_("vic")), "code_generate")
    assert gate["actions"] == ["approve", "reject", "cancel"]
    assert len(model.asked["code"]) == len(sources.NODE)
    assert (await decide(api, wid, gate, as_("dev"), "approve")).status_code == 200
    gate = the_gate(await gate_open(api, wid, "review", as_("vic")), "review")
    amended: dict[str, Any] = {"json": {"verdict": "pass", "findings": []}}
    r = await decide(api, wid, gate, as_("rev"), "modify", patch=amended)
    assert r.status_code == 200, r.text

    s = await gate_open(api, wid, "build_test", as_("vic"))
    checked = next(step for step in s["steps"] if step["id"] == "build_check")
    assert checked["state"] == "succeeded"
    gate = the_gate(s, "build_test")
    assert "# pass 1" in gate["subject"]["stdout"] and "# fail 0" in gate["subject"]["stdout"]
    assert (await decide(api, wid, gate, as_("rel"), "approve")).status_code == 200

    done = await closed(api, wid, as_("vic"))
    assert done["state"] == "completed", done["error"]
    assert done["output"]["review"] == {"verdict": "pass", "findings": []}
    assert done["output"]["files"] == list(sources.NODE)


async def test_node_service_runs_unattended_for_an_admin_in_auto_mode(
    api: httpx.AsyncClient, as_: Auth
) -> None:
    """approval_mode auto is an admin's: an operator is refused, an admin's run decides every
    gate itself, says so in the audit, and completes with node's test report."""
    refused = await api.post(
        "/workflows",
        json={"definition": "nodejs_express", "input": NODE_INPUT, "approval_mode": "auto"},
        headers=as_("olga"),
    )
    assert refused.status_code == 403, refused.text
    wid = await start(api, as_("root"), "nodejs_express", NODE_INPUT, approval_mode="auto")
    done = await closed(api, wid, as_("vic"))
    assert done["state"] == "completed", done["error"]
    assert "# pass 1" in done["output"]["tests"]
    audit = (await api.get(f"/workflows/{wid}/audit", headers=as_("vic"))).json()
    autos = [e["gate"] for e in audit["entries"] if e["kind"] == "auto_approve"]
    assert autos == ["spec_check", "code_generate", "review", "build_test"], audit
