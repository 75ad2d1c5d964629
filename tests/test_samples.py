"""Leafy-chain samples: windows, anchors, candidates, the split by file."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graphmer import GraphmerError
from graphmer.config import SamplesConfig, TokenizerConfig
from graphmer.extract.pipeline import extract_kg
from graphmer.relations import Relation
from graphmer.samples import TAIL_SCHEMA, WINDOW_SCHEMA, build_samples, window_starts
from graphmer.tokenizer import save, train_tokenizer
from tests.extract.helpers import write_tree
from tests.tiny import write_split

SPLITS = ("train", "dev", "test")
HELD_OUT = {
    "a/pkg/m1.py": "dev",
    "a/pkg/m2.py": "test",
    "a/pkg/m4.py": "test",
    "b/copy_of_m0.py": "duplicate",
}

CFG = SamplesConfig(roots=16, leaves=3, stride=16)
TOKENIZER = TokenizerConfig(vocab_size=300)
LIB = "def helper(x):\n    return x\n\n\nclass Box:\n    def put(self, item):\n        helper(item)\n"


@pytest.mark.parametrize(("n", "starts"), [(1, [0]), (16, [0]), (17, [0, 1]), (40, [0, 16, 24])])
def test_window_starts_cover_every_token(n, starts):
    assert window_starts(n, CFG) == starts


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chains")
    files = {f"a/pkg/m{i}.py": LIB.replace("helper", f"helper{i}") + "x = 1\n" * i for i in range(12)}
    files["a/pkg/long_tail.py"] = "def f():\n    return averyveryveryverylongname_with_many_parts()\n"
    files["b/copy_of_m0.py"] = files["a/pkg/m0.py"]  # the same content in another source
    raw = write_tree(tmp / "raw", files)
    extract_kg({"a": raw / "a", "b": raw / "b"}, tmp / "kg", progress=False)
    tok = train_tokenizer([f for f in files.values()], TOKENIZER)
    save(tok, tmp / "tok.json")
    split = write_split(tmp / "kg", tmp / "split.parquet", HELD_OUT)
    metrics = build_samples(raw, tmp / "kg", tmp / "tok.json", split, tmp / "samples", CFG, progress=False)
    tables = {s: pq.read_table(tmp / "samples" / f"{s}.parquet").to_pylist() for s in SPLITS}
    tails = pq.read_table(tmp / "samples/tails.parquet").to_pylist()
    files = pq.read_table(tmp / "kg/files.parquet").column("path").to_pylist()
    splits = {p: HELD_OUT.get(p, "train") for p in files}
    return {
        "tok": tok,
        "metrics": metrics,
        "tables": tables,
        "tails": tails,
        "splits": splits,
    }


def test_no_file_in_two_splits_and_duplicates_in_none(built):
    files = {s: {r["file"] for r in built["tables"][s]} for s in SPLITS}
    assert all(files.values())
    pairs = [("train", "dev"), ("train", "test"), ("dev", "test")]
    assert not any(files[a] & files[b] for a, b in pairs)
    every = files["train"] | files["dev"] | files["test"]
    assert "b/copy_of_m0.py" not in every
    assert every == {p for p, s in built["splits"].items() if s in SPLITS}


def test_training_windows_carry_only_triples_of_training_files(built):
    tails = built["tails"]
    train_tails = {tails[t]["tail"] for r in built["tables"]["train"] for t in r["cand_tail"]}
    assert all(all(r["cand_train"]) for r in built["tables"]["train"])
    # m1 (dev) and m2 (test) define helper1 / helper2: their parameters are no training fact
    assert "py:m3.helper3.x" in train_tails
    assert not {"py:m1.helper1.x", "py:m2.helper2.x"} & train_tails
    held = {
        (tails[t]["tail"], c)
        for r in built["tables"]["test"]
        for t, c in zip(r["cand_tail"], r["cand_train"])
    }
    assert ("py:m2.helper2.x", False) in held


def test_heads_anchor_at_their_mention_with_all_their_triples(built):
    tok, tails = built["tok"], built["tails"]
    rows = [r for s in SPLITS for r in built["tables"][s] if r["file"] == "a/pkg/m3.py"]
    first = rows[0]
    anchors = {}  # the head's tokens (anchor root .. end) -> its candidate triples
    for a, e, rel, t in zip(
        first["cand_anchor"], first["cand_end"], first["cand_relation"], first["cand_tail"]
    ):
        anchors.setdefault(tok.decode(first["roots"][a:e]).strip(), set()).add((rel, tails[t]["tail"]))
    assert anchors == {
        "helper3": {(int(Relation.HAS_PARAMETER), "py:m3.helper3.x")},  # the def mention
        "Box": {(int(Relation.CONTAINS), "py:m3.Box.put")},
    }


def test_roots_are_the_file_tokens(built):
    rows = [r for s in SPLITS for r in built["tables"][s] if r["file"] == "a/pkg/m5.py"]
    ids = [t for r in rows for t in r["roots"][: (16 if r is not rows[-1] else None)]]
    text = LIB.replace("helper", "helper5") + "x = 1\n" * 5
    assert built["tok"].decode(rows[-1]["roots"]) in text
    assert all(len(r["roots"]) == 16 for r in rows) and ids


def test_short_file_gives_one_padded_window(built):
    rows = [r for s in SPLITS for r in built["tables"][s] if r["file"] == "a/pkg/long_tail.py"]
    assert len(rows) >= 1 and all(len(r["roots"]) <= 16 for r in rows)


def test_long_tails_are_truncated_and_counted(built):
    long = [t for t in built["tails"] if t["name"].startswith("averyvery")]
    assert long and all(len(t["ids"]) == 3 and t["truncated"] for t in long)
    assert built["metrics"]["tails_truncated"] >= 1


def test_metrics_count_windows_and_relations(built):
    m = built["metrics"]
    for split in SPLITS:
        assert m[split]["windows"] == len(built["tables"][split])
        assert m[split]["candidate_triples"] == sum(len(r["cand_tail"]) for r in built["tables"][split])
        assert sum(m[split]["triples_per_relation"].values()) == m[split]["candidate_triples"]
    assert 0 < m["train"]["leaf_fill_rate"] < 1


def test_empty_corpus_is_a_clear_error(tmp_path):
    raw = write_tree(tmp_path / "raw", {"s/a.py": ""})
    extract_kg({"s": raw / "s"}, tmp_path / "kg", progress=False)
    save(train_tokenizer(["x = 1\n"], TOKENIZER), tmp_path / "tok.json")
    split = write_split(tmp_path / "kg", tmp_path / "split.parquet", {})
    with pytest.raises(GraphmerError, match="corpus is empty"):
        build_samples(
            raw, tmp_path / "kg", tmp_path / "tok.json", split, tmp_path / "out", CFG, progress=False
        )


def test_windows_without_anchors_are_kept_and_load_empty(built, tmp_path):
    from graphmer.loader import LeafyChains

    rows = [r for r in built["tables"]["train"] if not r["cand_anchor"]]
    assert rows and built["metrics"]["train"]["windows_without_anchor"] == len(rows)
    path = tmp_path / "w.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=WINDOW_SCHEMA), path)
    ds = LeafyChains(path, _tails(built, tmp_path), built["tok"].get_vocab(), 16, 3)
    item = ds[0]
    assert (item["leaf_relation"] == -1).all() and not item["attention_mask"][16:].any()


def _tails(built, tmp_path):
    p = tmp_path / "tails.parquet"
    pq.write_table(pa.Table.from_pylist(built["tails"], schema=TAIL_SCHEMA), p)
    return p
