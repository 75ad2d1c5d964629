import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import PreTrainedTokenizerFast

from graphmer import GraphmerError
from graphmer.tokenizer import SPECIAL_TOKENS, build, load, save, train_tokenizer
from tests.conftest import ROOT

SNIPPETS = {
    "python": "class Café:\n\tdef _cache_key(self, x: int) -> str:\r\n        return f'{x!r} → ✓'  # ünï\n",
    "java": "package org.x;\n\npublic class A<T> {\n    /** Ω */\n    int count = 0x1F;\n}\n",
    "javascript": "const s = `tmpl ${a}`;\nexport default function f(a, ...b) { return a ?? '😀'; }\n",
}


@pytest.fixture(scope="module")
def tok():
    texts = list(SNIPPETS.values()) * 20 + [p.read_text() for p in (ROOT / "src/graphmer").rglob("*.py")]
    return train_tokenizer(texts, vocab_size=600)


def test_special_tokens_come_first(tok):
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("lang", sorted(SNIPPETS))
def test_roundtrip_on_code_in_every_language(tok, lang):
    text = SNIPPETS[lang]
    assert tok.decode(tok.encode(text).ids) == text


def test_roundtrip_on_real_files(tok):
    files = sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "tests").rglob("*.py"))
    assert len(files) > 20
    for p in files:
        text = p.read_text()
        # skip_special_tokens=False: a literal "[MASK]" in code is the special token, decoded back.
        assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text, p


def test_identifiers_are_pretokenized_whole(tok):
    pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str("self._cache_key = a1+ 22")]
    assert pieces == ["self", ".", "_cache_key", "Ġ=", "Ġa1", "+", "Ġ22"]


def test_a_frequent_identifier_becomes_one_token():
    tok = train_tokenizer(["x._cache_key = _cache_key\n"] * 200, vocab_size=300)
    assert tok.encode(" _cache_key").tokens == ["Ġ_cache_key"]


def test_transformers_loads_it(tok, tmp_path):
    save(tok, tmp_path / "tokenizer.json")
    fast = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    text = SNIPPETS["python"]
    assert fast(text)["input_ids"] == load(tmp_path / "tokenizer.json").encode(text).ids
    assert fast.decode(fast(text)["input_ids"]) == text


def test_build_trains_on_the_training_split_only(tmp_path):
    raw = tmp_path / "raw"
    rows = []
    for i in range(40):
        word = f"word_{i:02d}_marker"
        text = (f"def {word}():\n    return {word}\n" * 30).encode()
        (raw / "s").mkdir(parents=True, exist_ok=True)
        (raw / f"s/m{i}.py").write_bytes(text)
        import hashlib

        rows.append({"path": f"s/m{i}.py", "sha256": hashlib.sha256(text).hexdigest(), "skipped": None})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "files.parquet")
    m = build(
        raw,
        tmp_path / "files.parquet",
        tmp_path / "tok.json",
        vocab_size=400,
        min_frequency=2,
        val_fraction=0.3,
        seed=0,
        metrics_path=tmp_path / "m.json",
    )
    from graphmer.split import assign_splits

    splits = assign_splits(pq.read_table(tmp_path / "files.parquet"), 0.3, 0)
    vocab = load(tmp_path / "tok.json").get_vocab()
    in_vocab = {i for i in range(40) if f"Ġword_{i:02d}_marker" in vocab}
    val = {i for i in range(40) if splits[f"s/m{i}.py"] == "val"}
    assert val and in_vocab and not (val & in_vocab)  # train words learned, val words never seen
    assert m["train"]["roundtrip_failures"] == 0 and m["val"]["files"] == len(val)


def test_empty_corpus_is_a_clear_error(tmp_path):
    pq.write_table(
        pa.table(
            {
                "path": pa.array([], pa.string()),
                "sha256": pa.array([], pa.string()),
                "skipped": pa.array([], pa.string()),
            }
        ),
        tmp_path / "files.parquet",
    )
    with pytest.raises(GraphmerError, match="corpus is empty"):
        build(tmp_path, tmp_path / "files.parquet", tmp_path / "t.json", 400, 2, 0.2, 0)
