"""An OpenAPI-driven fuzz of the live API: generated requests never get a 5xx."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

from activities.config import Settings
from activities.registry import ToolRegistry
from tests.api.conftest import KEYS, Serve
from tests.conftest import FUZZ_NAMESPACE
from worker import build_worker
from workflows.client import make_client


async def test_fuzz_openapi_finds_no_server_errors(
    serve: Serve, api_settings: Settings, registry: ToolRegistry, tmp_path: Path
) -> None:
    """Schemathesis derives requests from /openapi.json (valid and malformed); none is a 5xx.

    It runs in a namespace of its own: the fuzzer reuses ids it finds in listings, and runs left
    by other tests (their workers gone) rightly answer 503 worker_unavailable.
    """
    st = shutil.which("st", path=str(Path(__file__).resolve().parents[2] / ".venv" / "bin"))
    assert st, "schemathesis is a dev dependency; run `make install`"
    settings = api_settings.model_copy(update={"temporal_namespace": FUZZ_NAMESPACE})
    client = await make_client(settings, wait_s=10)
    async with build_worker(client, settings, registry), serve(settings) as url:
        proc = await asyncio.create_subprocess_exec(
            st,
            "run",
            f"{url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {KEYS['root'][0]}",
            "--max-examples",
            "15",
            "--seed",
            "20261121",
            "--generation-database",
            "none",
            "--request-timeout",
            "20",
            "--phases",
            "examples,coverage,fuzzing",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=600)
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-6000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", report)
    assert cases, report[-3000:]
    assert int(cases.group(1)) == int(cases.group(2)) >= 300, cases.group(0)
    assert re.search(r"Tested: (\d+)", report), "no operation was tested"
