"""The cluster drill (`DRILL_TARGET=cluster make drill`, bench/drill_cluster.py) at its quick
size, as part of the suite: a worker SIGKILLed, the Temporal server and PostgreSQL restarted and
a new build rolled out on the production topology, with runs mid-call, at gates and governed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.drill_cluster import PHASES, SCALES, run_cluster_drill
from tests.conftest import REQUIRE_POSTGRES, ROOT
from tests.support.postgres import INSTALL_HINT, find_bin_dir

# PostgreSQL, a Temporal server, workers and the API as processes of its own.
pytestmark = pytest.mark.server

# CI builds the server (.ci/run) and sets this, so a missing one fails there instead of
# skipping. Read at import: the suite clears STEPGATE_* variables around each test.
REQUIRE_TOOLCHAINS = os.environ.get("STEPGATE_TEST_REQUIRE_TOOLCHAINS") == "1"


def need_cluster() -> None:
    """Skip (or fail, in CI) unless PostgreSQL is installed and the Temporal server is built or
    can be (scripts/ensure-temporal-server)."""
    if find_bin_dir() is None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"{INSTALL_HINT}; STEPGATE_TEST_REQUIRE_POSTGRES=1 asks for them")
        pytest.skip(INSTALL_HINT)
    built = subprocess.run(
        [str(ROOT / "scripts" / "ensure-temporal-server")],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    if built.returncode != 0:
        why = f"no Temporal server 1.29.1: {built.stderr.strip()[-500:]}"
        if REQUIRE_TOOLCHAINS:
            pytest.fail(f"{why}\nand STEPGATE_TEST_REQUIRE_TOOLCHAINS=1")
        pytest.skip(why)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Outside pytest's folder: that one is private to this user, and PostgreSQL runs as
    `postgres` when the tests run as root."""
    folder = Path(tempfile.mkdtemp(prefix="stepgate-drill-cluster-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_cluster_drill_loses_nothing(workdir: Path) -> None:
    """Through a worker SIGKILL, a Temporal restart, a PostgreSQL restart and a new build's
    rollout: every run completes, each charge lands once under its key, each decision is in its
    gate's audit once and counted once by the workers' metric, the memory keeps its rows, new
    runs go to the new build while older ones finish on the old build's workers, and the old
    build is stopped with no open run."""
    need_cluster()
    scale = SCALES["quick"]
    result = await run_cluster_drill(scale, workdir)

    assert [p.phase for p in result.phases] == list(PHASES), result
    for phase in result.phases:
        assert phase.runs > 0 and phase.completed == phase.runs, phase
        assert phase.duplicates == phase.missing == phase.lost_decisions == 0, phase
        assert phase.workers_alive, phase
    # Each fault had runs mid-call and gates decided on both sides of it.
    executing = scale.executing * (len(PHASES) + 1)
    assert result.runs == executing + scale.parked + scale.governed, result
    assert result.completed == result.runs, result
    assert result.ledger["side_effects"] == result.runs, result.ledger
    assert result.ledger["unexpected_side_effects"] == 0, result.ledger
    assert result.ledger["missing_side_effects"] == 0, result.ledger
    assert result.calls_on_killed_worker > 0, result

    assert result.decisions_sent == scale.parked + scale.governed, result
    assert result.gates_with_one_decision == result.decisions_sent, result
    # Pipeline gates and governed reviews alike count in stepgate_decisions_total.
    assert result.decisions_metric == result.decisions_sent, result

    assert 0 < result.memory_rows_before == result.memory_rows_kept, result
    assert result.memory_rows_end == scale.governed, result

    assert result.new_runs == scale.executing, result
    assert result.new_runs_on_new_build == result.new_runs, result
    assert result.old_runs_on_old_build == result.old_runs == result.runs - result.new_runs
    assert result.old_build_open_runs == 0, result
    assert result.old_build_status in {"draining", "drained"}, result
    assert result.ok
