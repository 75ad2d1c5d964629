"""Materialize one pinned source (pypi, npm, git, local) as a folder of files.

Downloads go to a scratch folder; archives are checked (sha256 where pinned)
and unpacked with `archive.extract_archive`, so nothing unverified reaches data/raw/.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from graphmer import GraphmerError
from graphmer.config import SourceConfig
from graphmer.corpus.archive import Limits, extract_archive, is_archive


class FetchError(GraphmerError):
    """A source that could not be fetched; the message names the source and the reason."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"source {source!r}: {reason}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _run(cmd: list[str], source: str, what: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise FetchError(source, f"{what}: {cmd[0]} is not installed") from err
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower() and "warning" not in ln.lower()]
        detail = (errors or lines or ["no output"])[-1]
        raise FetchError(source, f"{what} failed: {detail}")
    return proc.stdout


def _single_download(folder: Path, source: str) -> Path:
    files = [p for p in folder.iterdir() if p.is_file()]
    if len(files) != 1:
        raise FetchError(source, f"expected one downloaded archive, found {len(files)}")
    return files[0]


def _verify(archive: Path, src: SourceConfig) -> None:
    got = sha256_file(archive)
    if got != (src.sha256 or "").lower():
        raise FetchError(src.name, f"sha256 mismatch for {archive.name}: expected {src.sha256}, got {got}")


def _unpack(archive: Path, dest: Path, src: SourceConfig, limits: Limits) -> Path:
    try:
        extract_archive(archive, dest, limits)
    except GraphmerError as err:
        raise FetchError(src.name, f"{archive.name}: {err}") from err
    return strip_single_top(dest)


def strip_single_top(root: Path) -> Path:
    """An sdist or npm tarball wraps everything in one folder (`Django-5.2/`, `package/`)."""
    entries = list(root.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else root


def fetch_pypi(src: SourceConfig, work: Path, limits: Limits) -> Path:
    dl = work / "download"
    dl.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "--dest",
        str(dl),
        f"{src.package}=={src.version}",
    ]
    if src.index_url:
        cmd[4:4] = ["--index-url", src.index_url]
    _run(cmd, src.name, f"pip download {src.package}=={src.version}")
    archive = _single_download(dl, src.name)
    _verify(archive, src)
    return _unpack(archive, work / "tree", src, limits)


def fetch_npm(src: SourceConfig, work: Path, limits: Limits) -> Path:
    dl = work / "download"
    dl.mkdir()
    cmd = [
        "npm",
        "pack",
        f"{src.package}@{src.version}",
        "--pack-destination",
        str(dl),
        "--ignore-scripts",
        "--silent",
        "--cache",
        str(work / "npm-cache"),
    ]
    if src.index_url:
        cmd += ["--registry", src.index_url]
    _run(cmd, src.name, f"npm pack {src.package}@{src.version}", cwd=work)
    archive = _single_download(dl, src.name)
    _verify(archive, src)
    return _unpack(archive, work / "tree", src, limits)


def fetch_git(src: SourceConfig, work: Path, limits: Limits) -> Path:
    tree = work / "tree"
    _run(["git", "clone", "--quiet", "--no-checkout", str(src.url), str(tree)], src.name, "git clone")
    _run(
        ["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", str(src.commit)],
        src.name,
        f"git checkout {src.commit}",
        cwd=tree,
    )
    head = _run(["git", "rev-parse", "HEAD"], src.name, "git rev-parse", cwd=tree).strip()
    if head != str(src.commit).lower():
        raise FetchError(src.name, f"checked out {head}, expected {src.commit}")
    shutil.rmtree(tree / ".git")
    return tree


def fetch_local(src: SourceConfig, work: Path, limits: Limits) -> Path:
    path = Path(os.path.expanduser(str(src.path)))
    if not path.exists():
        raise FetchError(src.name, f"{path} does not exist")
    if path.is_dir():
        return path
    if is_archive(path):
        if src.sha256:
            _verify(path, src)
        return _unpack(path, work / "tree", src, limits)
    raise FetchError(src.name, f"{path} is neither a folder nor a known archive type")


FETCHERS = {"pypi": fetch_pypi, "npm": fetch_npm, "git": fetch_git, "local": fetch_local}


def fetch_source(src: SourceConfig, work: Path, limits: Limits) -> Path:
    """Materialize `src` using scratch folder `work`; return the folder that is its root."""
    return FETCHERS[src.kind](src, work, limits)


# --------------------------------------------------------------------------- globs


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: `*` and `?` stay inside one folder, `**` crosses folders."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


class PathFilter:
    """include/exclude globs over source-relative POSIX paths."""

    def __init__(self, include: list[str], exclude: list[str]):
        self.include = [glob_regex(p) for p in include]
        self.exclude = [glob_regex(p) for p in exclude]

    def __call__(self, rel: str) -> bool:
        return any(r.match(rel) for r in self.include) and not any(r.match(rel) for r in self.exclude)
