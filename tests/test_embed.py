"""`graphmer embed`: one vector per definition, with a tiny trained model, on folders outside the corpus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graphmer.cli import main
from graphmer.embed import Files, definitions, embed_paths, file_windows, pooled_states
from graphmer.extract.pipeline import extract_kg
from graphmer.tokenizer import load
from tests.tiny import L, R, tiny_config

HIDDEN = tiny_config(vocab_size=1).hidden  # the trained fixture's

SHOP = {
    "shop.py": "class Cart(Base):\n    def add(self, item: str) -> int:\n        return check_price(item)\n",
    "Shop.java": "class Cart {\n    int add(String item) {\n        return checkPrice(item);\n    }\n}\n",
    "shop.js": "function add(item) {\n  return checkPrice(item);\n}\n",
}
# Three functions that do different things; `total`'s local `subtotal` is renamed below.
FUNCTIONS = """\
def total(items):
    subtotal = 0
    for item in items:
        subtotal += item.price
    return subtotal


def parse_header(line):
    key, _, value = line.partition(":")
    return key.strip().lower(), value.strip()


class Store(Base):
    def put(self, key: str, value: int) -> None:
        self.items[key] = check(value)
"""


def embed(trained, roots, out, **kwargs) -> pd.DataFrame:
    embed_paths(roots, out, trained["paths"], progress=False, **kwargs)
    return pd.read_parquet(out)


def write(folder, files: dict[str, str]):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def vectors(df: pd.DataFrame) -> dict[str, np.ndarray]:
    return {i: np.asarray(v) for i, v in zip(df["id"], df["vector"])}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_copies_of_a_file_get_the_same_vectors(trained, tmp_path):
    text = FUNCTIONS + SHOP["shop.py"]
    write(tmp_path / "a/pkg", {"m.py": text})
    write(tmp_path / "b/deeper/pkg", {"m.py": text})
    write(tmp_path / "c", {"m.py": text})
    # batches of 3 windows: the copies' windows share batches with different neighbours
    roots = {"a": tmp_path / "a", "b": tmp_path / "b", "m.py": tmp_path / "c/m.py"}
    df = embed(trained, roots, tmp_path / "out.parquet", batch_size=3)
    by_file = {f: vectors(rows) for f, rows in df.groupby("file")}
    assert set(by_file) == {"a/pkg/m.py", "b/deeper/pkg/m.py", "m.py"}  # a file alone: its own source
    first = by_file["a/pkg/m.py"]
    assert len(first) == 11  # no __init__.py: the module is `m` in every copy, so are the ids
    for other in ("b/deeper/pkg/m.py", "m.py"):
        assert by_file[other].keys() == first.keys()
        for i, v in first.items():
            np.testing.assert_allclose(by_file[other][i], v, rtol=1e-5, atol=1e-6, err_msg=i)
    one_at_a_time = embed(trained, {"a": tmp_path / "a"}, tmp_path / "one.parquet", batch_size=1)
    for i, v in vectors(one_at_a_time).items():
        np.testing.assert_allclose(v, first[i], rtol=1e-5, atol=1e-6, err_msg=i)
    total = first.pop("py:m.total")
    assert not any(np.allclose(total, v, atol=1e-3) for v in first.values())  # not one vector for all


def test_renaming_a_local_variable_moves_the_function_a_little(trained, tmp_path):
    def embed_file(folder: str, text: str) -> dict[str, np.ndarray]:
        path = write(tmp_path / folder, {"m.py": text}) / "m.py"
        return vectors(embed(trained, {"m.py": path}, tmp_path / f"{folder}.parquet"))

    old, new = embed_file("old", FUNCTIONS), embed_file("new", FUNCTIONS.replace("subtotal", "acc"))
    a, b = old["py:m.total"], new["py:m.total"]
    assert np.linalg.norm(a - b) > 1e-4 * np.linalg.norm(a)  # the window holds the variable: it moved
    others = [cosine(a, old[f]) for f in ("py:m.parse_header", "py:m.Store.put")]
    assert cosine(a, b) > max(others)


def test_each_definition_is_pooled_over_the_tokens_of_its_name(trained, tmp_path):
    src = write(tmp_path / "src", {"m.py": FUNCTIONS, **SHOP})
    extract_kg({"src": src}, tmp_path / "kg", progress=False)
    tok = load(trained["paths"].tokenizer)
    for path, defs in definitions(tmp_path / "kg").items():
        items, spans = file_windows((tmp_path / path).read_bytes(), defs, tok, R, L)
        for d, (w, first, last) in zip(defs, spans):
            name = d.entity.rsplit(".", 1)[-1].rsplit(":", 1)[-1]
            assert tok.decode(items[w]["input_ids"][first : last + 1].tolist()).strip() == name
        assert len(items) == len({w for w, _, _ in spans})  # no window without a definition


def test_a_vector_is_the_mean_of_the_states_of_every_token_of_the_name(trained, tmp_path):
    """Not the first token's state, nor the window's: the mean over the name's own roots."""
    import torch

    from graphmer import GraphMERT
    from graphmer.loader import collate, compact
    from graphmer.model import MODEL_INPUTS

    src = write(tmp_path / "src", {"m.py": FUNCTIONS})
    extract_kg({"src": src}, tmp_path / "kg", progress=False)
    tok = load(trained["paths"].tokenizer)
    model = GraphMERT.from_pretrained(trained["paths"].models)
    (defs,) = definitions(tmp_path / "kg").values()
    items, spans = file_windows((src / "m.py").read_bytes(), defs, tok, R, L)
    multi = [k for k, (_, first, last) in enumerate(spans) if last > first]
    assert multi, "the fixture needs a name of several tokens"
    pooled = pooled_states(model, items, spans)
    with torch.inference_mode():
        hidden = model(*(compact(collate(items), R, L)[k] for k in MODEL_INPUTS))
    for k in multi:
        w, first, last = spans[k]
        states = hidden[w, first : last + 1]
        assert np.allclose(pooled[k], states.mean(0).numpy(), atol=1e-5)
        assert not np.allclose(pooled[k], states[0].numpy(), atol=1e-3)


