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
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname, urlopen

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


PYPI = "https://pypi.org/simple/"


class _Links(HTMLParser):
    """The anchors of a PEP 503 simple-index page."""

    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a" and (href := dict(attrs).get("href")):
            self.hrefs.append(href)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _open_url(url: str, source: str, timeout: float = 120.0):
    """urlopen, with a file:// folder read as its index.html (a local index on disk)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = Path(url2pathname(parts.path))
        if path.is_dir():
            url = (path / "index.html").as_uri()
    elif parts.scheme not in ("http", "https"):
        raise FetchError(source, f"{url}: only http(s) and file URLs are fetched")
    try:
        return urlopen(url, timeout=timeout)  # noqa: S310 (schemes checked above)
    except (OSError, ValueError) as err:
        raise FetchError(source, f"cannot read {url}: {getattr(err, 'reason', err)}") from err


def sdist_url(src: SourceConfig) -> str:
    """The URL of the pinned sdist on the package's simple-index page: the file whose index hash is
    the pin if there is one, else the version's sdist (whose sha256 is then checked and refused)."""
    index = src.index_url or os.environ.get("PIP_INDEX_URL") or PYPI
    page = urljoin(index.rstrip("/") + "/", _normalize(str(src.package)) + "/")
    with _open_url(page, src.name) as fh:
        links = _Links()
        links.feed(fh.read().decode("utf-8", "replace"))
    wanted = (_normalize(str(src.package)), str(src.version))
    found = []
    for href in links.hrefs:
        url, _, fragment = urljoin(page, href).partition("#")
        filename = unquote(url.rsplit("/", 1)[-1])
        stem = next((filename[: -len(x)] for x in (".tar.gz", ".zip") if filename.endswith(x)), None)
        if stem and "-" in stem:
            name, version = stem.rsplit("-", 1)
            if (_normalize(name), version) == wanted:
                found.append((fragment == f"sha256={str(src.sha256).lower()}", url))
    if not found:
        raise FetchError(src.name, f"no sdist of {src.package}=={src.version} on {page}")
    return max(found)[1]


def _download(url: str, dest: Path, src: SourceConfig, cap: int) -> Path:
    out = dest / Path(unquote(url.rsplit("/", 1)[-1])).name  # never a path an index could steer
    n = 0
    with _open_url(url, src.name) as fh, open(out, "wb") as w:
        while chunk := fh.read(1 << 20):
            n += len(chunk)
            if n > cap:
                raise FetchError(src.name, f"{out.name} is over the {cap}-byte archive cap")
            w.write(chunk)
    return out


def fetch_pypi(src: SourceConfig, work: Path, limits: Limits) -> Path:
    """The pinned sdist itself, downloaded, then checked against its sha256, then unpacked: nothing
    of the package runs (pip would run its build backend to read its metadata)."""
    dl = work / "download"
    dl.mkdir()
    archive = _download(sdist_url(src), dl, src, limits.max_total_bytes)
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
    # `--`: a URL is never read as an option (`--upload-pack=...`)
    _run(["git", "clone", "--quiet", "--no-checkout", "--", str(src.url), str(tree)], src.name, "git clone")
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
    if not path.is_file():  # a FIFO or a device would hang the read or never end
        raise FetchError(src.name, f"{path} is not a regular file or folder")
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
