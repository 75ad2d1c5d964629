"""Hostile and careless input to `graphmer predict`: a huge source file, a model folder whose
config.json or weights lie, a candidates table that is not one. Each is one line on stderr naming
the file and the reason, exit status 1, and nothing large is read or allocated first."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

from graphmer.cli import main
from graphmer.model import GraphMERT

SOURCE = "class Cart(Base):\n    def add(self, item: str) -> int:\n        return check_price(item)\n"


@pytest.fixture
def copy(trained, tmp_path):
    """A copy of the trained model and candidates, to break; and a source file to ask about."""
    paths = trained["paths"]
    shutil.copytree(paths.models, tmp_path / "models")
    shutil.copy(paths.samples / "candidates.parquet", tmp_path / "candidates.parquet")
    shutil.copy(paths.tokenizer, tmp_path / "tokenizer.json")
    (tmp_path / "shop.py").write_text(SOURCE)
    return tmp_path


def predict(capsys, root: pathlib.Path, *extra: str, file: pathlib.Path | None = None) -> tuple[int, str]:
    argv = [
        "predict",
        str(file or root / "shop.py"),
        "--entity",
        "add",
        "--relation",
        "calls",
        "--model-dir",
        str(root / "models"),
        "--tokenizer",
        str(root / "tokenizer.json"),
        "--candidates",
        str(root / "candidates.parquet"),
        *extra,
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
        raise SystemExit(0)
    return exit_info.value.code, capsys.readouterr().err


def refused(capsys, root: pathlib.Path, *extra: str, file: pathlib.Path | None = None) -> str:
    code, err = predict(capsys, root, *extra, file=file)
    assert code == 1 and err.count("\n") == 1 and err.startswith("graphmer predict: error: "), err
    return err


def test_the_unbroken_copy_predicts(copy, capsys):
    code, err = predict(capsys, copy)
    assert code == 0, err


# --------------------------------------------------------------------------- the source file


def test_a_file_nested_past_the_extractor_caps_is_one_line(copy, capsys):
    deep = copy / "deep.py"
    deep.write_text("".join("    " * i + f"def add{i}():\n" for i in range(150)) + "    " * 150 + "pass\n")
    err = refused(capsys, copy, file=deep)
    assert "deep.py: not extracted (too_deep)" in err


def test_a_file_over_the_default_cap_is_refused_before_it_is_opened(copy, capsys, monkeypatch):
    big = copy / "big.py"
    with big.open("wb") as f:
        f.truncate(47_000_000)  # sparse: 47 MB to stat, nothing on disk

    def no_reading(*_args, **_kwargs):
        raise AssertionError("the file was opened")

    monkeypatch.setattr(pathlib.Path, "open", no_reading)
    monkeypatch.setattr(pathlib.Path, "read_bytes", no_reading)
    err = refused(capsys, copy, file=big)
    assert f"{big} is larger than --max-file-bytes (1000000 bytes): it has 47000000 bytes" in err


def test_the_cap_is_an_option(copy, capsys):
    size = len(SOURCE.encode())
    err = refused(capsys, copy, "--max-file-bytes", str(size - 1))
    assert f"is larger than --max-file-bytes ({size - 1} bytes)" in err
    assert predict(capsys, copy, "--max-file-bytes", str(size))[0] == 0
    assert "--max-file-bytes must be > 0, got 0" in refused(capsys, copy, "--max-file-bytes", "0")


def test_a_file_that_grows_past_the_cap_after_the_size_check_is_refused(copy, capsys, monkeypatch):
    """stat said small, the read finds more: only cap + 1 bytes are read, and that is refused."""
    real_stat = pathlib.Path.stat

    def stale_stat(self, **kwargs):
        if self.name != "shop.py":
            return real_stat(self, **kwargs)
        return os.stat_result((0o100644, 0, 0, 1, 0, 0, 1, 0, 0, 0))  # a regular file of 1 byte

    monkeypatch.setattr(pathlib.Path, "stat", stale_stat)
    assert "is larger than --max-file-bytes (10 bytes)" in refused(capsys, copy, "--max-file-bytes", "10")


# --------------------------------------------------------------------------- config.json


def _edit_config(root: pathlib.Path, **changes) -> None:
    path = root / "models/config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"layers": "four"}, "config.json: layers must be int, got 'four'"),
        ({"layers": 200000}, "config.json: layers must be in [1, 1024], got 200000"),
        ({"heads": 0}, "config.json: heads must be in [1, 1024], got 0"),
        ({"heads": 3}, "config.json: hidden (32) must be divisible by heads (3)"),
        ({"dropout": None}, "config.json: dropout must be float, got None"),
        ({"roots": 16.0}, "config.json: roots must be int, got 16.0"),
        ({"hgat": "yes"}, "config.json: hgat must be bool, got 'yes'"),
        ({"extra": 1}, "config.json: unknown key extra"),
    ],
)
def test_a_config_with_wrong_values_is_one_line(copy, capsys, changes, message):
    _edit_config(copy, **changes)
    err = refused(capsys, copy)
    assert f"{copy / 'models/config.json'}: " in err and message in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[4, 256, 4]", "is not a GraphMERT config"),
        ('{"layers": 4}', "is not a GraphMERT config"),
        ('{"architecture": "GraphMERT", ', "is not valid JSON"),
        ("[" * 100_000, "is not valid JSON"),
        ('{"architecture": "GraphMERT", "layers": ' + "9" * 5000 + "}", "is not valid JSON"),
    ],
)
def test_a_config_that_is_not_one_is_one_line(copy, capsys, text, message):
    (copy / "models/config.json").write_text(text)
    assert f"{copy / 'models/config.json'} {message}" in refused(capsys, copy)


# --------------------------------------------------------------------------- the weights


@pytest.fixture
def never_built_for_real(monkeypatch):
    """GraphMERT may be built only on the meta device (shapes, no storage) until the weights are
    known to fit: built anywhere else, the test fails instead of allocating."""
    real = GraphMERT.__init__

    def only_on_meta(self, cfg):
        if torch.empty(0).device.type != "meta":
            raise AssertionError(f"GraphMERT built before its weights were checked: {cfg}")
        real(self, cfg)

    monkeypatch.setattr(GraphMERT, "__init__", only_on_meta)


def test_a_config_much_bigger_than_its_weights_is_refused_unbuilt(copy, capsys, never_built_for_real):
    _edit_config(copy, layers=1000, ffn=2**18)  # in range, and a real build would take gigabytes
    err = refused(capsys, copy)
    assert f"model.safetensors does not match {copy / 'models/config.json'}: " in err


def test_weights_of_the_wrong_shape_are_refused_unbuilt(copy, capsys, never_built_for_real):
    path = copy / "models/model.safetensors"
    state = load_file(str(path))
    state["tok.weight"] = torch.zeros(320, 48)
    save_file(state, str(path))
    err = refused(capsys, copy)
    assert "does not match" in err and "tok.weight is (320, 48), the config says (320, 32)" in err


def test_weights_with_a_tensor_missing_or_extra_are_refused(copy, capsys, never_built_for_real):
    path = copy / "models/model.safetensors"
    state = load_file(str(path))
    save_file({k: v for k, v in state.items() if k != "tok.weight"}, str(path))
    err = refused(capsys, copy)
    assert "does not match" in err and "missing tok.weight" in err
    save_file(state | {"spare": torch.zeros(2)}, str(path))
    assert "unexpected spare" in refused(capsys, copy)


@pytest.mark.parametrize("junk", [b"", b"junk", b"\xff" * 8 + b"{}", os.urandom(4096)])
def test_weights_that_are_not_safetensors_are_one_line(copy, capsys, junk, never_built_for_real):
    (copy / "models/model.safetensors").write_bytes(junk)
    assert "model.safetensors is not a readable safetensors file" in refused(capsys, copy)


# --------------------------------------------------------------------------- candidates.parquet


def _rewrite(root: pathlib.Path, **columns) -> None:
    """candidates.parquet with columns replaced (a value of None drops the column)."""
    path = root / "candidates.parquet"
    table = pq.read_table(path)
    for name, values in columns.items():
        table = table.drop_columns([name])
        if values is not None:
            table = table.append_column(name, values)
    pq.write_table(table, path)


def _first_changed(table: pa.Table, name: str, value) -> pa.Array:
    values = table[name].to_pylist()
    return pa.array([value, *values[1:]], type=table.schema.field(name).type)


@pytest.mark.parametrize(
    ("breaking", "message"),
    [
        (lambda root: (root / "candidates.parquet").write_bytes(os.urandom(2048)), "Parquet magic bytes"),
        (lambda root: (root / "candidates.parquet").write_bytes(b""), "is not a candidates table"),
        (lambda root: _rewrite(root, ids=None), "is not a candidates table"),
        (lambda root: _rewrite(root, relation=None, train_count=None), "is not a candidates table"),
        (
            lambda root: _rewrite(root, relation=pa.array(["calls"] * _rows(root))),
            "is not a candidates table",
        ),
        (lambda root: _rewrite(root, relation=pa.array([1000] * _rows(root))), "is not a candidates table"),
        (lambda root: _rewrite(root, ids=pa.array([[99999]] * _rows(root))), "token id 99999 is outside"),
        (lambda root: _rewrite(root, ids=pa.array([[-1]] * _rows(root))), "token id -1 is outside"),
        (lambda root: _rewrite(root, ids=pa.array([[]] * _rows(root), pa.list_(pa.int32()))), "no tokens"),
        (lambda root: _rewrite(root, name=_first_changed(_table(root), "name", None)), "a value is null"),
        (lambda root: _rewrite(root, ids=pa.array([[5, None]] * _rows(root))), "a value is null"),
        (lambda root: _rewrite(root, train_count=pa.array([-4] * _rows(root))), "train_count is negative"),
    ],
    ids=[
        "random",
        "empty",
        "no-ids",
        "two-columns-missing",
        "relation-text",
        "relation-overflow",
        "id-too-big",
        "id-negative",
        "empty-tail",
        "null-name",
        "null-id",
        "negative-count",
    ],
)
def test_a_candidates_table_that_is_not_one_is_one_line(copy, capsys, breaking, message):
    breaking(copy)
    err = refused(capsys, copy)
    assert f"{copy / 'candidates.parquet'} is not a candidates table" in err and message in err


def _table(root: pathlib.Path) -> pa.Table:
    return pq.read_table(root / "candidates.parquet")


def _rows(root: pathlib.Path) -> int:
    return _table(root).num_rows
