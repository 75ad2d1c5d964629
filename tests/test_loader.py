"""The loader: injection, masking rates, determinism, no leaked labels."""

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graphmer.config import SamplesConfig, TokenizerConfig
from graphmer.loader import IGNORE, LeafyChains, collate, word_starts
from graphmer.samples import TAIL_SCHEMA, WINDOW_SCHEMA
from graphmer.tokenizer import MASK, PAD, train_tokenizer

R, L = 32, 3
CODE = "def load(path, mode):\n    with open(path) as fh:\n        return parse(fh.read(), mode=mode)\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    tok = train_tokenizer([CODE] * 50, TokenizerConfig(vocab_size=320))
    roots = (tok.encode(CODE * 3).ids * 2)[:R]
    tails = [[300, 301], [302], [303, 304, 305], [300, 301]]  # tails 0 and 3 have the same text
    pq.write_table(
        pa.table(
            {
                "tail": [f"t{i}" for i in range(4)],
                "name": [f"n{i}" for i in range(4)],
                "ids": tails,
                "truncated": [False] * 4,
            },
            schema=TAIL_SCHEMA,
        ),
        tmp / "tails.parquet",
    )
    rows = []
    for w in range(40):
        rows.append(
            {
                "file": f"f{w % 5}.py",
                "start": 0,
                "roots": roots if w % 7 else roots[:9],
                # anchor 0: relations 2 (x9) and 9 (x1); anchor 5: tail 0 or 3 (same text as anchor 0's)
                "cand_anchor": [0] * 10 + [5, 5],
                "cand_end": [2] * 10 + [6, 6],
                "cand_relation": [2] * 9 + [9] + [1, 1],
                "cand_tail": [0] * 9 + [1] + [3, 0],
                "cand_copyable": [False] * 12,
            }
        )
    pq.write_table(pa.Table.from_pylist(rows, schema=WINDOW_SCHEMA), tmp / "train.parquet")
    return tok, tmp


def dataset(setup, **masking):
    tok, tmp = setup
    return LeafyChains(
        tmp / "train.parquet", tmp / "tails.parquet", tok.get_vocab(), R, L, SamplesConfig(**masking)
    )


def test_item_layout(setup):
    ds = dataset(setup)
    tail_len = {0: 2, 1: 1, 3: 2}
    for i in range(1, 7):
        item = ds[i]
        assert item["input_ids"].shape == (R + R * L,) and item["leaf_relation"].shape == (R,)
        filled = list(np.flatnonzero(item["leaf_relation"] >= 0))
        # Anchor 5's tails have the text of anchor 0's tail 0: injected only when anchor 0 drew tail 1.
        assert filled == ([0, 5] if item["leaf_tail"][0] == 1 else [0])
        assert item["head_end"][0] == 2 and item["head_end"][1] == 2  # an empty group's head is its root
        leaves = item["attention_mask"][R:].reshape(R, L)
        assert [int(leaves[g].sum()) for g in filled] == [tail_len[int(item["leaf_tail"][g])] for g in filled]
        assert leaves.sum() == sum(tail_len[int(item["leaf_tail"][g])] for g in filled)


def test_short_window_is_padded_and_masked_out(setup):
    item = dataset(setup)[0]  # 9 roots
    assert (item["input_ids"][9:R] == PAD).all() and not item["attention_mask"][9:R].any()
    assert (item["labels"][9:R] == IGNORE).all()


def test_same_seed_and_epoch_same_draw_other_epoch_other_draw(setup):
    a, b = dataset(setup), dataset(setup)
    for i in range(5):
        for k, v in a[i].items():
            assert np.array_equal(v, b[i][k]), k
    b.set_epoch(1)
    assert any(not np.array_equal(a[i]["labels"], b[i]["labels"]) for i in range(5))


def test_a_tail_text_is_injected_once_per_window(setup):
    ds = dataset(setup)
    for epoch in range(5):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            ids = item["input_ids"].copy()
            lab = item["labels"]
            ids[lab != IGNORE] = lab[lab != IGNORE]  # unmasked view
            groups = [
                tuple(ids[R + g * L : R + g * L + L]) for g in np.flatnonzero(item["leaf_relation"] >= 0)
            ]
            assert len(groups) == len(set(groups))


