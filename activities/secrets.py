"""Secrets: `${secret.NAME}` resolved inside activities only (masking is in activities/masking.py)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from activities.errors import fatal

ENV_PREFIX = "STEPGATE_SECRET_"
_REF = re.compile(r"\$\{\s*secret\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")


class SecretStore:
    """Looks up NAME as env `STEPGATE_SECRET_NAME`, then as the file `<secrets_dir>/NAME`.

    Only prefixed variables are visible, so a pipeline cannot read the worker's own environment.
    """

    def __init__(self, secrets_dir: Path | None = None, environ: Mapping[str, str] | None = None):
        self._dir = secrets_dir
        self._env = os.environ if environ is None else environ

    def get(self, name: str) -> str | None:
        value = self._env.get(ENV_PREFIX + name)
        if value is not None:
            return value
        if self._dir is not None:
            path = self._dir / name
            if path.is_file():
                return path.read_text().rstrip("\n")
        return None

    def reveal(self, name: str, used: set[str]) -> str:
        """The value of secret `name` (added to `used`, so it can be masked), or a final error."""
        value = self.get(name)
        if value is None:
            raise fatal(
                f"secret {name!r} is not configured on this worker "
                f"(set {ENV_PREFIX}{name} or add a file to the secrets folder)",
                "MissingSecret",
            )
        used.add(value)
        return value

    def known_values(self) -> set[str]:
        """Every secret value this worker holds, to mask wherever it might show up."""
        values = {v for k, v in self._env.items() if k.startswith(ENV_PREFIX) and v}
        if self._dir is not None and self._dir.is_dir():
            for path in self._dir.iterdir():
                if path.is_file():
                    values.add(path.read_text().rstrip("\n"))
        return {v for v in values if v}

    def resolve(self, obj: Any, used: set[str]) -> Any:
        """Calls of runs started before slots existed only: a copy of `obj` with every
        `${secret.NAME}` replaced (whatever the text came from)."""
        if isinstance(obj, str):
            return _REF.sub(lambda m: self.reveal(m.group(1), used), obj)
        if isinstance(obj, dict):
            return {k: self.resolve(v, used) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.resolve(v, used) for v in obj]
        return obj
