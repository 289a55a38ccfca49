"""The docs stay true: the README stays short and what it tells a newcomer to run exists; every
setting, route and contract name is documented where docs/ keeps it; every link and named path
resolves; docs/architecture.md states the import rules tests/test_layout.py enforces; and
docs/performance.md is what the published bench results make."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from temporalio import workflow

from activities.config import Settings
from api import events
from api.app import create_app
from api.cli import parser as cli_parser
from tests import test_layout as layout
from tests.conftest import ROOT
from workflows import contract
from workflows.governed import GovernedWorkflow
from workflows.language.definition import Action
from workflows.models import Decision
from workflows.pipeline import PipelineWorkflow

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
MAX_README_LINES = 250
# Every page a reader can reach from the README, the README included.
PAGES = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted(DOCS.glob("*.md"))]
# Folders of the repository a doc may name a path in.
TOP = (
    "workflows",
    "activities",
    "api",
    "tests",
    "bench",
    "scripts",
    "definitions",
    "deploy",
    "docs",
)
# Paths a doc names that the bench writes when it runs: not in the repository.
WRITTEN_BY_THE_BENCH = {
    "bench/results/latest.json",
    "bench/results/latest.png",
    "bench/results/cluster-latest.json",
}
# What a named file ends in; `api/deps.get_caller` names a function, not a file.
FILE_SUFFIXES = {"py", "md", "json", "yaml", "yml", "sql", "java", "toml", "txt"}


def doc(name: str) -> str:
    return (DOCS / name).read_text()


def section(text: str, heading: str) -> str:
    """The text under `heading` (a whole heading line) up to the next heading of its level."""
    level = heading.split(" ")[0]
    start = text.index(heading + "\n") + len(heading) + 1
    end = re.search(rf"^{level} ", text[start:], re.MULTILINE)
    return text[start : start + end.start()] if end else text[start:]


def outside_code(text: str) -> list[str]:
    """The lines of a Markdown text that are not inside a fenced code block."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings (lower case, punctuation dropped, spaces to
    hyphens, a repeated heading numbered)."""
    found: set[str] = set()
    for line in outside_code(text):
        m = re.match(r"^#{1,6} (.+)$", line)
        if not m:
            continue
        base = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        name, n = base, 0
        while name in found:
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Each relative link on `page` whose file (inside `root`), or whose heading anchor, does not
    exist."""
    text = page.read_text()
    out = []
    for target in re.findall(r"\]\(([^)\s]+)\)", "\n".join(outside_code(text))):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not ours to check
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or not file.is_relative_to(root):
            out.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            out.append(f"{target}: no heading #{anchor} in {file.name}")
    return out


def named_paths(text: str) -> list[str]:
    """Repository paths a page names in backticks (`tests/x.py::test_y` gives `tests/x.py`)."""
    out = []
    for token in re.findall(r"`([^`\s]+)`", text):
        path = token.split("::")[0]
        if not path.startswith(tuple(f"{t}/" for t in TOP)) or re.search(r"[<>*$|{}]", path):
            continue
        last = path.rstrip("/").rsplit("/", 1)[-1]
        if "." in last and last.rsplit(".", 1)[1] not in FILE_SUFFIXES:
            continue
        out.append(path)
    return out


# ---- what the README's tables became -----------------------------------------------------


def test_operations_documents_every_setting() -> None:
    """Each environment variable Settings reads has a row in docs/operations.md's configuration
    table."""
    table = section(doc("operations.md"), "## Configuration")
    missing = [n.upper() for n in Settings.model_fields if f"| `{n.upper()}` |" not in table]
    assert not missing, f"docs/operations.md lacks configuration rows for {missing}"


def test_api_documents_every_route() -> None:
    """Each method and path in the OpenAPI document appears in docs/api.md's routes table."""
    schema = create_app(Settings(stepgate_api_keys_file=None)).openapi()["paths"]

    def norm(path: str) -> str:
        return re.sub(r"\{[a-z_]+\}", "{}", path)

    served = {f"{m.upper()} {norm(p)}" for p, ops in schema.items() for m in ops}
    table = section(doc("api.md"), "## Routes")
    documented = {f"{m} {norm(p)}" for m, p in re.findall(r"`(GET|POST|DELETE) (/[^`\s]*)`", table)}
    assert served <= documented, f"docs/api.md's routes table lacks {sorted(served - documented)}"
    assert documented <= served, (
        f"docs/api.md documents routes nobody serves: {sorted(documented - served)}"
    )


