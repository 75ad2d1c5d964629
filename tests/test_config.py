import dataclasses
import typing

import pytest
import yaml

from graphmer.config import (
    MODEL_RANGES,
    PRESETS,
    SECTIONS,
    ConfigError,
    CorpusConfig,
    ExtractConfig,
    ModelConfig,
    ModelSection,
    Range,
    SourceConfig,
    build,
    load_all,
    model_config,
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


def _numeric(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [
        name
        for name, tp in hints.items()
        if {int, float} & ({tp} | set(typing.get_args(tp)))  # int, float, int | None
    ]


@pytest.mark.parametrize("cls", list(SECTIONS.values()), ids=list(SECTIONS))
def test_every_numeric_field_has_a_range(cls):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unchecked = [name for name in _numeric(cls) if "range" not in fields[name].metadata]
    assert not unchecked, f"{cls.__name__} fields without a Range: {unchecked}"


def test_numeric_fields_are_found_optional_or_not():
    assert _numeric(ModelSection) == ["layers", "hidden", "heads", "ffn", "dropout"]


def test_every_field_of_a_saved_model_config_has_a_range():
    assert set(_numeric(ModelConfig)) == set(MODEL_RANGES)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_validates_as_params_and_as_a_saved_config(preset):
    ModelSection(preset=preset)
    cfg = ModelConfig.from_preset(preset)
    assert model_config(cfg.to_dict(), "config.json") == cfg


@pytest.mark.parametrize(
    ("allowed", "inside", "outside", "text"),
    [
        (Range(lo=1), [1, 10**30], [0, -1, 0.5], ">= 1"),
        (Range(0, 1, open_hi=True), [0, 0.0, 0.999], [1, 1.0, -0.1, float("nan")], "in [0, 1)"),
        (Range(0, 1, open_lo=True, open_hi=True), [0.5], [0.0, 1.0, float("inf")], "in (0, 1)"),
        (Range(lo=0, open_lo=True), [1e-9, 5], [0, float("nan"), float("inf")], "> 0"),
    ],
)
def test_range_bounds_and_text(allowed, inside, outside, text):
    assert str(allowed) == text
    assert all(v in allowed for v in inside) and not any(v in allowed for v in outside)
    with pytest.raises(ConfigError, match=r"^x\.y must be "):
        allowed.check(outside[0], "x.y")
    with pytest.raises(ConfigError, match="must be a number"):
        allowed.check("1", "x.y")


def test_a_saved_vocab_may_be_smaller_than_the_requested_one():
    """A small corpus gives the tokenizer fewer merges than tokenizer.vocab_size asks for: 256 bytes
    and 5 specials are its floor, and a model trained on it must still load."""
    assert model_config({"vocab_size": 261}, "config.json").vocab_size == 261
    with pytest.raises(ConfigError, match=r"^config\.json: vocab_size must be >= 1, got 0$"):
        model_config({"vocab_size": 0}, "config.json")


def test_attention_is_sdpa_or_flex_and_an_older_saved_model_gets_sdpa():
    assert ModelSection(attention="flex").overrides()["attention"] == "flex"
    with pytest.raises(ConfigError, match=r"^model\.attention must be one of sdpa, flex, got 'flash'$"):
        ModelSection(attention="flash")
    with pytest.raises(ConfigError, match=r"^config\.json: attention must be one of sdpa, flex, got 'fl'$"):
        model_config({"attention": "fl"}, "config.json")
    older = {k: v for k, v in ModelConfig().to_dict().items() if k != "attention"}
    assert model_config(older, "config.json").attention == "sdpa"


def test_params_yaml_spells_out_the_config_defaults():
    """params.yaml shows every setting the pipeline runs with, each equal to its typed default,
    so a default cannot drift from the file a user reads (and `dvc params diff` sees all)."""
    from graphmer.config import SECTIONS, build, load_params

    params = load_params(ROOT / "params.yaml")
    unset = {("corpus", "sources")}  # required: no default to agree with
    unset |= {("model", size) for size in ("layers", "hidden", "heads", "ffn")}  # None: the preset's
    for name, cls in SECTIONS.items():
        section, typed = params[name], build(cls, params[name], name)
        for f in dataclasses.fields(cls):
            if (name, f.name) in unset:
                continue
            assert f.name in section, f"params.yaml lacks {name}.{f.name}"
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            assert getattr(typed, f.name) == default, f"{name}.{f.name}: params.yaml and config.py disagree"
