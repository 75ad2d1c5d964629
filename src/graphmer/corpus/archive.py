"""Safe archive extraction: an archive is hostile until every member is proven harmless.

Refused (the whole archive, before anything lands in the target): absolute
paths, `..` components, links that point outside the target, device files,
FIFOs, more than `max_members` members, a member over `max_member_bytes` or a
total over `max_total_bytes` (decompression bombs; zip sizes are also counted
while copying, since a zip header can lie). Links that stay inside the
target are not materialized: source code needs none, and a link is a way out.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from graphmer import GraphmerError


class UnsafeArchiveError(GraphmerError):
    """An archive member that would escape the target or exhaust the disk."""


@dataclass(frozen=True)
class Limits:
    max_member_bytes: int = 64 * 2**20
    max_total_bytes: int = 2 * 2**30
    max_members: int = 200_000


ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")


def is_archive(path: str | Path) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def safe_member_path(name: str) -> PurePosixPath:
    """The relative path a member may be written to, or UnsafeArchiveError."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"member {name!r} has an absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"member {name!r} has a '..' component")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _link_stays_inside(member: PurePosixPath, target: str, hard: bool) -> bool:
    if target.startswith("/"):
        return False
    base = [] if hard else list(member.parent.parts)  # hard links are relative to the root
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not base:
                return False
            base.pop()
        else:
            base.append(part)
    return True


def extract_archive(archive: str | Path, dest: str | Path, limits: Limits = Limits()) -> int:
    """Extract `archive` into the empty folder `dest`; return the number of files written."""
    archive = Path(archive)
    if archive.name.lower().endswith(".zip"):
        return _extract_zip(archive, Path(dest), limits)
    try:
        with tarfile.open(archive, "r:*") as tar:
            return _extract_tar(tar, Path(dest), limits)
    except tarfile.TarError as err:
        raise UnsafeArchiveError(f"{archive.name}: not a readable archive ({err})") from err


def _check_counts(n_members: int, size: int, total: int, name: str, limits: Limits) -> None:
    if n_members > limits.max_members:
        raise UnsafeArchiveError(f"more than {limits.max_members} members")
    if size > limits.max_member_bytes:
        raise UnsafeArchiveError(f"member {name!r} is {size} bytes, over the {limits.max_member_bytes} cap")
    if total > limits.max_total_bytes:
        raise UnsafeArchiveError(f"archive unpacks to over {limits.max_total_bytes} bytes")


def _extract_tar(tar: tarfile.TarFile, dest: Path, limits: Limits) -> int:
    members = tar.getmembers()
    total, files = 0, []
    # First pass: prove every member harmless before writing a byte.
    for n, m in enumerate(members, 1):
        rel = safe_member_path(m.name)
        if m.issym() or m.islnk():
            if not _link_stays_inside(rel, m.linkname, hard=m.islnk()):
                raise UnsafeArchiveError(f"link {m.name!r} points outside the target ({m.linkname!r})")
            continue
        if m.isdev() or m.isfifo():
            raise UnsafeArchiveError(f"member {m.name!r} is a device or FIFO")
        total += m.size
        _check_counts(n, m.size, total, m.name, limits)
        if m.isfile():
            files.append((m, rel))
    for m, rel in files:
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(m)
        assert src is not None
        with src, open(out, "wb") as fh:
            shutil.copyfileobj(src, fh)
    return len(files)


def _extract_zip(archive: Path, dest: Path, limits: Limits) -> int:
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise UnsafeArchiveError(f"{archive.name}: not a readable archive ({err})") from err
    with zf:
        infos = zf.infolist()
        total, files = 0, []
        for n, info in enumerate(infos, 1):
            rel = safe_member_path(info.filename)
            mode = info.external_attr >> 16
            if mode and (mode & 0o170000) == 0o120000:  # a symlink stored by Unix zip
                target = zf.read(info).decode("utf-8", "replace")
                if not _link_stays_inside(rel, target, hard=False):
                    raise UnsafeArchiveError(f"link {info.filename!r} points outside the target")
                continue
            if mode and (mode & 0o170000) in (0o020000, 0o060000, 0o010000):
                raise UnsafeArchiveError(f"member {info.filename!r} is a device or FIFO")
            total += info.file_size
            _check_counts(n, info.file_size, total, info.filename, limits)
            if not info.is_dir():
                files.append((info, rel))
        written = 0
        for info, rel in files:
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(out, "wb") as fh:
                    got = _copy_capped(src, fh, limits.max_member_bytes, info.filename)
            except zipfile.BadZipFile as err:  # e.g. a CRC that no longer matches a forged size
                raise UnsafeArchiveError(f"member {info.filename!r} is corrupt ({err})") from err
            written += got
            if written > limits.max_total_bytes:
                raise UnsafeArchiveError(f"archive unpacks to over {limits.max_total_bytes} bytes")
    return len(files)


def _copy_capped(src, dst, cap: int, name: str) -> int:
    n = 0
    while chunk := src.read(1 << 20):
        n += len(chunk)
        if n > cap:
            raise UnsafeArchiveError(f"member {name!r} unpacks past the {cap}-byte cap")
        dst.write(chunk)
    return n
