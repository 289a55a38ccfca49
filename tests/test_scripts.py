"""Shell entry points (CI, set-up scripts, Makefile) must not die of their own pipes.

Under `set -o pipefail`, piping into a reader that stops early (`head`, `grep -q`, an `awk`
that `exit`s) kills the writer with SIGPIPE whenever it writes after the reader has gone, and the
pipeline then fails with status 141 at random. CI once failed that way on `make --version | head`.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import ROOT

SHELL_FILES = [ROOT / ".ci" / "run", ROOT / "Makefile", *sorted((ROOT / "scripts").iterdir())]
EARLY_READER = re.compile(r"\|\s*(head\b|grep\s+(-\w*q|--quiet)|awk\b[^|]*\bexit\b)")


@pytest.mark.parametrize("path", SHELL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pipe_into_a_reader_that_stops_early(path) -> None:
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    # A pipe at the end of a line continues on the next one.
    logical = re.sub(r"\|\s*\n\s*", "| ", "\n".join(lines)).splitlines()
    offenders = [
        f"{path.relative_to(ROOT)}: {line.strip()}" for line in logical if EARLY_READER.search(line)
    ]
    assert offenders == [], "a reader that stops early can SIGPIPE the writer:\n" + "\n".join(
        offenders
    )


def test_ci_tools_section_survives_many_repeats() -> None:
    """The exact version lines CI prints, repeated: none may end in SIGPIPE."""
    text = (ROOT / ".ci" / "run").read_text()
    lines = [line for line in text.splitlines() if re.match(r"^(bash|make) --version \|", line)]
    assert len(lines) == 2, lines
    script = (
        "set -euo pipefail\nfor i in $(seq 100); do\n" + "\n".join(lines) + "\ndone >/dev/null\n"
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (result.returncode, result.stderr)
