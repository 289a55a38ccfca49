"""A package file's contents, listed from the bytes in memory: never extracted, every bound
named. Types are told by their first bytes, not their names.

Entry names are data: they are listed (escaped) and flagged when they would leave the package
if extracted (absolute, `..`, links out), never used as paths. Only a few members are read,
chosen by exact name (a package.json, a wheel's METADATA, a Debian control file), each at most
MAX_MEMBER_BYTES; a compressed stream is read at most MAX_UNPACKED_BYTES far; a zip's entry
count is read from its end record before the zip module builds its directory.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import posixpath
import re
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Any

from activities.tools import _package_meta as meta
from activities.tools._package_meta import Metadata, clean

MAX_ENTRIES = 10_000
MAX_LISTED = 100
MAX_WARNINGS = 50
MAX_MEMBER_BYTES = 256 * 1024
MAX_UNPACKED_BYTES = 128 * 1024 * 1024
# Declared unpacked size over packed size past which a package is flagged as a bomb.
BOMB_RATIO = 100
BOMB_MIN_BYTES = 64 * 1024 * 1024
_WHEEL_METADATA = re.compile(r"^[^/]+\.dist-info/METADATA$")
_NPM_MANIFESTS = ("package/package.json", "package.json")


class _TooMuch(Exception):
    """A decompressed stream went past MAX_UNPACKED_BYTES."""


@dataclass
class Entry:
    name: str
    size: int
    kind: str  # file, dir, link, hardlink, device, fifo, other


@dataclass
class Listing:
    type: str
    entries: list[Entry] = field(default_factory=list)
    total: int = 0
    unpacked: int = 0
    metadata: Metadata = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)
        elif len(self.warnings) == MAX_WARNINGS:
            self.warnings.append("(further warnings not listed)")

    def add(self, name: str, size: int, kind: str, link: str = "", mode: int = 0) -> None:
        self.total += 1
        self.unpacked += max(size, 0)
        shown = clean(name, 300)
        if len(self.entries) < MAX_LISTED:
            self.entries.append(Entry(shown, size, kind))
        parts = re.split(r"[/\\]", name)
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            self.warn(f"{shown}: an absolute path")
        elif ".." in parts:
            self.warn(f"{shown}: leaves the package (..)")
        if kind in ("link", "hardlink"):
            # A symbolic link is read from its own folder, a hard link from the archive's root.
            base = posixpath.dirname(name) if kind == "link" else ""
            target = posixpath.normpath(posixpath.join(base, link))
            if link.startswith("/") or target.startswith("../") or target == "..":
                self.warn(f"{shown}: a link out of the package ({clean(link, 200)})")
        if kind in ("device", "fifo"):
            self.warn(f"{shown}: a {kind} entry")
        if mode & 0o6000 and kind == "file":
            self.warn(f"{shown}: setuid or setgid")


class _Capped(io.RawIOBase):
    """A decompressed stream that refuses to be read past MAX_UNPACKED_BYTES."""

    def __init__(self, inner: io.BufferedIOBase) -> None:
        self.inner = inner
        self.read_so_far = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.read_so_far += len(data)
        if self.read_so_far > MAX_UNPACKED_BYTES:
            raise _TooMuch
        buffer[: len(data)] = data
        return len(data)


def _decompressor(data: bytes) -> tuple[str, io.BufferedIOBase] | None:
    if data[:2] == b"\x1f\x8b":
        return "gz", gzip.GzipFile(fileobj=io.BytesIO(data))
    if data[:6] == b"\xfd7zXZ\x00":
        return "xz", lzma.LZMAFile(io.BytesIO(data))
    if data[:3] == b"BZh":
        return "bz2", bz2.BZ2File(io.BytesIO(data))
    return None


def _head(stream: io.BufferedIOBase) -> bytes:
    """The first tar block of a compressed stream, or what there is of it."""
    try:
        return stream.read(512)
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return b""


def _is_tar(data: bytes) -> bool:
    return data[257:262] == b"ustar"


_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "link",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "device",
    tarfile.BLKTYPE: "device",
    tarfile.FIFOTYPE: "fifo",
}


def _walk_tar(
    stream: IO[bytes], listing: Listing, wanted: tuple[str, ...] | re.Pattern[str] = ()
) -> dict[str, bytes]:
    """List a tar stream's entries into `listing`; the members named in `wanted` (exact names
    after a leading `./`, or a pattern) read, each at most MAX_MEMBER_BYTES."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if listing.total >= MAX_ENTRIES:
                    listing.warn(f"more than {MAX_ENTRIES} entries: the rest are not listed")
                    break
                kind = _KINDS.get(member.type, "other")
                listing.add(member.name, member.size, kind, member.linkname, member.mode)
                name = member.name.removeprefix("./")
                hit = wanted.match(name) if isinstance(wanted, re.Pattern) else name in wanted
                if hit and kind == "file" and member.size <= MAX_MEMBER_BYTES and name not in found:
                    reader = tar.extractfile(member)
                    if reader is not None:
                        found[name] = reader.read(MAX_MEMBER_BYTES)
    except _TooMuch:
        listing.warn(
            f"stopped after unpacking {MAX_UNPACKED_BYTES} bytes: a decompression bomb, or a "
            "package too large to list"
        )
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as err:
        listing.warn(f"the archive is damaged after {listing.total} entries: {clean(err, 200)}")
    return found


