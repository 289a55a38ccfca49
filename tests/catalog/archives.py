"""Real package files built in memory for the package analyser's tests: an npm tarball, a
wheel, a Debian package, and hostile archives (names that leave the package, links out,
declared sizes of a bomb, an end record claiming a million entries)."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zipfile
import zlib
from typing import Any

PACKAGE_JSON = {
    "name": "items",
    "version": "1.2.0",
    "description": "keeps a list of items",
    "license": "MIT",
    "main": "app.js",
    "scripts": {"test": "node --test", "postinstall": "node setup.js"},
    "dependencies": {"left-pad": "^1.3.0"},
}


def tar_bytes(files: dict[str, bytes], compression: str = "gz", **special: Any) -> bytes:
    """A tar archive of `files`; `special` maps names to TarInfo fields (type, linkname, mode)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w:{compression}" if compression else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            for key, value in special.get(name, {}).items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return out.getvalue()


def npm_tarball(**overrides: Any) -> bytes:
    manifest = json.dumps({**PACKAGE_JSON, **overrides}).encode()
    return tar_bytes(
        {"package/package.json": manifest, "package/app.js": b"module.exports = {};\n"}
    )


def wheel() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("items/__init__.py", "")
        zf.writestr(
            "items-1.2.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: items\nVersion: 1.2.0\nSummary: keeps items\n"
            "Requires-Python: >=3.11\nRequires-Dist: httpx>=0.27\nRequires-Dist: pyyaml\n\n"
            "A long description.\nName: not-a-header\n",
        )
        zf.writestr("items-1.2.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    return out.getvalue()


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def deb() -> bytes:
    control = (
        b"Package: items\nVersion: 1.2.0-1\nArchitecture: all\nMaintainer: Ops <ops@example.com>\n"
        b"Depends: nodejs (>= 18)\nDescription: keeps a list of items\n a longer text\n"
    )
    control_tar = tar_bytes({"./control": control, "./postinst": b"#!/bin/sh\nexit 0\n"})
    data_tar = tar_bytes(
        {"./opt/items/app.js": b"module.exports = {};\n", "./opt/items/README": b"items\n"},
        compression="xz",
    )
    return _ar(
        [("debian-binary", b"2.0\n"), ("control.tar.gz", control_tar), ("data.tar.xz", data_tar)]
    )


def hostile_tarball() -> bytes:
    """Names and entries that would write outside the package if it were extracted."""
    return tar_bytes(
        {
            "package/package.json": json.dumps(PACKAGE_JSON).encode(),
            "../../etc/cron.d/evil": b"* * * * * root sh\n",
            "/etc/shadow": b"root::0:0\n",
            "package/a/../../../escape": b"x",
            "package/passwd": b"",
            "package/evil\x1b[2J\u202etxt.sh": b"echo\n",
            "package/dev": b"",
            "package/suid": b"\x7fELF",
        },
        **{
            "package/passwd": {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"},
            "package/dev": {"type": tarfile.CHRTYPE},
            "package/suid": {"mode": 0o4755},
        },
    )


def zip_declaring(entries: int, declared_size: int) -> bytes:
    """A zip of `entries` tiny entries whose headers declare `declared_size` bytes each: a bomb
    by declared size (the data itself is a few bytes)."""
    local, central = b"", b""
    payload = zlib.compress(b"{}")[2:-4]  # raw deflate of "{}"
    crc = zlib.crc32(b"{}")
    for n in range(entries):
        name = ("package.json" if n == 0 else f"blob{n}.bin").encode()
        offset = len(local)
        local += (
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0,
                8,
                0,
                0,
                crc,
                len(payload),
                declared_size,
                len(name),
                0,
            )
            + name
            + payload
        )
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                8,
                0,
                0,
                crc,
                len(payload),
                declared_size,
                len(name),
                0,
                0,
                0,
                0,
                0o100644 << 16,
                offset,
            )
            + name
        )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, entries, entries, len(central), len(local), 0)
    return local + central + end


def zip_claiming(entries: int) -> bytes:
    """A zip (a bare local header, then the end records) whose end record claims `entries`
    entries, through a zip64 end record when over 65,534."""
    start = b"PK\x03\x04" + bytes(26)
    if entries < 0xFFFF:
        return start + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, entries, entries, 0, 0, 0)
    zip64_end = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, entries, entries, 0, 0)
    locator = struct.pack("<IIQI", 0x07064B50, 0, len(start), 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return start + zip64_end + locator + end
