"""An OpenAPI-driven fuzz of the live API: no 5xx, no undocumented status, documented shapes."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import KEYS, api_registry, copy_definitions, write_keys
from tests.conftest import FUZZ_NAMESPACE, server_settings
from tests.support.api import serve_app
from worker import build_worker
from workflows.client import make_client

# Every phase: the schema's examples, boundary values of each field, random requests, and
# sequences of calls that feed one response's ids into the next request (stateful).
PHASES = "examples,coverage,fuzzing,stateful"
# Every check schemathesis has: besides server errors and the documented statuses, content types,
# headers and schemas, it sends schema-valid requests that must be accepted and schema-violating
# ones that must be refused (the document states what the API enforces), undocumented methods
# that must be 405 with `Allow`, OPTIONS whose `Allow` names the documented methods, requests
# without the key, and ids it created or deleted.
CHECKS = "all"
# The bodies that carry a definition (inline, or a governed run's plan), name catalog entries
# (a pipeline, a policy) or hold a cron expression are checked beyond what JSON Schema can say:
# the tools and their inputs, references, conditions and the step graph, whether the name is in
# the catalog now, what Temporal's cron parser takes. A request that fits the document may still
# be a 422 that names each problem; for these three operations only, that is an expected answer.
SEMANTIC = ["POST /workflows", "POST /schedules", "POST /governed"]
CONFIG = f"""
[[operations]]
include-name = {SEMANTIC!r}
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"
]
"""
FUZZ_QUEUE = "stepgate-fuzz"
ROLES = {"admin": "root", "viewer": "vic"}
# Cases each run must reach: the fuzz found nothing if it barely ran.
MIN_CASES = {"root": 500, "vic": 400}


async def fuzz(st: str, url: str, who: str, folder: Path) -> tuple[int, str]:
    """One schemathesis run with `who`'s key: every phase once (a case count that the schema and
    the seed fix, not a time budget that the machine's load would), its exit code and report."""
    folder.mkdir()
    config = folder / "schemathesis.toml"
    config.write_text(CONFIG)
    proc = await asyncio.create_subprocess_exec(
        st,
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--header",
        f"Authorization: Bearer {KEYS[who][0]}",
        "--max-examples",
        "10",
        "--seed",
        "20261121",
        "--generation-database",
        "none",
        "--request-timeout",
        "20",
        "--phases",
        PHASES,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=folder,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=600)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


@pytest.fixture(scope="module")
async def reports(
    temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[int, str]]:
    """Both roles' fuzzers, at once, against one API and one worker: a role -> (exit code, report).

    They run in a namespace and on a task queue of their own: the fuzzer reuses ids it finds in
    listings, and runs left by other tests (their workers gone) rightly answer 503
    worker_unavailable. One worker serves both: a run the admin's fuzz left parked (under an id
    the viewer's fuzz reuses, such as "0") must still have a worker to answer its status query.
    """
    st = shutil.which("st", path=str(Path(__file__).resolve().parents[2] / ".venv" / "bin"))
    assert st, "schemathesis is a dev dependency; run `make install`"
    tmp = tmp_path_factory.mktemp("fuzz")
    team = f"team{uuid.uuid4().hex[:10]}"
    write_keys(tmp / "keys.yaml", team)
    settings = server_settings(temporal_env, FUZZ_QUEUE, tmp).model_copy(
        update={
            "temporal_namespace": FUZZ_NAMESPACE,
            "stepgate_api_keys_file": tmp / "keys.yaml",
            "stepgate_definitions_dir": copy_definitions(tmp / "definitions", team),
        }
    )
    registry = api_registry()
    client = await make_client(settings, wait_s=10)
    async with build_worker(client, settings, registry), serve_app(settings, registry) as url:
        runs = [fuzz(st, url, who, tmp / who) for who in ROLES.values()]
        return dict(zip(ROLES.values(), await asyncio.gather(*runs), strict=True))


# Both fuzzers take about five minutes on two cores (each stops at 600 s), past the suite's
# 300 s per test: the first test to use the module's fixture pays for it.
@pytest.mark.timeout(720)
@pytest.mark.parametrize("who", list(ROLES.values()), ids=list(ROLES))
def test_fuzz_openapi_conforms_for_every_role(
    reports: dict[str, tuple[int, str]], who: str
) -> None:
    """Schemathesis derives requests from /openapi.json (valid and malformed, alone and in
    sequences) with an admin's and a viewer's key, and every check passes on every phase: no
    5xx, only documented status codes, content types and headers, bodies that match the
    documented schemas, schema-valid requests accepted and schema-violating ones refused (the
    document states what the API enforces), 405 with `Allow` for undocumented methods and
    OPTIONS naming the documented ones."""
    code, report = reports[who]
    cases = re.search(r"(\d+) generated, (\d+) passed", report)
    print(f"fuzz as {who}: {cases.group(0) if cases else 'no case count'}")
    assert code == 0, report[-8000:]
    assert cases, report[-3000:]
    assert int(cases.group(1)) == int(cases.group(2)) >= MIN_CASES[who], cases.group(0)
    tested = re.search(r"Tested: (\d+)", report)
    assert tested and int(tested.group(1)) > 0, "no operation was tested"
    phases = report.partition("Test Phases:")[2].partition("\n\n")[0]
    print(phases)
    # Examples is skipped (the schema has none); every other phase ran and found nothing.
    assert "🚫" not in phases and "❌" not in phases, report[-3000:]
    assert all(f"✅ {phase}" in phases for phase in ("Coverage", "Fuzzing", "Stateful")), phases
