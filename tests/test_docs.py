"""The README stays true: every setting, every route and both set-up commands are documented."""

from __future__ import annotations

import re

from activities.config import Settings
from api.app import create_app
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_documents_every_setting() -> None:
    """Each environment variable Settings reads has a row in the configuration table."""
    missing = [n.upper() for n in Settings.model_fields if f"| `{n.upper()}` |" not in README]
    assert not missing, f"README lacks configuration rows for {missing}"


def test_readme_documents_every_route() -> None:
    """Each method and path in the OpenAPI document appears in the README's API table."""
    schema = create_app(Settings(stepgate_api_keys_file=None)).openapi()["paths"]

    def norm(path: str) -> str:
        return re.sub(r"\{[a-z_]+\}", "{}", path)

    served = {f"{m.upper()} {norm(p)}" for p, ops in schema.items() for m in ops}
    documented = {
        f"{m} {norm(p)}" for m, p in re.findall(r"`(GET|POST|DELETE) (/[^`\s]*)`", README)
    }
    assert served <= documented, f"README's API table lacks {sorted(served - documented)}"


def test_readme_shows_the_two_commands() -> None:
    """`make run` and `make test` are the documented set-up commands."""
    assert "make run" in README and "make test" in README