def test_relation_balanced_draw(setup):
    # Anchor 0 has 9 candidates of relation 2 and 1 of relation 9: balanced, each relation ~half.
    ds = dataset(setup)
    drawn = Counter()
    for epoch in range(20):
        ds.set_epoch(epoch)
        drawn.update(int(ds[i]["leaf_relation"][0]) for i in range(len(ds)))
    assert abs(drawn[9] / sum(drawn.values()) - 0.5) < 0.07
    unbalanced = dataset(setup, balance=False)
    share = np.mean([unbalanced[i]["leaf_relation"][0] == 9 for i in range(len(unbalanced))])
    assert share < 0.3


def test_masking_rates_match_the_targets(setup):
    tok, _ = setup
    ds = dataset(setup)
    begins, ends = word_starts(tok.get_vocab())
    roots = masked = mask_tok = kept = groups = groups_masked = 0
    spans = []
    for epoch in range(25):
        ds.set_epoch(epoch)
        batch = collate([ds[i] for i in range(len(ds))])
        lab, ids, attn = batch["labels"].numpy(), batch["input_ids"].numpy(), batch["attention_mask"].numpy()
        root_lab = lab[:, :R]
        roots += attn[:, :R].sum()
        sel = root_lab != IGNORE
        masked += sel.sum()
        mask_tok += (ids[:, :R][sel] == MASK).sum()
        kept += (ids[:, :R][sel] == root_lab[sel]).sum()
        for row, orig in zip(sel, np.where(root_lab != IGNORE, root_lab, ids[:, :R])):
            run = 0
            for j, x in enumerate(list(row) + [False]):
                if x:
                    if run == 0:  # a masked run begins at a word start
                        assert j == 0 or begins[orig[j]] or ends[orig[j - 1]], (
                            j,
                            orig[max(j - 1, 0)],
                            orig[j],
                        )
                    run += 1
                elif run:
                    spans.append(run)
                    run = 0
        filled = batch["leaf_relation"].numpy() >= 0
        leaf_lab = lab[:, R:].reshape(len(lab), R, L)
        groups += filled.sum()
        groups_masked += ((leaf_lab != IGNORE).any(-1) & filled).sum()
    target = SamplesConfig()  # the dataset's masking: the config's defaults
    assert abs(masked / roots - target.mask_rate) < 0.02
    assert abs(mask_tok / masked - 0.8) < 0.04
    assert abs(kept / masked - 0.1) < 0.04  # (+ the few random draws that hit the same token)
    assert abs(groups_masked / groups - target.leaf_mask_prob) < 0.04
    assert max(spans) <= 14  # two adjacent spans of at most 7 can touch
    assert np.mean(spans) > 1.3  # spans, not single tokens


def test_masked_leaf_groups_are_masked_whole(setup):
    ds = dataset(setup, leaf_mask_prob=0.99)
    item = ds[3]
    for g in np.flatnonzero(item["leaf_relation"] >= 0):
        slots = slice(R + g * L, R + g * L + L)
        real = item["attention_mask"][slots]
        assert (item["labels"][slots][real] != IGNORE).all()
        assert (item["labels"][slots][~real] == IGNORE).all()


def test_word_bounds_of_an_item_are_those_of_its_roots_as_the_model_sees_them(setup):
    """inject (evaluation) marks the words of the unmasked roots; draw (training) those of the
    roots after masking: the same function, so train and evaluation copy the same kind of span."""
    from graphmer.loader import word_bounds

    ds = dataset(setup, mask_rate=0.3)
    # this code's tokens are whole words: let the second root continue the first one
    ds.begins, ds.ends = ds.begins.copy(), ds.ends.copy()
    ds.begins[ds.roots_ids[0][1]] = ds.ends[ds.roots_ids[0][0]] = False
    for i in range(min(len(ds), 4)):
        roots = ds.roots_ids[i]
        n = len(roots)
        item = ds.inject(i, np.random.default_rng(0))
        start, stop = word_bounds(roots, ds.begins, ds.ends)
        assert (item["word_start"][:n] == start).all() and (item["word_stop"][:n] == stop).all()
        drawn = ds.draw(i, 0)
        start, stop = word_bounds(drawn["input_ids"][:n], ds.begins, ds.ends)
        assert (drawn["word_start"][:n] == start).all() and (drawn["word_stop"][:n] == stop).all()
        assert i > 0 or not item["word_start"][1]  # the second root starts no word