def test_api_contract_names_are_the_code_names() -> None:
    """docs/api.md's table of names other programs depend on lists exactly the workflows' types,
    signals, updates and queries, the search attributes, memo keys, states and decision fields."""
    rows = {}
    for line in section(doc("api.md"), "## Names other programs depend on").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 2:
            names = re.findall(r"`([A-Za-z_]+)`", cells[1])
            rows[cells[0]] = {n for n in names if not n.isupper()}  # not the env variables
    defs = [workflow._Definition.from_class(c) for c in (PipelineWorkflow, GovernedWorkflow)]
    expected = {
        "task queue": {contract.TASK_QUEUE},
        "workflow types": {d.name for d in defs},
        "signals": {s for d in defs for s in d.signals if s},
        "updates": {u for d in defs for u in d.updates if u},
        "queries": {q for d in defs for q in d.queries if q},
        "search attributes": {k.name for k in contract.SEARCH_ATTRIBUTES},
        "memo": {contract.MEMO_GATES, contract.MEMO_GATES_MORE},
        "actions": set(Action.__args__),
        "run states": {s.value for s in contract.RunState},
        "step states": {s.value for s in contract.StepState},
    }
    assert {k: rows.get(k) for k in expected} == expected
    decision = section(doc("api.md"), "## Names other programs depend on")
    shown = re.search(r"\| Decision \(JSON\) \| `(\{.*\})` \|", decision)
    assert shown is not None, "the Decision row is missing"
    assert set(re.findall(r'"([a-z_]+)":', shown.group(1))) == set(Decision.model_fields)


# ---- the README a newcomer follows -----------------------------------------------------------


def test_readme_stays_short() -> None:
    """The README is read top to bottom: what Stepgate is, two commands, a first run, where next."""
    lines = len(README.splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_readme_shows_the_two_commands() -> None:
    """`make run` and `make test` are the documented set-up commands, under "Two commands"."""
    two = section(README, "## Two commands")
    assert "$ make run" in two and "$ make test" in two


def test_readme_names_only_make_targets_that_exist() -> None:
    """Every `make X` the README names is a target of the Makefile."""
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    named = set(re.findall(r"(?:`|\$ )make ([a-z][a-z-]*)", README))
    assert {"run", "test"} <= named
    assert named <= targets, (
        f"README names make targets the Makefile lacks: {sorted(named - targets)}"
    )


def test_readme_banner_is_what_make_run_prints() -> None:
    """The banner the README shows after `make run` is the one scripts/run prints, line by line."""
    script = (ROOT / "scripts" / "run").read_text()
    printed = script.split("cat <<EOF\n", 1)[1].split("\nEOF\n", 1)[0].splitlines()
    admin = re.search(r'echo "(    Admin key: .*)"', script)
    assert admin is not None, "scripts/run no longer prints the admin key"
    printed = [line for line in printed if line.strip()] + [admin.group(1)]

    def pattern(line: str) -> str:
        # Each shell expansion stands for whatever it printed; the rest must be the same text.
        return ".+".join(re.escape(p) for p in re.split(r"\$\{?[A-Za-z_]+\}?", line.rstrip()))

    block = section(README, "## Two commands").split("```console\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    first = next(i for i, line in enumerate(lines) if "Stepgate is running" in line)
    shown = lines[first : first + len(printed)]
    for want, got in zip(printed, shown, strict=True):
        assert re.fullmatch(pattern(want), got.rstrip()), (
            f"README shows {got!r}; scripts/run prints {want!r}"
        )


def test_readme_first_run_uses_real_routes_commands_and_pipeline() -> None:
    """Every request, `stepgate` command and pipeline fact in "A first run" exists as shown."""
    first = section(README, "## A first run")
    schema = create_app(Settings(stepgate_api_keys_file=None)).openapi()["paths"]
    routes = [
        (m.upper(), re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(p)) + "$"))
        for p, ops in schema.items()
        for m in ops
    ]
    requests = re.findall(r"curl (?:-[sN] )*(?:-X (POST|DELETE) )?\$STEPGATE_URL(/[^\s\"]*)", first)
    assert len(requests) >= 6
    for method, path in requests:
        method = method or "GET"
        assert any(m == method and r.match(path) for m, r in routes), (
            f"{method} {path} is not served"
        )
    commands = re.findall(r"^\$ (stepgate .+?)(?:\s+#.*)?$", first, re.MULTILINE)
    assert len(commands) >= 5
    for command in commands:
        try:
            cli_parser().parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"`{command}` is not a stepgate command line")
    demo = yaml.safe_load((ROOT / "definitions" / "approval_demo.yaml").read_text())
    gate = next(s for s in demo["steps"] if s["id"] == "publish")["approval"]
    assert gate["approvers"] == ["role:ops", "role:admin"] and gate["stage"] == "before"
    assert gate["review"] in first and re.search(r"`role:ops` or\s+`role:admin`", first)


