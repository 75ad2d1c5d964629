"""Tail completion: batched candidate scoring equals scoring each candidate alone; honest ranks."""

import numpy as np
import pytest
import torch

from graphmer.config import SamplesConfig
from graphmer.loader import LeafyChains
from graphmer.model import GraphMERT
from graphmer.ranking import (
    Candidates,
    GroupOutput,
    Question,
    answer,
    group_outputs,
    masked_variants,
    rank_metrics,
    score_candidates,
)
from graphmer.relations import NUM_RELATIONS
from graphmer.tokenizer import MASK, PAD
from graphmer.train import tail_names
from tests.tiny import L, R, tiny_config


@pytest.fixture(scope="module")
def setup(tiny):
    samples = tiny["paths"].samples
    ds = LeafyChains(
        samples / "train.parquet", samples / "tails.parquet", tiny["vocab"], R, L, SamplesConfig()
    )
    torch.manual_seed(0)
    model = GraphMERT(tiny_config(tiny["vocab_size"])).eval()
    # a window with at least two anchored heads, so other leaf groups exist
    index = next(i for i in range(len(ds)) if len(np.unique(ds.cands[i][0])) >= 2)
    return ds, model, index


def question(ds, index, row):
    item = ds.inject(index, np.random.default_rng(0), forced=row)
    anchor = int(ds.cands[index][0][row])
    return Question(item, anchor, int(ds.cands[index][2][row]), int(item["head_end"][anchor]))


def test_variants_mask_the_group_with_each_length_and_code_only_empties_the_rest(setup):
    ds, _, index = setup
    q = question(ds, index, 0)
    variants = masked_variants(q.item, q.anchor, q.relation, q.head_end, [1, 3], R, L, graph=True)
    for length, v in zip([1, 3], variants):
        group = v["input_ids"][R + q.anchor * L : R + (q.anchor + 1) * L]
        assert (group[:length] == MASK).all() and (group[length:] == PAD).all()
        assert v["attention_mask"][R + q.anchor * L : R + (q.anchor + 1) * L].sum() == length
        assert v["leaf_relation"][q.anchor] == q.relation
    others = (q.item["leaf_relation"] >= 0).sum() - 1
    assert others >= 1 and (variants[0]["leaf_relation"] >= 0).sum() == others + 1
    (alone,) = masked_variants(q.item, q.anchor, q.relation, q.head_end, [2], R, L, graph=False)
    assert (alone["leaf_relation"] >= 0).sum() == 1
    assert alone["attention_mask"][R:].sum() == 2
    assert (alone["input_ids"][:R] == q.item["input_ids"][:R]).all()  # the code is untouched


def _by_hand(out, ids) -> float:
    """log((1 - g) prod_s p(t_s) + g * sum of the pointer's mass on the starts that spell ids)."""
    tokens = sum(float(out.vocab[k, t]) for k, t in enumerate(ids))
    gen = np.exp(tokens)
    if out.log_mem is not None:  # (1 - h) prod p(t_s) + h p_mem(name), 0 for a name it lacks
        row = out.memory.rows().get(tuple(ids))
        held = 0.0 if row is None else float(out.log_mem[row].exp())
        gen = np.exp(out.mem_keep) * gen + np.exp(out.mem_gate) * held
    keep = np.exp(out.log_keep) * gen
    if out.log_attn is None:
        return float(np.log(keep))
    roots = out.root_ids.tolist()
    mass = sum(
        float(out.log_attn[j].exp())
        for j in range(len(roots) - len(ids) + 1)
        if roots[j : j + len(ids)] == list(ids)
    )
    return float(np.log(keep + np.exp(out.log_gate) * mass))


