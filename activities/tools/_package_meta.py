"""What a package says of itself: npm's package.json, a wheel's METADATA, a Debian package's
control file, read from bytes already held in memory and bounded field by field."""

from __future__ import annotations

from email.parser import HeaderParser
from typing import Any

from activities.documents import DocumentError, parse_json

Metadata = dict[str, str | list[str]]

MAX_VALUE_CHARS = 1_000
MAX_LIST_ITEMS = 50
# npm runs these on install: a reviewer must know the package runs code of its own.
NPM_INSTALL_SCRIPTS = ("preinstall", "install", "postinstall", "prepare")
DEB_MAINTAINER_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config")
_WHEEL_FIELDS = ("Name", "Version", "Summary", "License", "Requires-Python", "Home-page")
_WHEEL_LISTS = ("Requires-Dist", "Provides-Extra", "Classifier")
_DEB_FIELDS = (
    "Package",
    "Version",
    "Architecture",
    "Maintainer",
    "Section",
    "Priority",
    "Depends",
    "Pre-Depends",
    "Conflicts",
    "Installed-Size",
)


def clean(text: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """Text as data a reviewer reads: control and bidirectional characters (terminal escapes,
    a right-to-left override) shown escaped (`\\x1b`, `\\u202e`), cut at `limit` characters."""
    shown = (
        c if c.isprintable() else c.encode("unicode_escape").decode() for c in str(text)[:limit]
    )
    joined = "".join(shown)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def _strings(values: Any) -> list[str]:
    return [clean(v, 200) for v in list(values)[:MAX_LIST_ITEMS]]


def npm(raw: bytes, warnings: list[str]) -> Metadata:
    """name, version, description, license, main, scripts and dependencies of a package.json."""
    try:
        data = parse_json(raw)
    except DocumentError as err:
        warnings.append(f"package.json does not parse: {clean(err, 200)}")
        return {"format": "npm"}
    if not isinstance(data, dict):
        warnings.append("package.json is not an object")
        return {"format": "npm"}
    found: Metadata = {"format": "npm"}
    for key in ("name", "version", "description", "license", "main"):
        if isinstance(data.get(key), str | int | float):
            found[key] = clean(data[key])
    scripts: dict[str, Any] = data["scripts"] if isinstance(data.get("scripts"), dict) else {}
    if scripts:
        found["scripts"] = _strings(f"{k}: {v}" for k, v in scripts.items())
    for hook in NPM_INSTALL_SCRIPTS:
        if hook in scripts:
            warnings.append(
                f"package.json runs a `{hook}` script on install: {clean(scripts[hook], 200)}"
            )
    for key in ("dependencies", "peerDependencies"):
        deps = data.get(key)
        if isinstance(deps, dict) and deps:
            found[key] = _strings(f"{k} {v}" for k, v in deps.items())
    return found


def wheel(raw: bytes, warnings: list[str]) -> Metadata:
    """The core fields of a wheel's METADATA (RFC 822 headers; the long description skipped)."""
    text = raw.decode("utf-8", errors="replace")
    headers = HeaderParser().parsestr(text.split("\n\n", 1)[0], headersonly=True)
    found: Metadata = {"format": "wheel"}
    for key in _WHEEL_FIELDS:
        if headers.get(key) is not None:
            found[key.lower()] = clean(headers[key])
    for key in _WHEEL_LISTS:
        values = headers.get_all(key) or []
        if values:
            found[key.lower()] = _strings(values)
    return found


def deb(raw: bytes, scripts: list[str], warnings: list[str]) -> Metadata:
    """The control fields of a Debian package, and the maintainer scripts it carries."""
    found: Metadata = {"format": "deb"}
    fields: dict[str, str] = {}
    for line in raw.decode("utf-8", errors="replace").splitlines()[:500]:
        if line[:1] in (" ", "\t"):
            continue  # a continuation line: only the first line of each field is kept
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    for key in _DEB_FIELDS:
        if key in fields:
            found[key.lower()] = clean(fields[key])
    if "Description" in fields:
        found["description"] = clean(fields["Description"])
    if "Package" in fields:
        found["name"] = clean(fields["Package"])
    if scripts:
        found["maintainer_scripts"] = sorted(scripts)
        warnings.append(f"runs maintainer scripts on install: {', '.join(sorted(scripts))}")
    return found