def test_definitions_sharing_one_window_get_their_own_vectors(trained, tmp_path):
    src = write(tmp_path / "src", {"f.py": "def f(a):\n    pass\n"})  # fewer tokens than R
    out = tmp_path / "out.parquet"
    summary = embed_paths({"src": src}, out, trained["paths"], progress=False)
    f, a = vectors(pd.read_parquet(out)).values()
    assert summary["windows"] == 1 and summary["entities"] == 2
    assert not np.allclose(f, a, atol=1e-3)


def test_a_file_changed_since_extraction_is_not_embedded(tmp_path):
    src = write(tmp_path / "src", {"a.py": "def f(a):\n    pass\n", "b.py": "def g(b):\n    pass\n"})
    extract_kg({"src": src}, tmp_path / "kg", progress=False)
    files = Files.load(tmp_path / "kg", {"src": src}, max_bytes=1000)
    (src / "b.py").write_text("def g(bb):\n    pass\n")  # its spans no longer point at its names
    assert files.read("src/a.py") == b"def f(a):\n    pass\n"
    assert files.read("src/b.py") is None and files.changed == 1


M_ROWS = [  # FUNCTIONS + SHOP["shop.py"]: every definition, in the order of the table
    ("py:m.total", "function", "total", 1),
    ("py:m.total.items", "parameter", "items", 1),
    ("py:m.parse_header", "function", "parse_header", 8),
    ("py:m.parse_header.line", "parameter", "line", 8),
    ("py:m.Store", "class", "Store", 13),
    ("py:m.Store.put", "method", "put", 14),
    ("py:m.Store.put.key", "parameter", "key", 14),
    ("py:m.Store.put.value", "parameter", "value", 14),
    ("py:m.Cart", "class", "Cart", 16),
    ("py:m.Cart.add", "method", "add", 17),
    ("py:m.Cart.add.item", "parameter", "item", 17),
]


