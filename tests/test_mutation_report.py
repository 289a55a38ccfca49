"""scripts/mutation-report: what counts as killed, and when a module below target passes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def report(tmp_path: Path, codes: dict[str, int | None], equivalent: str = "") -> tuple[int, str]:
    """Run the real script over a mutants folder holding one module with these exit codes."""
    (tmp_path / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "mutation-report", tmp_path / "scripts")
    meta = tmp_path / "mutants" / "workflows" / "m.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    (tmp_path / "tests" / "rules").mkdir(parents=True)
    (tmp_path / "tests" / "rules" / "EQUIVALENT").write_text(equivalent)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "mutation-report")],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, done.stdout


def test_report_counts_unreached_and_unrun_mutants_as_survivors(tmp_path: Path) -> None:
    """Only killed, timed-out and type-checked mutants count; "no tests" and unrun ones survive."""
    codes: dict[str, int | None] = {f"workflows.m.x_f__mutmut_{i}": 1 for i in range(6)}
    codes |= {"workflows.m.x_f__mutmut_6": 36, "workflows.m.x_f__mutmut_7": 37}
    codes |= {"workflows.m.x_g__mutmut_1": 33, "workflows.m.x_g__mutmut_2": None}
    rc, out = report(tmp_path, codes)
    assert rc == 1
    assert out.splitlines()[1:] == [
        "workflows/m.py                         10       8  80.0%  2",
        "    workflows.m.x_g__mutmut_1  (no tests)",
        "    workflows.m.x_g__mutmut_2  (not checked)",
    ]


def test_report_passes_a_module_whose_survivors_are_all_equivalent(tmp_path: Path) -> None:
    """Below the target, a module passes only when every survivor is listed with a reason."""
    codes: dict[str, int | None] = {"workflows.m.x_f__mutmut_1": 1, "workflows.m.x_f__mutmut_2": 0}
    rc, out = report(tmp_path, codes, "# why\nworkflows.m.x_f__mutmut_2  same either way\n")
    assert rc == 0
    assert "workflows.m.x_f__mutmut_2  (equivalent: see tests/rules/EQUIVALENT)" in out
    rc, _ = report(tmp_path / "again", {**codes, "workflows.m.x_f__mutmut_3": 0}, "")
    assert rc == 1
