"""The `server` mark that splits `make test-fast` (`-m "not server"`) from `make test`."""

from __future__ import annotations

import inspect

import pytest

from tests.conftest import COLLECTED, ROOT

# What a test's own code calls when it starts a Temporal server, a worker or the API as a
# process: its fixtures cannot show that, so it must carry the mark.
STARTERS = (
    "temporal_cli(",
    "time_skipping_server(",
    "start_server(",
    "run_drills(",
    "run_cluster_drill(",
    "WorkerProcess(",
    "spawn_api(",
    'executable, "worker.py"',
    '"-m", "api"',
)


class _Recorder:
    def __init__(self) -> None:
        self.items: list[pytest.Item] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = list(session.items)


@pytest.fixture(scope="module")
def collected(request: pytest.FixtureRequest) -> list[pytest.Item]:
    """Every test of the suite as pytest marks it, whatever this run selected: this session's
    own collection when it covered every test module, else one made here (nothing runs)."""
    items = request.config.stash.get(COLLECTED, [])
    modules = set((ROOT / "tests").rglob("test_*.py"))
    if modules <= {item.path for item in items}:
        return items
    recorder = _Recorder()
    code = pytest.main(
        ["--collect-only", "-qq", "-p", "no:cacheprovider", str(ROOT / "tests")],
        plugins=[recorder],
    )
    assert code == pytest.ExitCode.OK
    return recorder.items


def marked(item: pytest.Item) -> bool:
    return item.get_closest_marker("server") is not None


def params(item: pytest.Item) -> dict[str, object]:
    callspec = getattr(item, "callspec", None)
    return dict(callspec.params) if callspec else {}


def test_a_test_reaching_a_server_through_its_fixtures_is_marked_server(
    collected: list[pytest.Item],
) -> None:
    """Tests whose fixtures reach the dev server (`client`, `http`, ...), the time-skipping
    server or PostgreSQL are `server`, found from the fixtures alone."""
    groups = {
        "client": [i for i in collected if "client" in i.fixturenames],
        "http": [i for i in collected if "http" in i.fixturenames],
        "time_skipping_env": [i for i in collected if "time_skipping_env" in i.fixturenames],
        "memory_url[postgresql]": [
            i for i in collected if params(i).get("memory_url") == "postgresql"
        ],
    }
    for name, group in groups.items():
        assert group, name
        assert all(marked(i) for i in group), [i.nodeid for i in group if not marked(i)]
    on_sqlite = [i for i in collected if params(i).get("memory_url") == "sqlite"]
    assert any(not marked(i) for i in on_sqlite), "a memory test on SQLite alone needs no server"


def test_a_test_starting_a_server_or_process_itself_carries_the_mark(
    collected: list[pytest.Item],
) -> None:
    """A test whose own code starts a Temporal server, a worker or the API as a process is
    `server` (through its fixtures or the mark it carries), so the fast loop never waits for one."""
    sources: dict[object, str] = {}
    starting = []
    for item in collected:
        function = getattr(item, "function", None)
        if function is None:
            continue
        if function not in sources:
            sources[function] = inspect.getsource(function)
        if any(s in sources[function] for s in STARTERS):
            starting.append(item)
    names = {i.nodeid.split("[")[0] for i in starting}
    assert "tests/test_drill.py::test_drills_lose_nothing" in names, sorted(names)
    assert "tests/test_drill_cluster.py::test_cluster_drill_loses_nothing" in names, sorted(names)
    assert all(marked(i) for i in starting), [i.nodeid for i in starting if not marked(i)]


def test_the_fast_loop_keeps_the_tests_that_need_no_server(
    collected: list[pytest.Item],
) -> None:
    """The rules, the layout, the docs and this check stay in `make test-fast`."""
    for prefix in (
        "tests/rules/",
        "tests/test_layout.py",
        "tests/test_docs.py",
        "tests/test_markers.py",
    ):
        group = [i for i in collected if i.nodeid.startswith(prefix)]
        assert group and not any(marked(i) for i in group), prefix
