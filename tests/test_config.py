import pytest
import yaml

from graphmer.config import (
    SECTIONS,
    ConfigError,
    CorpusConfig,
    ExtractConfig,
    SourceConfig,
    build,
    load_all,
)
from tests.conftest import ROOT


def test_every_section_of_the_shipped_params_builds():
    typed = load_all(ROOT / "params.yaml")
    assert set(typed) == set(SECTIONS)
    assert isinstance(typed["corpus"], CorpusConfig)
    assert {s.kind for s in typed["corpus"].sources} == {"pypi"}


def _dvc_param_keys():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for stage in dvc["stages"].values():
        for entry in stage.get("params", []):
            if isinstance(entry, dict):  # {file: [keys]}
                for keys in entry.values():
                    yield from keys
            else:
                yield entry


def test_every_param_key_named_in_dvc_yaml_exists():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    keys = list(_dvc_param_keys())
    assert keys
    for key in keys:
        node = params
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"dvc.yaml names missing param {key}"
            node = node[part]


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown key extract\.wokers"):
        build(ExtractConfig, {"wokers": 2}, "extract")


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"extract\.workers must be int"):
        build(ExtractConfig, {"workers": "two"}, "extract")
    with pytest.raises(ConfigError, match=r"extract\.workers must be int"):
        build(ExtractConfig, {"workers": True}, "extract")


def test_unquoted_version_is_refused_not_mangled():
    src = {"name": "d", "kind": "pypi", "package": "Django", "version": 5.10, "sha256": "0" * 64}
    with pytest.raises(ConfigError, match=r"version must be a string"):
        build(SourceConfig, src, "corpus.sources[0]")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"name": "x", "kind": "ftp"}, "kind must be one of"),
        ({"name": "x", "kind": "pypi", "package": "p", "version": "1"}, "sha256 is required"),
        ({"name": "x", "kind": "pypi", "package": "p", "version": "1", "sha256": "abc"}, "64 hex"),
        ({"name": "x", "kind": "git", "url": "u", "commit": "HEAD"}, "40-digit"),
        ({"name": "a/b", "kind": "local", "path": "."}, "name must be"),
    ],
)
def test_source_fields_are_checked_per_kind(source, message):
    with pytest.raises(ConfigError, match=message):
        build(SourceConfig, source, "corpus.sources[0]")


def test_duplicate_source_names_are_refused():
    s = {"name": "a", "kind": "local", "path": "."}
    with pytest.raises(ConfigError, match="duplicate source name"):
        build(CorpusConfig, {"sources": [s, s]}, "corpus")


def test_unknown_section_is_refused(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("corpus:\n  sources: [{name: a, kind: local, path: .}]\ntrian: {}\n")
    with pytest.raises(ConfigError, match="unknown params section 'trian'"):
        load_all(p)
