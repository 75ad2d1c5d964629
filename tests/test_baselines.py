"""The cheap rules on hand-built windows: exact ranks from exact keys."""

import numpy as np
import pytest

from graphmer.baselines import NameLookup, baseline_scores, identifier_runs
from graphmer.config import TokenizerConfig
from graphmer.extract.pipeline import extract_kg
from graphmer.loader import word_starts
from graphmer.ranking import Candidates, rank_metrics
from graphmer.tokenizer import leaf_ids, train_tokenizer
from tests.extract.helpers import write_tree

CODE = "class Shop(Base):\n    def get(self, item: Item) -> Price:\n        return get_price(item)\n"


@pytest.fixture(scope="module")
def tok():
    texts = [CODE * 3, "Base Item Price get_price Other Shop get\n" * 3]
    return train_tokenizer(texts, TokenizerConfig(vocab_size=300))


def _question(tok, names, counts, head="Item", occurrence=0):
    """The window is CODE; the head is the `occurrence`-th mention of `head`."""
    enc = tok.encode(CODE)
    at = _starts(CODE, head)[occurrence]
    first = next(i for i, (s, e) in enumerate(enc.offsets) if e > at)
    (head_ids,) = leaf_ids(tok, [head], 7)
    cands = Candidates.from_lists([list(x) for x in leaf_ids(tok, names, 7)], names, counts, 7)
    begins, ends = word_starts(tok.get_vocab())
    return np.asarray(enc.ids), first, first + len(head_ids), cands, begins, ends


def _starts(text, word):
    import re

    return [m.start() for m in re.finditer(rf"(?<![\w$]){word}(?![\w$])", text)]


def _order(scores, names):
    return [names[i] for i in np.argsort(-scores.numpy(), kind="stable")]


def test_identifier_runs_are_whole_words(tok):
    ids, *_, begins, ends = _question(tok, ["get"], [1])
    runs = identifier_runs(ids, begins, ends, 7)
    (get,) = leaf_ids(tok, ["get"], 7)
    (get_price,) = leaf_ids(tok, ["get_price"], 7)
    text_positions = [tok.decode(ids[p : p + len(get)].tolist()) for p in runs[get]]
    assert text_positions == ["get"]  # the method name, never the prefix of get_price
    assert len(runs[get_price]) == 1


def test_copy_ranks_by_distance_to_the_head_then_frequency(tok):
    names = ["Price", "Base", "Shop", "Nowhere", "Often"]
    counts = [1, 1, 1, 5, 50]
    ids, a, e, cands, b, n = _question(tok, names, counts, head="Item")
    s = baseline_scores(ids, a, e, 8, "item", cands, cands.index(), NameLookup([]), b, n)
    # Item's annotation: Price is 3 words after, Shop/Base before it; absent names by frequency
    assert _order(s["copy"], names) == ["Price", "Base", "Shop", "Often", "Nowhere"]
    assert rank_metrics(s["copy"], names.index("Price"))["rr"] == 1.0


def test_the_heads_own_mention_is_not_a_copy(tok):
    names = ["Item", "Base"]
    ids, a, e, cands, b, n = _question(tok, names, [1, 1], head="Item")
    s = baseline_scores(ids, a, e, 8, "item", cands, cands.index(), NameLookup([]), b, n)
    assert _order(s["copy"], names) == ["Base", "Item"]


def test_equal_keys_are_exact_ties(tok):
    names = ["Missing1", "Missing2"]
    ids, a, e, cands, b, n = _question(tok, names, [3, 3])
    s = baseline_scores(ids, a, e, 8, "item", cands, cands.index(), NameLookup([]), b, n)
    assert s["copy"][0] == s["copy"][1]
    assert rank_metrics(s["copy"], 0)["rr"] == pytest.approx(0.75)  # a coin between ranks 1 and 2


def test_name_lookup_and_copy_name_order(tok):
    names = ["Price", "Other", "Often"]
    (other,) = leaf_ids(tok, ["Other"], 7)
    (often,) = leaf_ids(tok, ["Often"], 7)
    lookup = NameLookup([("item", 8, other), ("item", 8, other), ("elsewhere", 8, often)])
    ids, a, e, cands, b, n = _question(tok, names, [1, 1, 100], head="Item")
    s = baseline_scores(ids, a, e, 8, "item", cands, cands.index(), lookup, b, n)
    assert _order(s["name_lookup"], names) == ["Other", "Often", "Price"]  # then frequency
    assert _order(s["copy_name"], names) == ["Price", "Other", "Often"]  # copy, name, frequency
    assert _order(s["frequency"], names)[0] == "Often"
    other_rel = baseline_scores(ids, a, e, 9, "item", cands, cands.index(), lookup, b, n)
    assert _order(other_rel["name_lookup"], names)[0] == "Often"  # counts are per relation


def test_name_lookup_counts_only_training_files(tmp_path, tok):
    raw = write_tree(
        tmp_path / "raw",
        {
            "s/a.py": "class A(Base):\n    pass\n",
            "s/b.py": "class A(Other):\n    pass\n",
            "s/base.py": "class Base:\n    pass\nclass Other:\n    pass\n",
        },
    )
    extract_kg({"s": raw / "s"}, tmp_path / "kg", progress=False)
    lookup = NameLookup.from_kg(tmp_path / "kg", {"s/a.py", "s/base.py"}, tok, 7)
    (base,) = leaf_ids(tok, ["Base"], 7)
    (other,) = leaf_ids(tok, ["Other"], 7)
    counts = lookup.counts[(4, "A")]  # inherits
    assert counts[base] == 1 and counts[other] == 0