@pytest.mark.parametrize("parts", ["copy", "plain", "copy+memory"])
def test_batched_scores_equal_each_candidate_scored_alone(setup, tiny, parts):
    ds, model, index = setup
    copy = "copy" in parts
    if parts != "copy":
        torch.manual_seed(0)
        names, counts = tail_names(tiny["paths"].samples, L)
        cfg = tiny_config(len(ds.begins), copy=copy, memory="memory" in parts, memory_size=len(names))
        model = GraphMERT(cfg).eval()
        if model.memory is not None:
            model.memory.fill(names, counts)
    q = question(ds, index, 0)
    roots = q.item["input_ids"][:R].tolist()
    # three candidates written in the window (copyable), three not
    words = [
        [roots[j]] for j in range(R) if q.item["word_start"][j] and q.item["word_stop"][j] and roots[j] >= 5
    ][:3]
    assert len(words) == 3
    ids = words + [[7], [9, 11], [12, 13, 14]]
    if "memory" in parts:  # and three names the memory holds for this relation
        ids += [
            list(model.memory.names[i][model.memory.names[i] != PAD].tolist())
            for i in torch.nonzero(model.memory.member[q.relation])[:3, 0]
        ]
    ids = [x for i, x in enumerate(ids) if x not in ids[:i]]
    cands = Candidates.from_lists(ids, [str(i) for i in range(len(ids))], [0] * len(ids), L)
    (batched,) = answer(model, [q], [cands], graph=True, batch_size=2)
    copied = remembered = 0
    for i in range(len(cands)):
        n = int(cands.lengths[i])
        (v,) = masked_variants(q.item, q.anchor, q.relation, q.head_end, [n], R, L)
        (out,) = group_outputs(model, [v], [q.anchor], [n])
        alone = _by_hand(out, cands.ids[i, :n].tolist()) + float(cands.log_length_prior[n])
        assert float(batched[i]) == pytest.approx(alone, abs=1e-4)
        copied += out.log_attn is not None and i < len(words)
        row = model.memory.rows().get(tuple(cands.ids[i, :n].tolist())) if model.memory is not None else None
        remembered += row is not None and bool(torch.isfinite(out.log_mem[row]))
    assert copied == (len(words) if copy else 0)
    assert (remembered > 0) == ("memory" in parts)


def test_scores_do_not_depend_on_the_true_tail(setup):
    """No variant carries the answer or its length: two questions that differ only in which
    tail is true get the same scores."""
    ds, model, index = setup
    q = question(ds, index, 0)
    cands = Candidates.from_lists([[5], [6, 7], [8, 9, 10]], ["x", "y", "z"], [0, 0, 0], L)
    other = {k: v.copy() for k, v in q.item.items()}
    other["input_ids"][R + q.anchor * L : R + (q.anchor + 1) * L] = [20, 21, 22][:L]  # another "true" tail
    q2 = Question(other, q.anchor, q.relation, q.head_end)
    a, b = answer(model, [q, q2], [cands, cands], graph=True, batch_size=8)
    assert torch.allclose(a, b)


def test_score_gathers_the_right_rows_and_adds_the_pointer_mass_of_each_occurrence():
    lp = {1: torch.log_softmax(torch.randn(1, 10), -1), 2: torch.log_softmax(torch.randn(2, 10), -1)}
    cands = Candidates.from_lists([[3], [4, 5], [1, 2, 3]], ["a", "b", "c"], [0, 0, 0], 3)
    s = (
        score_candidates({n: GroupOutput(v) for n, v in lp.items()}, cands)
        - cands.log_length_prior[cands.lengths]
    )
    assert float(s[0]) == pytest.approx(float(lp[1][0, 3]))
    assert float(s[1]) == pytest.approx(float(lp[2][0, 4] + lp[2][1, 5]))
    assert s[2] == float("-inf")  # no length-3 variant: never ranked above a scored candidate
    # the pointer of the length-2 variant: half its mass on each of two starts spelling `4 5`
    roots = torch.tensor([4, 5, 9, 4, 5, 6])
    attn = torch.tensor([0.5, 0.0, 0.0, 0.5, 0.0, 0.0]).log()
    half = torch.tensor(0.5).log()
    out = {2: GroupOutput(lp[2], float(half), float(half), attn, roots)}
    s = score_candidates(out, cands) - cands.log_length_prior[cands.lengths]
    vocab = float((lp[2][0, 4] + lp[2][1, 5]).exp())
    assert float(s[1]) == pytest.approx(np.log(0.5 * vocab + 0.5 * 1.0), abs=1e-5)


def test_the_length_prior_is_the_training_graph_length_distribution():
    cands = Candidates.from_lists([[1], [2], [3, 4]], ["a", "b", "c"], [5, 3, 0], 3)
    p = cands.log_length_prior.exp()
    # add-one over lengths 1..3 of counts 8 (length 1), 0 (length 2), 0 (length 3)
    assert p[1:].tolist() == pytest.approx([9 / 11, 1 / 11, 1 / 11]) and p[0] == 0