def _tar(data: bytes, listing: Listing) -> None:
    packed = _decompressor(data)
    stream: IO[bytes] = io.BufferedReader(_Capped(packed[1])) if packed else io.BytesIO(data)
    found = _walk_tar(stream, listing, _NPM_MANIFESTS)
    for name in _NPM_MANIFESTS:
        if name in found:
            listing.type = "npm" if name.startswith("package/") else listing.type
            listing.metadata = meta.npm(found[name], listing.warnings)
            break


def _zip_entry_count(data: bytes) -> int | None:
    """Entries a zip's end record declares (zip64 too), read before anything is built."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or end + 22 > len(data):
        return None
    count: int = struct.unpack_from("<H", data, end + 10)[0]
    locator = end - 20
    if count == 0xFFFF and locator >= 0 and data[locator : locator + 4] == b"PK\x06\x07":
        offset = struct.unpack_from("<Q", data, locator + 8)[0]
        if data[offset : offset + 4] == b"PK\x06\x06" and offset + 40 <= len(data):
            count = struct.unpack_from("<Q", data, offset + 32)[0]
    return count


def _zip(data: bytes, listing: Listing) -> None:
    declared = _zip_entry_count(data)
    if declared is None or declared > MAX_ENTRIES:
        listing.warn(
            f"declares {declared} entries: more than {MAX_ENTRIES}, not listed"
            if declared is not None
            else "no zip end record: not listed"
        )
        return
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        listing.warn(f"the zip is damaged: {clean(err, 200)}")
        return
    with archive:
        infos = archive.infolist()[:MAX_ENTRIES]
        for info in infos:
            mode = info.external_attr >> 16
            kind = "dir" if info.is_dir() else "link" if (mode & 0o170000) == 0o120000 else "file"
            link = ""
            if kind == "link" and info.file_size <= 4096:
                link = _zip_member(archive, info, listing).decode("utf-8", errors="replace")
            listing.add(info.filename, info.file_size, kind, link, mode)
        names = {i.filename: i for i in infos}
        if any(n.endswith(".dist-info/WHEEL") for n in names):
            listing.type = "wheel"
        wheel = listing.type == "wheel"
        for name, info in names.items():
            if wheel and _WHEEL_METADATA.match(name):
                listing.metadata = meta.wheel(_zip_member(archive, info, listing), listing.warnings)
                break
            if not wheel and name in _NPM_MANIFESTS:
                listing.metadata = meta.npm(_zip_member(archive, info, listing), listing.warnings)
                break


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, listing: Listing) -> bytes:
    """At most MAX_MEMBER_BYTES of one member, whatever size it declares."""
    try:
        with archive.open(info) as member:
            return member.read(MAX_MEMBER_BYTES)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, zlib.error) as err:
        listing.warn(f"{clean(info.filename, 200)} cannot be read: {clean(err, 200)}")
        return b""


def _ar_members(data: bytes) -> list[tuple[str, bytes]]:
    """The members of an `ar` archive (a .deb): name and bytes, at most 16 of them."""
    members: list[tuple[str, bytes]] = []
    at = 8
    while at + 60 <= len(data) and len(members) < 16:
        header = data[at : at + 60]
        name = header[:16].decode("ascii", errors="replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip() or "0")
        except ValueError:
            break
        members.append((name, data[at + 60 : at + 60 + size]))
        at += 60 + size + (size % 2)
    return members


def _deb(data: bytes, listing: Listing) -> None:
    members = dict(_ar_members(data))
    control = next((v for k, v in members.items() if k.startswith("control.tar")), None)
    payload = next((v for k, v in members.items() if k.startswith("data.tar")), None)
    if "debian-binary" not in members or control is None or payload is None:
        listing.warn("not a Debian package: debian-binary, control.tar.* or data.tar.* missing")
        return
    control_listing = Listing("control")
    scripts = meta.DEB_MAINTAINER_SCRIPTS
    found = _walk_tar(_stream(control, listing), control_listing, ("control", *scripts))
    for warning in control_listing.warnings:
        listing.warn(warning)
    listing.metadata = meta.deb(
        found.get("control", b""), [s for s in scripts if s in found], listing.warnings
    )
    _walk_tar(_stream(payload, listing), listing)


def _stream(data: bytes, listing: Listing) -> IO[bytes]:
    packed = _decompressor(data)
    if packed is None and not _is_tar(data) and data[:4] == b"\x28\xb5\x2f\xfd":
        listing.warn("a zstd-compressed member cannot be read here")
    return io.BufferedReader(_Capped(packed[1])) if packed else io.BytesIO(data)


def inspect(data: bytes) -> Listing:
    """What `data` holds: its type, entries (bounded), metadata and what a reviewer should know."""
    if data[:8] == b"!<arch>\n":
        listing = Listing("deb")
        _deb(data, listing)
    elif data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        listing = Listing("zip")
        _zip(data, listing)
    elif (packed := _decompressor(data)) is not None:
        if not _is_tar(_head(packed[1])):
            return Listing(packed[0])
        listing = Listing(f"tar.{packed[0]}")
        _tar(data, listing)
    elif _is_tar(data):
        listing = Listing("tar")
        _tar(data, listing)
    else:
        return Listing("unknown")
    if listing.unpacked > BOMB_MIN_BYTES and listing.unpacked > BOMB_RATIO * max(len(data), 1):
        listing.warn(
            f"declares {listing.unpacked} bytes unpacked from {len(data)}: a decompression bomb?"
        )
    return listing
