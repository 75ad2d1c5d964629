import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import PreTrainedTokenizerFast

from graphmer import GraphmerError
from graphmer.config import TokenizerConfig
from graphmer.tokenizer import (
    IDENTIFIER,
    SPECIAL_TOKENS,
    build,
    leaf_ids,
    leaf_ids_by_name,
    load,
    save,
    tail_leaf_ids,
    train_tokenizer,
)
from tests.conftest import ROOT

SNIPPETS = {
    "python": "class Café:\n\tdef _cache_key(self, x: int) -> str:\r\n        return f'{x!r} → ✓'  # ünï\n",
    "java": "package org.x;\n\npublic class A<T> {\n    /** Ω */\n    int count = 0x1F;\n}\n",
    "javascript": "const s = `tmpl ${a}`;\nexport default function f(a, ...b) { return a ?? '😀'; }\n",
}


@pytest.fixture(scope="module")
def tok():
    texts = list(SNIPPETS.values()) * 20 + [p.read_text() for p in (ROOT / "src/graphmer").rglob("*.py")]
    return train_tokenizer(texts, TokenizerConfig(vocab_size=600))


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


def test_identifiers_are_pretokenized_whole_and_without_their_space(tok):
    pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str("self._cache_key = a1+ 22")]
    assert pieces == ["self", ".", "_cache_key", "Ġ=", "Ġ", "a1", "+", "Ġ22"]


def test_a_frequent_identifier_becomes_one_token():
    tok = train_tokenizer(["x._cache_key = _cache_key\n"] * 200, TokenizerConfig(vocab_size=300))
    assert tok.encode(" _cache_key").tokens == ["Ġ", "_cache_key"]


def test_a_name_has_the_same_ids_in_the_code_and_in_the_leaves():
    """For every name written in real code, its leaf tokens occur as a contiguous run of the
    code's ids wherever the name occurs there as a word: copying needs no id-to-id map."""
    import re

    texts = [p.read_text() for p in sorted((ROOT / "src/graphmer").rglob("*.py"))]
    tok = train_tokenizer(texts, TokenizerConfig(vocab_size=800))
    checked = 0
    for text in texts[:10]:
        enc = tok.encode(text)
        ids = enc.ids
        names = sorted(set(IDENTIFIER.findall(text)))
        for name, leaf in zip(names, leaf_ids(tok, names, 64)):
            for m in re.finditer(rf"(?<![\w$]){re.escape(name)}(?![\w$])", text):
                first = next(i for i, (s, e) in enumerate(enc.offsets) if e > m.start())
                if ids[first] < len(SPECIAL_TOKENS):
                    continue  # "MASK" inside a literal "[MASK]": the special token, by design
                assert tuple(ids[first : first + len(leaf)]) == leaf, (name, text[m.start() - 10 : m.end()])
                checked += 1
    assert checked > 1000


def test_leaf_ids_by_name_are_each_names_leaf_ids(tok):
    names = ["get", "_cache_key", "get", "Café", ""]
    by_name = leaf_ids_by_name(tok, iter(names), 3)
    assert sorted(by_name) == ["", "Café", "_cache_key", "get"]  # each name once
    assert [by_name[n] for n in names] == leaf_ids(tok, names, 3)
    assert by_name[""] == () and all(0 < len(ids) <= 3 for n, ids in by_name.items() if n)


def test_tail_leaf_ids_are_the_leaf_ids_of_each_tails_name(tok):
    names = {"py:m.get": "get", "js:?.get": "get", "py:m.Café": "Café", "py:?.x": ""}
    ids = tail_leaf_ids(tok, names, 2)
    assert ids == {t: leaf_ids(tok, [n], 2)[0] for t, n in names.items()}
    assert ids["py:m.get"] == ids["js:?.get"] and ids["py:?.x"] == ()


def test_transformers_loads_it(tok, tmp_path):
    save(tok, tmp_path / "tokenizer.json")
    fast = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    text = SNIPPETS["python"]
    assert fast(text)["input_ids"] == load(tmp_path / "tokenizer.json").encode(text).ids
    assert fast.decode(fast(text)["input_ids"]) == text


def test_build_trains_on_the_training_split_only(tmp_path):
    raw = tmp_path / "raw"
    (raw / "s").mkdir(parents=True)
    for i in range(40):
        word = f"word_{i:02d}_marker"
        (raw / f"s/m{i}.py").write_text(f"def {word}():\n    return {word}\n" * 30)
    held = {f"s/m{i}.py": "dev" for i in range(0, 40, 5)} | {f"s/m{i}.py": "test" for i in range(1, 40, 5)}
    split = tmp_path / "split.parquet"
    paths = [f"s/m{i}.py" for i in range(40)]
    pq.write_table(pa.table({"path": paths, "split": [held.get(p, "train") for p in paths]}), split)
    m = build(raw, split, tmp_path / "tok.json", TokenizerConfig(vocab_size=400), tmp_path / "m.json")
    vocab = load(tmp_path / "tok.json").get_vocab()
    in_vocab = {f"s/m{i}.py" for i in range(40) if f"word_{i:02d}_marker" in vocab}
    assert in_vocab and not (set(held) & in_vocab)  # train words learned, held-out words never seen
    assert len(in_vocab) > 20
    assert m["train"]["roundtrip_failures"] == 0 and m["dev"]["files"] == 8 and m["test"]["files"] == 8


def test_empty_corpus_is_a_clear_error(tmp_path):
    split = tmp_path / "split.parquet"
    pq.write_table(pa.table({"path": pa.array([], pa.string()), "split": pa.array([], pa.string())}), split)
    with pytest.raises(GraphmerError, match="corpus is empty"):
        build(tmp_path, split, tmp_path / "t.json", TokenizerConfig(vocab_size=400))