def test_readme_walk_through_follows_the_port_variables() -> None:
    """What a newcomer types in "A first run" follows the port variables `make run` reads: no
    command or link there names a port of its own (only the sample output shows one), and the
    page says which variables move the ports."""
    first = section(README, "## A first run")
    typed = [line for line in first.splitlines() if not line.lstrip().startswith("{")]
    fixed = [line for line in typed if re.search(r"localhost:\d", line)]
    assert fixed == [], fixed
    assert "export STEPGATE_URL=http://localhost:${STEPGATE_API_PORT:-8000}" in first
    assert "${TEMPORAL_UI_PORT:-8233}" in first
    two = section(README, "## Two commands")
    for name in ("TEMPORAL_PORT", "TEMPORAL_HTTP_PORT", "TEMPORAL_UI_PORT", "STEPGATE_API_PORT"):
        assert f"`{name}`" in two, name
        assert f'"${{{name}:-' in (ROOT / "scripts" / "run").read_text(), name


def test_readme_keeps_changing_workflow_code_short_and_linked() -> None:
    """The README's "Changing workflow code" fits in 15 lines, names the history recorder that
    exists, and links the versioning page."""
    part = section(README, "## Changing workflow code").strip()
    assert len(part.splitlines()) <= 15
    assert (
        "python -m tests.histories.record" in part and (ROOT / "tests/histories/record.py").exists()
    )
    assert "(docs/versioning.md)" in part


# ---- links and names ------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_links_resolve(page: Path) -> None:
    """Every relative link on the page reaches a file of the repository, and its heading."""
    assert broken_links(page) == []


