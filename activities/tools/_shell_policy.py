"""Where and as whom shell.run runs a program: the run's workspace, a user that is never root,
and an environment built from an allowlist."""

from __future__ import annotations

import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from activities.artifacts import run_dir
from activities.config import Settings
from activities.errors import fatal

# The child's PATH, whatever the worker's; bare allowlist names are looked up on it too.
FIXED_PATH = "/usr/local/bin:/usr/bin:/bin"
# What a step may set in `env`; everything else (LD_*, PYTHON*, PATH, HOME, ...) is refused.
STEP_ENV_DOC = "LANG, LANGUAGE, LC_*, TZ, TERM, NO_COLOR and APP_* (e.g. APP_MODE)"
_LOCALE = re.compile(r"^[A-Za-z0-9_.@-]*$")
_STEP_ENV: list[tuple[re.Pattern[str], re.Pattern[str], str]] = [
    # Locale and terminal names never hold a '/': glibc would read such a name as a file path.
    (re.compile(r"^(LANG|LC_[A-Z]+)$"), _LOCALE, "a locale name such as 'C.UTF-8'"),
    (re.compile(r"^LANGUAGE$"), re.compile(r"^[A-Za-z0-9_.@:-]*$"), "a list such as 'de:en'"),
    (
        re.compile(r"^TZ$"),
        re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"),
        "a zone such as 'Europe/Paris'",
    ),
    (re.compile(r"^TERM$"), re.compile(r"^[A-Za-z0-9._+-]*$"), "a terminal name such as 'dumb'"),
    (re.compile(r"^(NO_COLOR|APP_[A-Z0-9_]+)$"), re.compile(r"^[^\x00]*$"), "text without NUL"),
]
MAX_ENV_VARS = 64
MAX_ENV_VALUE = 32_768


def check_step_env(env: dict[str, str]) -> dict[str, str]:
    """The step's variables, or ValueError naming the first one a step may not set."""
    if len(env) > MAX_ENV_VARS:
        raise ValueError(f"at most {MAX_ENV_VARS} variables")
    for name, value in env.items():
        rule = next((r for r in _STEP_ENV if r[0].match(name)), None)
        if rule is None:
            raise ValueError(f"variable {name!r} is not allowed; a step may set {STEP_ENV_DOC}")
        if len(value) > MAX_ENV_VALUE or not rule[1].match(value):
            raise ValueError(f"variable {name!r} must be {rule[2]} (at most {MAX_ENV_VALUE} chars)")
    return env


def child_env(step_env: dict[str, str], workspace: Path) -> dict[str, str]:
    """The program's whole environment: fixed basics plus what the step set, nothing inherited."""
    return {"PATH": FIXED_PATH, "HOME": str(workspace), "LANG": "C.UTF-8", **step_env}


@dataclass(frozen=True)
class RunAs:
    """Who the program runs as: the worker's own user, or (for a root worker) a named one."""

    uid: int
    gid: int
    switch: bool


def run_as(settings: Settings) -> RunAs:
    """Programs never run as root: a root worker hands them to STEPGATE_SHELL_USER."""
    if os.geteuid() != 0:
        return RunAs(os.geteuid(), os.getegid(), switch=False)
    name = settings.stepgate_shell_user
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise fatal(
            f"STEPGATE_SHELL_USER {name!r} is not a user on this worker", "ShellBadUser"
        ) from None
    if entry.pw_uid == 0:
        raise fatal("STEPGATE_SHELL_USER must not be root", "ShellBadUser")
    return RunAs(entry.pw_uid, entry.pw_gid, switch=True)


def usable(path: Path, who: RunAs, mode: int) -> Path | None:
    """The first of `path`'s parents (or `path` itself, needing `mode`) that `who` may not
    enter; the check the kernel would make, done by the worker before switching users."""
    if not who.switch:
        return None if os.access(path, mode) else path
    chain = [*reversed(path.parents), path]
    for item in chain:
        st = os.stat(item)
        need = mode if item == path else os.X_OK
        shift = 6 if st.st_uid == who.uid else 3 if st.st_gid == who.gid else 0
        if (st.st_mode >> shift) & need != need:
            return item
    return None


def prepare_workspace(root: Path, run: str, cwd: str | None, who: RunAs) -> tuple[Path, Path]:
    """Create the run's folder (owned by the program's user) and confine `cwd` to it."""
    workspace = run_dir(root.resolve(), run)
    workspace.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(workspace, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(workspace)
    if not stat.S_ISDIR(st.st_mode):
        raise fatal("the run's workspace is not a folder", "ShellBadCwd")
    if who.switch and st.st_uid != who.uid:
        os.lchown(workspace, who.uid, who.gid)
    target = Path(os.path.realpath(workspace / (cwd or ".")))
    if target != workspace and workspace not in target.parents:
        raise fatal(
            f"working directory {cwd!r} is outside the run's workspace (symbolic links are "
            "followed); give a folder inside it, relative to it",
            "ShellBadCwd",
        )
    if not target.is_dir():
        raise fatal(
            f"working directory {cwd!r} does not exist in the run's workspace", "ShellBadCwd"
        )
    return workspace, target
