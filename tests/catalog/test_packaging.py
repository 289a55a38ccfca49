"""package_application end to end through the API: a real npm tarball served on loopback is
analysed, the scripted model writes the install script, bash -n and the rule check pass it,
and the release gate waits for a release reviewer with priority and a 24-hour deadline; a
script that pipes a download into a shell, or does not parse, never reaches the gate."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import httpx

from tests.catalog import archives, sources
from tests.catalog.conftest import Auth, closed, decide, gate_open, start, the_gate
from tests.catalog.model import CatalogModel
from tests.tools.server import Reply


def publish(model: CatalogModel, data: bytes) -> str:
    """Serve `data` as a package file beside the model; its URL."""
    headers = {"Content-Type": "application/octet-stream"}
    model.server.route("GET", "/packages/items-1.2.0.tgz", lambda seen: Reply(200, data, headers))
    return model.server.url("/packages/items-1.2.0.tgz")


async def test_package_is_analysed_scripted_checked_and_released_by_a_reviewer(
    api: httpx.AsyncClient, as_: Auth, model: CatalogModel
) -> None:
    """The gate shows the package's facts and the script's digest, is urgent because the
    package runs a postinstall script, is due 24 hours after it opened, names the release role
    (not the lead, who comes in only on escalation), and completes once a reviewer approves."""
    data = archives.npm_tarball()
    url = publish(model, data)
    wid = await start(api, as_("olga"), "package_application", {"package_url": url})

    s = await gate_open(api, wid, "release", as_("vic"))
    gate = the_gate(s, "release")
    assert (gate["approvers"], gate["actions"]) == (
        ["role:release"],
        ["approve", "reject", "cancel"],
    )
    assert gate["priority"] == "urgent"
    opened, due = (
        datetime.fromisoformat(gate["opened_at"]),
        datetime.fromisoformat(gate["deadline"]),
    )
    assert due - opened == timedelta(hours=24)
    digest = hashlib.sha256(data).hexdigest()
    assert f"Install items 1.2.0 (npm, {len(data)} bytes, sha256 {digest})" in gate["review"]
    assert "postinstall" in gate["review"]
    script_digest = hashlib.sha256(sources.INSTALL.encode()).hexdigest()
    assert gate["subject"]["value"]["script"]["sha256"] == script_digest

    assert (await decide(api, wid, gate, as_("lea"), "approve")).status_code == 403
    assert (await decide(api, wid, gate, as_("rel"), "approve")).status_code == 200
    done = await closed(api, wid, as_("vic"))
    assert done["state"] == "completed", done["error"]
    release = done["output"]["release"]
    assert (release["package"], release["sha256"], release["findings"]) == ("items", digest, [])
    assert release["script"]["path"].endswith("/install.sh")


async def test_script_piping_a_download_into_a_shell_never_reaches_the_gate(
    api: httpx.AsyncClient, as_: Auth, model: CatalogModel
) -> None:
    """The rule check refuses `curl ... | sudo bash`: the run fails naming the rule and line,
    and no reviewer is asked."""
    model.install = sources.INSTALL_PIPED
    wid = await start(
        api, as_("olga"), "package_application", {"package_url": publish(model, archives.deb())}
    )
    done = await closed(api, wid, as_("vic"))
    assert done["state"] == "failed"
    assert "the script is refused: line 7: pipe-to-shell" in done["error"]
    assert done["open_gates"] == [] and done["audit_total"] == 0


async def test_script_that_does_not_parse_fails_at_bash_n(
    api: httpx.AsyncClient, as_: Auth, model: CatalogModel
) -> None:
    """`bash -n` through shell.run catches a script that does not parse, with bash's message."""
    model.install = sources.INSTALL_BROKEN
    wid = await start(
        api, as_("olga"), "package_application", {"package_url": publish(model, archives.wheel())}
    )
    done = await closed(api, wid, as_("vic"))
    assert done["state"] == "failed"
    assert "'bash' exited with code 2" in done["error"] and "syntax error" in done["error"]
