"""`script.check`: a static rule check of a shell script before anyone runs it: downloads piped
into a shell, `rm -rf /`, disk wipes, fork bombs, reverse shells, sudoers edits (refused) and
weaker habits (warned). Patterns are RE2 (linear time); the script is data and never runs."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Literal

import re2
from pydantic import BaseModel, ConfigDict, Field

from activities.context import ToolContext
from activities.errors import fatal
from activities.registry import sends_to_fields, tool
from activities.tools._masking import masked_failures
from activities.tools._package_meta import clean

MAX_SCRIPT_CHARS = 262_144
MAX_LINES = 10_000
MAX_FINDINGS = 50

Severity = Literal["block", "warn"]

_SHELLS = r"(ba|z|k|da|fi|c|tc)?sh"
_INTERPRETERS = rf"({_SHELLS}|python[0-9.]*|perl|ruby|node|php)"
_FETCH = r"(curl|wget|fetch)"
# `/`, `/*`, `~`, `$HOME` or a top-level system folder, as a whole argument.
_ROOTS = (
    r"[\"']?(/|/\*|~/?|\$HOME/?|\$\{HOME\}/?|/(bin|boot|dev|etc|home|lib|lib64|opt|proc|root|"
    r"sbin|srv|sys|usr|var)/?\*?)[\"']?(\s|;|&|\||\)|$)"
)


@dataclass(frozen=True)
class Rule:
    name: str
    severity: Severity
    pattern: str
    why: str


RULES = (
    Rule(
        "pipe-to-shell",
        "block",
        rf"(^|[^|])\|\s*(sudo\s+(-\S+\s+)*)?(env\s+)?(\S*/)?{_INTERPRETERS}(\s|;|$)",
        "pipes text into a shell or an interpreter (`curl ... | sh`): what runs is never reviewed",
    ),
    Rule(
        "remote-exec",
        "block",
        rf"(<\(\s*{_FETCH}\b|\b(eval|source|{_SHELLS})\b[^\n]*\$\(\s*{_FETCH}\b|`\s*{_FETCH}\b)",
        'runs what a download returns (`bash <(curl ...)`, `eval "$(curl ...)"`)',
    ),
    Rule(
        "rm-root",
        "block",
        rf"\brm\s+(-{{1,2}}[A-Za-z-]+\s+)*(\S+\s+)*{_ROOTS}",
        "removes the root, a home or a system folder",
    ),
    Rule("no-preserve-root", "block", r"--no-preserve-root", "disables rm's guard for /"),
    Rule(
        "disk-wipe",
        "block",
        r"(\b(mkfs(\.\w+)?|wipefs|shred\s+[^\n]*/dev/)\b|\bdd\b[^\n]*\bof=/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk)|>\s*/dev/(sd|hd|vd|xvd|nvme|mmcblk))",
        "formats or overwrites a disk",
    ),
    Rule(
        "fork-bomb",
        "block",
        r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:",
        "a fork bomb",
    ),
    Rule(
        "reverse-shell",
        "block",
        r"(/dev/(tcp|udp)/|\b(nc|ncat|netcat)\b[^\n]*\s-[a-z]*e\s)",
        "opens a shell over the network",
    ),
    Rule(
        "sudoers",
        "block",
        r"(>>?\s*/etc/sudoers|\btee\s+(-a\s+)?/etc/sudoers|NOPASSWD)",
        "grants itself sudo rights",
    ),
    Rule(
        "rm-unguarded-variable",
        "warn",
        r"\brm\s+(-\S+\s+)*[\"']?\$\{?[A-Za-z_][A-Za-z0-9_]*\}?[\"']?/",
        "removes under a variable that may be empty (write `${VAR:?}`)",
    ),
    Rule(
        "insecure-download",
        "warn",
        rf"\b{_FETCH}\b[^\n]*(\s-k\b|--insecure|--no-check-certificate)",
        "downloads without checking TLS certificates",
    ),
    Rule(
        "world-writable",
        "warn",
        r"\bchmod\s+(-\S+\s+)*(0?777|a\+w|o\+w)\b",
        "makes files writable by everyone",
    ),
    Rule(
        "setuid",
        "warn",
        r"\bchmod\s+(-\S+\s+)*([ugoa]*\+[rwx]*s|0?[4-7][0-7]{3})\b",
        "sets the setuid or setgid bit",
    ),
)
_COMPILED = [(rule, re2.compile(rule.pattern)) for rule in RULES]


class ScriptCheckInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    script: str = Field(
        max_length=MAX_SCRIPT_CHARS,
        description=f"The shell script's text (at most {MAX_SCRIPT_CHARS} characters and "
        f"{MAX_LINES} lines); it never runs.",
    )
    refuse: bool = Field(
        True,
        description="Fail the step (ScriptRefused, naming each rule and line) when a blocking "
        "rule matches; false returns the findings with `ok: false` instead.",
    )


class ScriptFinding(BaseModel):
    rule: str = Field(description="The rule's name, e.g. `pipe-to-shell`.")
    severity: Severity = Field(description="`block` refuses the script; `warn` only tells.")
    line: int = Field(description="The line (from 1) where the command starts.")
    text: str = Field(description="The command, escaped and cut at 200 characters.")
    why: str = Field(description="What the rule guards against.")


class ScriptCheckOutput(BaseModel):
    ok: bool = Field(description="True when no blocking rule matched.")
    findings: list[ScriptFinding] = Field(description=f"At most {MAX_FINDINGS}, in line order.")
    lines: int = Field(description="Lines in the script.")


def _commands(script: str) -> list[tuple[int, str]]:
    """Each logical line (continuations joined) with the line it starts on; comment lines out."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, line in enumerate(script.splitlines(), 1):
        if not pending:
            start = number
            if line.lstrip().startswith("#"):
                continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def findings_of(script: str) -> list[ScriptFinding]:
    """Every rule that matches, per logical line, at most MAX_FINDINGS."""
    found: list[ScriptFinding] = []
    for line, command in _commands(script):
        # Tabs and other blanks read as spaces; a quoted empty string (`r""m`) as nothing.
        text = re.sub(r"\s+", " ", command).replace('""', "").replace("''", "")
        for rule, pattern in _COMPILED:
            if pattern.search(text):
                found.append(
                    ScriptFinding(
                        rule=rule.name,
                        severity=rule.severity,
                        line=line,
                        text=clean(command.strip(), 200),
                        why=rule.why,
                    )
                )
                if len(found) >= MAX_FINDINGS:
                    return found
    return found


@tool("script.check", "1.0.0", risk="low", local=True, sends_to=sends_to_fields())
async def script_check(inp: ScriptCheckInput, ctx: ToolContext) -> ScriptCheckOutput:
    """Check a shell script against rules that refuse dangerous commands; it never runs."""
    lines = inp.script.count("\n") + 1
    with masked_failures(ctx.secret_values):
        if lines > MAX_LINES:
            raise fatal(f"the script has {lines} lines; at most {MAX_LINES}", "ScriptTooLarge")
        found = await asyncio.to_thread(findings_of, inp.script)
        blocking = [f for f in found if f.severity == "block"]
        if blocking and inp.refuse:
            listed = "; ".join(f"line {f.line}: {f.rule} ({f.why})" for f in blocking[:10])
            raise fatal(f"the script is refused: {listed}", "ScriptRefused")
    return ScriptCheckOutput(ok=not blocking, findings=found, lines=lines)