def test_link_check_catches_a_broken_link(tmp_path: Path) -> None:
    """Control: a missing file and a missing heading are both reported."""
    (tmp_path / "api.md").write_text("# API\n\n## Routes\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Here\n\n[a](#here) [b](#gone) [c](nowhere.md) [d](api.md#routes) [e](api.md#keys)\n"
        "```\n[f](x.md)\n```\n"
    )
    assert broken_links(page, tmp_path) == [
        "#gone: no heading #gone in page.md",
        "nowhere.md: no such file",
        "api.md#keys: no heading #keys in api.md",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_names_paths_that_exist(page: Path) -> None:
    """Every repository path the page names in backticks exists (a folder when it ends in /)."""
    missing = [
        p
        for p in named_paths(page.read_text())
        if p not in WRITTEN_BY_THE_BENCH and not (ROOT / p).exists()
    ]
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_names_tests_that_exist(page: Path) -> None:
    """Every test the page names (`tests/x.py::test_y`, or a bare `test_y`) is defined."""
    text = page.read_text()
    missing = []
    for path, name in re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", text):
        if f"def {name}(" not in (ROOT / path).read_text():
            missing.append(f"{path}::{name}")
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    missing += [n for n in set(re.findall(r"`(test_\w+)`", text)) if f"def {n}(" not in sources]
    assert missing == []


# ---- architecture.md is the code's architecture ------------------------------------------------


def bullet(text: str, marker: str) -> str:
    """The bullet of a list in `text` that holds `marker`."""
    return next(b for b in re.split(r"\n(?=- )", text) if marker in b)


def rule(text: str, marker: str) -> str:
    """The bullet that holds `marker`, from the marker to its end."""
    found = bullet(text, marker)
    return found[found.index(marker) + len(marker) :]


def test_architecture_states_the_import_rules_the_layout_test_enforces() -> None:
    """Each list of allowed and refused modules docs/architecture.md states is the constant
    tests/test_layout.py checks against, and each of its checks is named there."""
    arch = section(doc("architecture.md"), "## What each package may import")

    def modules(marker: str) -> set[str]:
        names = re.findall(r"`([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)`", rule(arch, marker))
        return {n for n in names if not n.startswith("test_")}

    assert modules("(`WORKFLOWS_MAY_IMPORT`)") == set(layout.WORKFLOWS_MAY_IMPORT)
    assert modules("(`RULES_MAY_IMPORT`)") == set(layout.RULES_MAY_IMPORT)
    assert modules("(`NOT_IN_RULES`)") == set(layout.NOT_IN_RULES)
    assert re.search(rf"\b{layout.MAX_MODULE_LINES} lines \(`MAX_MODULE_LINES`", arch)
    source = Path(layout.__file__).read_text()
    bench_tests = re.search(r"bench_tests = \{([^}]*)\}", source)
    assert bench_tests is not None
    stated = set(re.findall(r"`(test_\w+\.py)`", bullet(arch, "import `bench`")))
    assert stated == set(re.findall(r'"([^"]+)"', bench_tests.group(1)))
    checks = {n for n in dir(layout) if n.startswith("test_")}
    assert {c for c in checks if f"`{c}`" not in arch} == set()


def test_architecture_names_every_workflows_module() -> None:
    """Every module of workflows/, workflows/rules/ and workflows/language/ has its place in
    docs/architecture.md (paths it names that no longer exist fail the path check)."""
    arch = doc("architecture.md")
    modules = [
        p.relative_to(ROOT).as_posix()
        for folder in ("workflows", "workflows/rules", "workflows/language")
        for p in sorted((ROOT / folder).glob("*.py"))
        if p.name != "__init__.py"
    ]
    assert [m for m in modules if f"`{m}`" not in arch] == []


# ---- performance.md is generated from the published results ----------------------------------


def generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.docs", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_performance_page_is_what_the_published_results_make() -> None:
    """docs/performance.md is exactly what `python -m bench.docs` makes from its template and
    bench/results/published/: a figure cannot be edited by hand or go stale."""
    done = generator("--check")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr


def test_performance_check_catches_an_edited_figure(tmp_path: Path) -> None:
    """Control: a page with one figure changed by hand is reported as stale."""
    edited = tmp_path / "performance.md"
    edited.write_text((DOCS / "performance.md").read_text().replace("221.3 s", "59.0 s", 1))
    done = generator("--check", "--doc", str(edited))
    assert done.returncode == 1 and "is stale" in done.stderr


def test_every_published_result_is_dated_with_its_machine_and_command() -> None:
    """Each published result has a date, a machine and a command, and each table on the page
    stands under the line that says them."""
    published = sorted((ROOT / "bench" / "results" / "published").glob("*.json"))
    assert published
    for path in published:
        result = json.loads(path.read_text())
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", result["date"]), path.name
        assert result["machine"] and result["command"], path.name
    lines = outside_code((DOCS / "performance.md").read_text())
    tables = [i for i, line in enumerate(lines) if line.startswith("|---")]
    assert len(tables) == len(published)
    for i in tables:
        said = lines[i - 3]
        assert re.match(r"\*\*.+\.\*\* Measured \d{4}-\d{2}-\d{2} with `[^`]+`, on .+\.$", said), (
            said
        )


def test_live_events_docs_give_the_watchers_real_figures() -> None:
    """docs/api.md says how often a watched run's status is read, and so which revisions arrive
    as one patch, with the figures api/events.py uses: POLL_S, QUERY_SHARE's inverse, KEEPALIVE_S."""
    live = section((ROOT / "docs" / "api.md").read_text(), "## Live events")
    prose = " ".join(live.split())
    assert f"once every {events.POLL_S:g} s" in prose
    assert f"revisions that come within {events.POLL_S:g} s of each other" in prose
    words = {20: "twenty"}
    assert f"waits {words[round(1 / events.QUERY_SHARE)]} times as long" in prose
    assert f"about {events.QUERY_SHARE * 100:g} % of its time" in prose
    assert f"keep-alive comment after {events.KEEPALIVE_S:g} s" in prose