def test_ranks_are_expected_values_over_ties():
    constant = torch.zeros(10)
    m = rank_metrics(constant, 0)
    assert m["rr"] == pytest.approx(np.mean(1 / np.arange(1, 11)))
    assert m["hits1"] == pytest.approx(0.1) and m["hits3"] == pytest.approx(0.3) and m["hits10"] == 1.0
    best = rank_metrics(torch.tensor([5.0, 1, 2, 3]), 0)
    assert best["rr"] == 1.0 and best["hits1"] == 1.0
    third = rank_metrics(torch.tensor([1.0, 3, 2, 0]), 0)
    assert third["rr"] == pytest.approx(1 / 3) and third["hits1"] == 0 and third["hits3"] == 1


def test_filtered_ranking_drops_the_other_true_tails():
    scores = torch.tensor([1.0, 3, 2, 0])
    exclude = torch.tensor([False, True, True, False])  # other true tails of the same (head, r)
    assert rank_metrics(scores, 0, exclude)["rr"] == 1.0


def test_scores_do_not_depend_on_the_true_tails_length_or_id(setup):
    """Two questions whose true tails differ in length, tail row and copyability score alike."""
    ds, model, index = setup
    q = question(ds, index, 0)
    cands = Candidates.from_lists([[5], [6, 7], [8, 9, 10]], ["x", "y", "z"], [0, 0, 0], L)
    items = []
    for length, tail, copyable in ((1, 3, False), (L, 7, True)):
        item = {k: v.copy() for k, v in q.item.items()}
        group = slice(R + q.anchor * L, R + (q.anchor + 1) * L)
        item["input_ids"][group], item["attention_mask"][group] = PAD, False
        item["input_ids"][R + q.anchor * L : R + q.anchor * L + length] = 20
        item["attention_mask"][R + q.anchor * L : R + q.anchor * L + length] = True
        item["leaf_tail"][q.anchor], item["leaf_copyable"][q.anchor] = tail, copyable
        items.append(Question(item, q.anchor, q.relation, q.head_end))
    for n in (1, 2):
        (v,) = masked_variants(items[1].item, q.anchor, q.relation, q.head_end, [n], R, L)
        assert v["attention_mask"][R + q.anchor * L : R + (q.anchor + 1) * L].sum() == n
        assert v["leaf_tail"][q.anchor] == -1 and not v["leaf_copyable"][q.anchor]
    a, b = answer(model, items, [cands, cands], graph=True, batch_size=8)
    assert torch.allclose(a, b)


def test_score_mixes_in_the_memorys_probability_of_each_candidates_name():
    """A candidate the model's tail memory holds gets (1 - h) p_vocab + h p_mem; one it does not
    hold gets (1 - h) p_vocab alone."""
    counts = torch.zeros(NUM_RELATIONS, 2, dtype=torch.long)
    counts[0] = torch.tensor([1, 1])
    model = GraphMERT(tiny_config(20, roots=4, leaves=3, memory=True, memory_size=2))
    model.memory.fill([(4, 5), (3,)], counts)
    lp = {1: torch.log_softmax(torch.randn(1, 10), -1), 2: torch.log_softmax(torch.randn(2, 10), -1)}
    cands = Candidates.from_lists([[3], [4, 5], [6, 7]], ["a", "b", "c"], [0, 0, 0], 3)
    gates = {"mem_gate": float(np.log(0.25)), "mem_keep": float(np.log(0.75)), "memory": model.memory}
    out = {n: GroupOutput(v, **gates) for n, v in lp.items()}
    out[1].log_mem = torch.tensor([float("-inf"), 0.0])  # all of the length-1 mass on name 1: `3`
    out[2].log_mem = torch.tensor([torch.tensor(0.6).log(), float("-inf")])
    s = (score_candidates(out, cands) - cands.log_length_prior[cands.lengths]).exp()
    assert float(s[0]) == pytest.approx(0.75 * float(lp[1][0, 3].exp()) + 0.25, abs=1e-5)
    vocab = float((lp[2][0, 4] + lp[2][1, 5]).exp())
    assert float(s[1]) == pytest.approx(0.75 * vocab + 0.25 * 0.6, abs=1e-5)
    assert float(s[2]) == pytest.approx(0.75 * float((lp[2][0, 6] + lp[2][1, 7]).exp()), abs=1e-6)
