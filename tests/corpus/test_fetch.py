import json

import pytest

from graphmer.config import CorpusConfig, SourceConfig
from graphmer.corpus.fetch import MARKER, fetch_corpus
from graphmer.corpus.sources import FetchError


def write(root, files):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text if isinstance(text, bytes) else text.encode())


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    write(
        root,
        {
            "pkg/a.py": "def a():\n    return 1\n",
            "pkg/__init__.py": "",
            "pkg/B.java": "class B {}\n",
            "pkg/static/app.js": "function f() {}\n",
            "pkg/static/app.min.js": "function f(){}\n",
            "pkg/static/vendor/jq.js": "var jq;\n",
            "pkg/tests/test_a.py": "def test_a():\n    pass\n",
            "README.md": "# hi\n",
        },
    )
    (root / "pkg/link.py").symlink_to(root / "pkg/a.py")
    return root


def test_counts_and_layout(tmp_path, project):
    cfg = CorpusConfig([SourceConfig("p", "local", path=str(project), exclude=["**/tests/**"])])
    out, metrics_path = tmp_path / "raw", tmp_path / "corpus.json"
    m = fetch_corpus(cfg, out, metrics_path)
    assert json.loads(metrics_path.read_text()) == m
    assert m["by_language"] == {
        "python": {"files": 1, "bytes": 22},
        "java": {"files": 1, "bytes": 11},
        "javascript": {"files": 1, "bytes": 16},
    }
    assert m["skipped"] == {"empty": 1, "minified": 1, "symlink": 1, "vendored": 1}
    kept = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    # Skipped files stay on disk (extract lists them with a reason); non-code and excluded do not.
    assert kept == [
        MARKER,
        "p/pkg/B.java",
        "p/pkg/__init__.py",
        "p/pkg/a.py",
        "p/pkg/static/app.js",
        "p/pkg/static/app.min.js",
        "p/pkg/static/vendor/jq.js",
    ]


def test_a_failing_source_replaces_nothing(tmp_path, project):
    out, metrics_path = tmp_path / "raw", tmp_path / "corpus.json"
    good = SourceConfig("p", "local", path=str(project))
    fetch_corpus(CorpusConfig([good]), out, metrics_path)
    before = sorted(p.as_posix() for p in out.rglob("*"))
    metrics_before = metrics_path.read_text()

    bad = SourceConfig("q", "local", path=str(tmp_path / "nowhere"))
    with pytest.raises(FetchError, match="source 'q'"):
        fetch_corpus(CorpusConfig([good, bad]), out, metrics_path)
    assert sorted(p.as_posix() for p in out.rglob("*")) == before
    assert metrics_path.read_text() == metrics_before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp leftovers


def test_globs_that_match_nothing_are_an_error(tmp_path, project):
    cfg = CorpusConfig([SourceConfig("p", "local", path=str(project), include=["src/**"])])
    with pytest.raises(FetchError, match="no Python, Java or JavaScript file matches"):
        fetch_corpus(cfg, tmp_path / "raw")
