"""Hostile and careless settings: params.yaml values that make no sense, misspelled sections, keys
given twice, and a trained model's config.json. Each is refused with one line naming the key and
what it may be, before any stage (or model) starts."""

from __future__ import annotations

import pytest

from graphmer.config import ConfigError, load_all, load_section, model_config

SOURCES = "corpus:\n  sources: [{name: a, kind: local, path: .}]\n"


def refusal(tmp_path, text: str, section: str | None = None) -> str:
    """The one-line ConfigError that a params file holding `text` gets (from one section or all)."""
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_section(section, path) if section else load_all(path)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  layers: -2\n", "model.layers must be in [1, 1024], got -2"),
        ("model:\n  layers: 200000\n", "model.layers must be in [1, 1024], got 200000"),
        ("model:\n  heads: 0\n", "model.heads must be in [1, 1024], got 0"),
        ("model:\n  dropout: 2.0\n", "model.dropout must be a finite number in [0, 1), got 2.0"),
        ("model:\n  dropout: 1\n", "model.dropout must be a finite number in [0, 1), got 1.0"),
        ("train:\n  lr: -1.0\n", "train.lr must be a finite number > 0, got -1.0"),
        ("train:\n  lr: .nan\n", "train.lr must be a finite number > 0, got nan"),
        ("train:\n  lr: .inf\n", "train.lr must be a finite number > 0, got inf"),
        ("train:\n  eval_batches: 0\n", "train.eval_batches must be >= 1, got 0"),
        ("train:\n  grad_clip: 0\n", "train.grad_clip must be a finite number > 0, got 0.0"),
        ("train:\n  min_lr_ratio: 1.5\n", "train.min_lr_ratio must be a finite number in [0, 1], got 1.5"),
        ("train:\n  weight_decay: -0.1\n", "train.weight_decay must be a finite number >= 0, got -0.1"),
        ("train:\n  seed: -1\n", "train.seed must be in [0, 4294967295], got -1"),
        (
            "train:\n  lr: 1" + "0" * 400 + "\n",
            "train.lr must be a finite number, got an integer of 401 digits",
        ),
        ("samples:\n  span_p: 0\n", "samples.span_p must be a finite number in (0, 1), got 0.0"),
        ("samples:\n  roots: 40000\n", "samples.roots must be in [2, 32768), got 40000"),
        ("samples:\n  roots: 8\n  stride: 9\n", "samples.stride (9) must be <= samples.roots (8)"),
        ("evaluate:\n  batch_size: 0\n", "evaluate.batch_size must be >= 1, got 0"),
        ("extract:\n  chunk_files: -3\n", "extract.chunk_files must be >= 1, got -3"),
        ("tokenizer:\n  min_frequency: 0\n", "tokenizer.min_frequency must be >= 1, got 0"),
        (
            "split:\n  near_duplicate_share: 1.0\n",
            "split.near_duplicate_share must be a finite number in (0, 1)",
        ),
        (SOURCES + "  max_archive_members: 0\n", "corpus.max_archive_members must be >= 1, got 0"),
    ],
)
def test_a_value_out_of_range_is_named_with_its_range(tmp_path, text, message):
    section = text.split(":")[0]
    prefix = "" if section == "corpus" else SOURCES
    assert message in refusal(tmp_path, prefix + text)
    assert message in refusal(tmp_path, prefix + text, section)  # what a stage reads


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the preset's hidden size is 768: 5 heads cannot split it
        ("model:\n  preset: base\n  heads: 5\n", "model.hidden (768) must be divisible by model.heads (5)"),
        ("model:\n  hidden: 102\n", "model.hidden (102) must be divisible by model.heads (4)"),
    ],
)
def test_sizes_resolved_from_a_preset_are_checked(tmp_path, text, message):
    assert message in refusal(tmp_path, text, "model")


def test_a_misspelled_section_is_refused_by_every_stage(tmp_path):
    text = SOURCES + "trian:\n  steps: 3\n"
    for section in (None, "train", "corpus"):
        message = refusal(tmp_path, text, section)
        assert "unknown params section 'trian'" in message and "(known: corpus, extract," in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SOURCES + "train:\n  lr: 0.1\n  steps: 5\n  lr: 0.2\n",
            "line 6, column 3: duplicate key 'lr' (first at line 4, column 3)",
        ),
        (
            SOURCES + "train: {}\ntrain: {steps: 1}\n",
            "line 4, column 1: duplicate key 'train' (first at line 3, column 1)",
        ),
        (
            "corpus:\n  sources:\n    - name: a\n      kind: local\n      path: .\n      name: b\n",
            "line 6, column 7: duplicate key 'name' (first at line 3, column 7)",
        ),
        (
            SOURCES + "split: {seed: 1, by: file, by: source}\n",
            "line 3, column 28: duplicate key 'by' (first at line 3, column 18)",
        ),
    ],
)
def test_a_key_given_twice_is_refused_at_any_depth(tmp_path, text, message):
    refused = refusal(tmp_path, text)
    assert refused.startswith(str(tmp_path / "params.yaml")) and message in refused


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("evaluate:\n  <<: {seed: 1, batch_size: 4}\n  seed: 2\n")
    cfg = load_section("evaluate", path)
    assert (cfg.seed, cfg.batch_size) == (2, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: [\n", "line 2, column 1: expected the node content"),
        ("train: !!python/object/apply:os.system [echo]\n", "could not determine a constructor"),
        ("- a\n- b\n", "must hold a mapping of sections"),
    ],
)
def test_broken_yaml_is_one_line(tmp_path, text, message):
    assert message in refusal(tmp_path, text)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"layers": "four"}, "m/config.json: layers must be int, got 'four'"),
        ({"layers": 200000}, "m/config.json: layers must be in [1, 1024], got 200000"),
        ({"layers": True}, "m/config.json: layers must be int, got True"),
        ({"heads": 3}, "m/config.json: hidden (256) must be divisible by heads (3)"),
        ({"decay_lambda": 1.5}, "m/config.json: decay_lambda must be a finite number in (0, 1), got 1.5"),
        ({"roots": 1}, "m/config.json: roots must be in [2, 32768), got 1"),
        ({"dropout": float("nan")}, "m/config.json: dropout must be a finite number in [0, 1), got nan"),
        ({"lyers": 4}, "m/config.json: unknown key lyers (known: vocab_size,"),
        ([4, 256], "m/config.json: must hold a mapping, got list"),
    ],
)
def test_a_saved_model_config_is_held_to_the_same_rules(raw, message):
    with pytest.raises(ConfigError) as info:
        model_config(raw, "m/config.json")
    assert message in str(info.value) and "\n" not in str(info.value)