def test_one_row_per_definition_with_a_fixed_size_float32_vector(trained, tmp_path):
    src = write(tmp_path / "src", {"m.py": FUNCTIONS + SHOP["shop.py"], **SHOP})
    out = tmp_path / "out.parquet"
    summary = embed_paths({"src": src}, out, trained["paths"], progress=False)
    table = pq.read_table(out)
    assert table.schema.names == ["id", "kind", "name", "language", "file", "line", "vector"]
    assert table.schema.field("vector").type == pa.list_(pa.float32(), HIDDEN)
    assert table.schema.field("line").type == pa.int64()
    df = pd.read_parquet(out)
    m = df[df["file"] == "src/m.py"]
    assert list(zip(m["id"], m["kind"], m["name"], m["line"])) == M_ROWS
    assert set(m["language"]) == {"python"}
    keys = list(zip(df["file"], df["line"], df["id"]))
    assert keys == sorted(keys) and len(set(keys)) == len(df)
    # one row per (entity, file) with a definition span, counted here from extraction's own tables
    extract_kg({"src": src}, tmp_path / "kg", progress=False)
    defs = pq.read_table(tmp_path / "kg/mentions.parquet").to_pandas().query("role == 'def'")
    assert len(df) == len(defs[["entity_id", "file"]].drop_duplicates()) == summary["entities"] == 19
    assert all(v.dtype == np.float32 and v.shape == (HIDDEN,) and np.isfinite(v).all() for v in df["vector"])
    assert summary["files"] == 4 and summary["files_embedded"] == 4 and summary["files_skipped"] == 0
    assert summary["without_definition"]["module"] == 3  # m.py, shop.py, shop.js: no definition span


def run(trained, capsys, *args) -> tuple[int, str, str]:
    paths = trained["paths"]
    argv = ["embed", *map(str, args)]
    if "--model-dir" not in argv:
        argv += ["--model-dir", str(paths.models)]
    argv += ["--tokenizer", str(paths.tokenizer), "--workers", "1"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_cli_on_a_folder_outside_the_corpus(trained, capsys, tmp_path):
    src = write(tmp_path / "shop", SHOP)
    extra = write(tmp_path / "lib", {"extra.py": "def helper(x):\n    return x\n"}) / "extra.py"
    out = src / "vectors.parquet"  # inside a folder it embeds: its scratch files must not be embedded too
    code, stdout, err = run(trained, capsys, src, extra, "--out", out, "--batch-size", "2")
    assert code == 0, err
    assert stdout == f"embedded 10 entities of 4 files -> {out}\n"
    df = pd.read_parquet(out)
    assert set(df["file"]) == {"shop/shop.py", "shop/Shop.java", "shop/shop.js", "extra.py"}
    assert set(df["language"]) == {"python", "java", "javascript"}
    some = {"py:shop.Cart.add", "java:(default).Cart.add", "js:shop.js:add", "py:extra.helper.x"}
    assert some <= set(df["id"])
    assert sorted(p.name for p in src.iterdir()) == ["Shop.java", "shop.js", "shop.py", "vectors.parquet"]


def test_no_definition_is_an_empty_table_with_the_schema(trained, capsys, tmp_path):
    src = write(tmp_path / "src", {"only_imports.py": "import os\n", "notes.txt": "def f(): pass\n"})
    write(tmp_path / "docs", {"README.md": "# nothing to embed\n"})
    out = tmp_path / "vectors.parquet"
    code, stdout, err = run(trained, capsys, src, tmp_path / "docs", "--out", out)
    assert code == 0, err
    assert stdout == f"embedded 0 entities of 1 files -> {out}\n"
    table = pq.read_table(out)
    assert table.num_rows == 0 and table.schema.field("vector").type == pa.list_(pa.float32(), HIDDEN)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", "--out", "v.parquet"], "nowhere: no such file or folder"),
        (["src", "--out", "src"], "is a folder, not a file: choose another output"),
        (["src/shop.py", "--out", "src/shop.py"], "is a source file name: choose a .parquet"),
        (["src/notes.txt", "--out", "v.parquet"], "not a Python, Java or JavaScript file"),
        (["src", "--out", "v.parquet", "--batch-size", "0"], "--batch-size must be > 0, got 0"),
        (["src", "--out", "v.parquet", "--model-dir", "nomodel"], "nomodel"),
        (["src/shop.py", "--out", "v.parquet", "--max-file-bytes", "10"], "larger than --max-file-bytes"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_1(trained, capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "src", SHOP | {"notes.txt": "x\n"})
    code, _, err = run(trained, capsys, *args)
    assert code == 1 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "v.parquet").exists() and (tmp_path / "src/shop.py").read_text() == SHOP["shop.py"]
