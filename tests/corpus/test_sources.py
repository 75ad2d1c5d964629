"""Every source kind against local fixtures: a file:// PyPI index, a loopback npm
registry, a git repository the test creates, a local folder and archive."""

import pytest

from graphmer.config import SourceConfig
from graphmer.corpus.archive import Limits
from graphmer.corpus.sources import FetchError, PathFilter, fetch_source
from tests.conftest import git
from tests.corpus.fixtures import make_pypi_index, npm_registry, tar_bytes


def fetch(tmp_path, **fields):
    work = tmp_path / "work"
    work.mkdir(parents=True)
    return fetch_source(SourceConfig(**fields), work, Limits.of())


def test_pypi_sdist_from_local_index(tmp_path):
    index, sha = make_pypi_index(tmp_path / "index")
    root = fetch(
        tmp_path, name="demo", kind="pypi", package="demo-pkg", version="1.0", sha256=sha, index_url=index
    )
    assert (root / "demo/core.py").read_text() == "def run():\n    return 1\n"
    assert root.name == "demo_pkg-1.0"  # the sdist's top folder is the source root


def test_pypi_sha256_mismatch_names_source(tmp_path):
    index, _ = make_pypi_index(tmp_path / "index")
    with pytest.raises(FetchError, match=r"source 'demo': sha256 mismatch"):
        fetch(
            tmp_path,
            name="demo",
            kind="pypi",
            package="demo-pkg",
            version="1.0",
            sha256="0" * 64,
            index_url=index,
        )


def test_pypi_unknown_version_is_one_clear_line(tmp_path):
    index, sha = make_pypi_index(tmp_path / "index")
    with pytest.raises(FetchError, match=r"source 'demo': no sdist of demo-pkg==9\.9 on ") as err:
        fetch(
            tmp_path, name="demo", kind="pypi", package="demo-pkg", version="9.9", sha256=sha, index_url=index
        )
    assert "\n" not in str(err.value)


def test_npm_tarball_from_loopback_registry(tmp_path):
    with npm_registry() as (url, sha):
        root = fetch(
            tmp_path, name="demojs", kind="npm", package="demo-js", version="1.0.0", sha256=sha, index_url=url
        )
        assert (root / "lib/index.js").read_text().startswith("export function add")
        with pytest.raises(FetchError, match="sha256 mismatch"):
            fetch(
                tmp_path / "again",
                name="demojs",
                kind="npm",
                package="demo-js",
                version="1.0.0",
                sha256="f" * 64,
                index_url=url,
            )


def test_npm_unknown_version_fails(tmp_path):
    with npm_registry() as (url, sha), pytest.raises(FetchError, match="npm pack demo-js@2.0.0 failed"):
        fetch(
            tmp_path, name="demojs", kind="npm", package="demo-js", version="2.0.0", sha256=sha, index_url=url
        )


def test_git_checks_out_the_pinned_commit(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.py").write_text("v = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "a.py").write_text("v = 2\n")
    git(repo, "commit", "-qam", "two")
    root = fetch(tmp_path, name="r", kind="git", url=str(repo), commit=first)
    assert (root / "a.py").read_text() == "v = 1\n"
    assert not (root / ".git").exists()
    with pytest.raises(FetchError, match=r"source 'r': git checkout"):
        fetch(tmp_path / "x", name="r", kind="git", url=str(repo), commit="1" * 40)


def test_local_folder_and_archive(tmp_path):
    folder = tmp_path / "proj"
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg/m.py").write_text("x = 1\n")
    assert fetch(tmp_path, name="l", kind="local", path=str(folder)) == folder

    arc = tmp_path / "proj.tar.gz"
    arc.write_bytes(tar_bytes({"proj/pkg/m.py": b"x = 1\n"}))
    root = fetch(tmp_path / "b", name="l", kind="local", path=str(arc))
    assert (root / "pkg/m.py").read_text() == "x = 1\n"

    with pytest.raises(FetchError, match="does not exist"):
        fetch(tmp_path / "c", name="l", kind="local", path=str(tmp_path / "missing"))


def test_hostile_local_archive_names_the_source(tmp_path):
    arc = tmp_path / "evil.tar.gz"
    arc.write_bytes(tar_bytes({"../escape.py": b"x = 1\n"}))
    with pytest.raises(FetchError, match=r"source 'l': evil.tar.gz: .*'\.\.' component"):
        fetch(tmp_path, name="l", kind="local", path=str(arc))
    assert not (tmp_path / "escape.py").exists()


@pytest.mark.parametrize(
    ("include", "exclude", "path", "kept"),
    [
        (["**"], [], "a/b/c.py", True),
        (["django/**"], [], "django/db/models.py", True),
        (["django/**"], [], "tests/x.py", False),
        (["*.py"], [], "a/b.py", False),  # * does not cross folders
        (["**/*.py"], [], "b.py", True),
        (["**"], ["**/tests/**"], "pkg/tests/t.py", False),
        (["src/**"], ["src/pkg/public-bs3/**"], "src/pkg/public/x.js", True),
    ],
)
def test_path_filter(include, exclude, path, kept):
    assert PathFilter(include, exclude)(path) is kept
