"""The GraphMERT encoder's parts against their formulas, and the layout equivalence."""

import math

import pytest
import torch
import torch.nn.functional as F

from graphmer.config import PRESETS, SamplesConfig
from graphmer.loader import IGNORE, LeafyChains, collate, compact
from graphmer.model import (
    COPY_OFFSETS,
    HGAT,
    CopyHead,
    GraphDecay,
    GraphMERT,
    ModelConfig,
    count_parameters,
    span_matches,
    total_loss,
)
from graphmer.relations import NUM_RELATIONS
from tests.tiny import L, R, tiny_config

INPUTS = ("input_ids", "attention_mask", "root_index", "slot", "leaf_relation", "head_end")


def batch_of(tiny, n=4, keep_all=False, epoch=0, masking=None):
    samples = tiny["paths"].samples
    ds = LeafyChains(
        samples / "train.parquet",
        samples / "tails.parquet",
        tiny["vocab"],
        R,
        L,
        masking or SamplesConfig(),
    )
    full = collate([ds.draw(i, epoch) for i in range(n)])
    return compact(full, R, L, keep_all=keep_all)


def test_decay_bias_on_a_two_root_layout_matches_a_hand_computation():
    cfg = ModelConfig(roots=2, leaves=2, heads=2, hidden=8)
    full = {
        "input_ids": torch.zeros(1, 6, dtype=torch.long),
        "labels": torch.zeros(1, 6, dtype=torch.long),
        "attention_mask": torch.ones(1, 6, dtype=torch.bool),
        "leaf_relation": torch.tensor([[0, 1]]),
        "head_end": torch.tensor([[1, 2]]),
        "leaf_tail": torch.tensor([[0, 1]]),
        "leaf_copyable": torch.zeros(1, 2, dtype=torch.bool),
    }
    b = compact(full, 2, 2)
    # order: root0, root1, leaf(0,1), leaf(0,2), leaf(1,1), leaf(1,2)
    sp = [
        [0, 1, 1, 1, 2, 2],
        [1, 0, 2, 2, 1, 1],
        [1, 2, 0, 1, 3, 3],
        [1, 2, 1, 0, 3, 3],
        [2, 1, 3, 3, 0, 1],
        [2, 1, 3, 3, 1, 0],
    ]
    decay = GraphDecay(cfg)
    with torch.no_grad():
        decay.p.copy_(torch.tensor([0.0, 1.5]))
    got = decay(b["root_index"], b["slot"])[0]

    def gelu(x):
        return 0.5 * x * (1 + math.erf(x / math.sqrt(2)))

    for h, p in enumerate((0.0, 1.5)):
        for i in range(6):
            for j in range(6):
                want = gelu(math.sqrt(sp[i][j]) - p) * math.log(0.6)
                assert got[h, i, j].item() == pytest.approx(want, abs=1e-6)
    # it multiplies attention weights by 0.6 ** GELU(sqrt(sp) - p): farther is weaker
    assert got[0, 0, 1] > got[0, 0, 4] > got[0, 2, 4]


def test_hgat_matches_the_formula():
    torch.manual_seed(0)
    cfg = ModelConfig(roots=4, leaves=2, hidden=3, heads=1, max_head_tokens=3)
    hgat = HGAT(cfg)
    x = torch.randn(1, 6, 3)  # roots 0..3, one group of 2 leaves on root 1
    root_index = torch.tensor([[0, 1, 2, 3, 1, 1]])
    rel = torch.tensor([[-1, -1, -1, -1, 5, 5]])
    head_end = torch.tensor([[1, 2, 3, 4, 3, 3]])  # the head is roots 1..2
    out = hgat(x, root_index, rel, head_end)
    W, a = hgat.W[5].detach(), hgat.a[5].detach()
    for leaf in (4, 5):
        t, heads = x[0, leaf], [x[0, 1], x[0, 2]]
        e = torch.stack([F.leaky_relu(a @ torch.cat([W @ t, W @ h]), 0.2) for h in heads])
        alpha = torch.softmax(e, 0)
        want = t + sum(alpha[j] * (W @ heads[j]) for j in range(2))
        assert torch.allclose(out[0, leaf], want, atol=1e-6)
    assert torch.equal(out[0, :4], x[0, :4])  # roots untouched


def test_compact_layout_equals_the_full_layout(tiny):
    torch.manual_seed(0)
    model = GraphMERT(tiny_config(tiny["vocab_size"])).eval()
    small, full = batch_of(tiny), batch_of(tiny, keep_all=True)
    assert small["input_ids"].shape[1] < full["input_ids"].shape[1] == R + R * L
    with torch.no_grad():
        hs, hf = model(*(small[k] for k in INPUTS)), model(*(full[k] for k in INPUTS))
    assert torch.allclose(hs[:, :R], hf[:, :R], atol=1e-5)
    for b, k in zip(*torch.nonzero(small["group_root"] >= 0, as_tuple=True)):
        g = int(small["group_root"][b, k])
        real = small["attention_mask"][b, R + k * L : R + (k + 1) * L]
        assert torch.allclose(
            hs[b, R + k * L : R + (k + 1) * L][real], hf[b, R + g * L : R + (g + 1) * L][real], atol=1e-5
        )


def test_every_graph_part_off_gives_a_plain_encoder(tiny):
    torch.manual_seed(0)
    plain = GraphMERT(
        tiny_config(tiny["vocab_size"], hgat=False, decay_mask=False, relation_bias=False)
    ).eval()
    graph = GraphMERT(tiny_config(tiny["vocab_size"])).eval()
    with torch.no_grad():
        graph.rel_bias.bias.weight.normal_()  # starts at zero
    b = batch_of(tiny)
    assert (b["leaf_relation"] >= 0).any()
    other = dict(
        b,
        leaf_relation=torch.where(b["leaf_relation"] >= 0, (b["leaf_relation"] + 3) % 16, b["leaf_relation"]),
    )
    mask = plain.attention_mask(
        b["attention_mask"], b["root_index"], b["slot"], b["leaf_relation"], torch.float
    )
    assert mask.shape == (4, 1, 1, b["input_ids"].shape[1])  # key padding only
    assert set(mask.unique().tolist()) <= {0.0, float("-inf")}
    with torch.no_grad():
        for model, changes in ((plain, False), (graph, True)):
            h1, h2 = model(*(b[k] for k in INPUTS)), model(*(other[k] for k in INPUTS))
            assert (not torch.allclose(h1, h2, atol=1e-6)) is changes


def test_the_objective_weighs_mnm_by_mu_and_the_regularizer_by_its_weight():
    parts = {
        "mlm_loss": torch.tensor(1.0),
        "mnm_loss": torch.tensor(2.0),
        "constraint_loss": torch.tensor(3.0),
    }
    assert float(total_loss(parts, 0.5, 0.1)) == pytest.approx(1.0 + 0.5 * 2.0 + 0.1 * 3.0)
    assert float(total_loss(parts, 0.0, 0.0)) == 1.0  # warm-up without the regularizer: MLM alone


def test_loss_falls_when_overfitting_one_batch(tiny):
    from graphmer.train import Pretrainer

    torch.manual_seed(0)
    net = Pretrainer(tiny_config(tiny["vocab_size"]))
    b = batch_of(tiny, n=8, masking=SamplesConfig(leaf_mask_prob=0.5))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        out = net(b)
        loss = total_loss(out, 1.0, 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    assert out["mlm_correct"] / out["mlm_count"] > 0.8
    assert out["mnm_count"] > 0 and out["mnm_correct"] / out["mnm_count"] > 0.8


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_build(preset):
    cfg = ModelConfig.from_preset(preset, vocab_size=8000)
    if preset == "base":
        assert (cfg.layers, cfg.hidden, cfg.heads, cfg.ffn) == (12, 768, 12, 3072)
        n = count_parameters(GraphMERT(cfg))
        hgat = 16 * 768 * 768 + 16 * 2 * 768
        assert 85e6 < n - hgat < 95e6  # BERT-base with an 8K vocabulary, plus H-GAT's W_r
    else:
        assert count_parameters(GraphMERT(cfg)) < 10e6


def _copy_model(vocab_size, gate_bias, **overrides):
    torch.manual_seed(0)
    model = GraphMERT(tiny_config(vocab_size, **overrides)).eval()
    with torch.no_grad():
        model.copy.gate.weight.zero_()
        model.copy.gate.bias.fill_(gate_bias)
    return model


def _leaf_positions(batch):
    b, k = torch.nonzero(batch["group_root"] >= 0, as_tuple=True)
    return b, R + k * L  # the first slot of every filled group


def _groups_with_tails(batch):
    """Every filled leaf group's first slot and its tail (the labels where masked), IGNORE-padded."""
    b, first = _leaf_positions(batch)
    slots = first[:, None] + torch.arange(L)
    tails = torch.where(
        batch["labels"][b[:, None], slots] != IGNORE,
        batch["labels"][b[:, None], slots],
        batch["input_ids"][b[:, None], slots],
    )
    return b, first, torch.where(batch["attention_mask"][b[:, None], slots], tails, IGNORE)


def test_a_gate_forced_to_copy_gives_mass_only_to_tails_written_in_the_window(tiny):
    batch = batch_of(tiny, n=8)
    model = _copy_model(tiny["vocab_size"], gate_bias=1e4)
    b, first, targets = _groups_with_tails(batch)
    with torch.no_grad():
        hidden = model(*(batch[k] for k in INPUTS))
        ptr = model.pointer(hidden, batch, b, first)
        logp, _ = model.tail_logprobs(hidden, batch, b, first, targets)
    real = targets != IGNORE
    written = span_matches(batch["input_ids"][b, :R], targets, real.sum(1)) & torch.isfinite(ptr.log_attn)
    can_copy = torch.isfinite(ptr.log_attn).any(1)
    assert written.any(1).sum() > 0 and (~written.any(1) & can_copy).sum() > 0
    assert torch.allclose(ptr.log_attn[can_copy].exp().sum(1), torch.ones(int(can_copy.sum())), atol=1e-4)
    for i in range(len(b)):
        if written[i].any():  # exactly the pointer's mass on the starts that spell it
            assert float(logp[i]) == pytest.approx(
                float(torch.logsumexp(ptr.log_attn[i][written[i]], 0)), abs=1e-4
            )
        elif can_copy[i]:
            assert logp[i] < -1000  # not in the window: nothing left for the vocabulary


def _identity_pointer(cfg: ModelConfig) -> CopyHead:
    head = CopyHead(cfg)
    with torch.no_grad():
        for lin in (head.q, head.k):
            lin.weight.copy_(torch.eye(cfg.hidden))
            lin.bias.zero_()
        head.gate.weight.zero_()
        head.gate.bias.fill_(1e4)
    return head


def test_the_pointer_starts_the_span_at_the_root_it_attends_to():
    """q and k are the identity: a group whose first slot is aligned with one root's state puts
    its start there, unless no tail may start there."""
    cfg = ModelConfig(vocab_size=50, roots=6, leaves=2, hidden=8, heads=2, layers=1, ffn=16)
    head = _identity_pointer(cfg)
    roots = torch.zeros(1, 6, 8)
    roots[0, :, 1] = 1.0
    roots[0, 3] = torch.eye(8)[0]  # root 3 alone points the same way as the query
    query = 40.0 * torch.eye(8)[:1]
    from_head = torch.arange(6)[None, :] - 1  # the group hangs from root 1 ...
    from_end = from_head - 1  # ... a head of one token
    ok = torch.ones(1, 6, dtype=torch.bool)
    ptr = head(query, roots, ok, from_head, from_end, torch.tensor([4]))
    assert int(ptr.log_attn.argmax()) == 3 and ptr.log_attn[0, 3].exp() > 0.99 and ptr.log_gate.exp() > 0.99
    ok[0, 3] = False
    ptr = head(query, roots, ok, from_head, from_end, torch.tensor([4]))
    assert ptr.log_attn[0, 3] == float("-inf") and torch.isclose(ptr.log_attn.exp().sum(), torch.tensor(1.0))
    ptr = head(query, roots, torch.zeros(1, 6, dtype=torch.bool), from_head, from_end, torch.tensor([4]))
    assert ptr.log_gate == float("-inf") and ptr.log_keep == 0  # nothing to copy: the vocabulary


def test_span_matches_finds_every_start_that_spells_the_tail():
    roots = torch.tensor([[4, 5, 9, 4, 5, 4]])
    assert span_matches(roots, torch.tensor([[4, 5, IGNORE]]), torch.tensor([2])).tolist() == [
        [True, False, False, True, False, False]
    ]
    assert span_matches(roots, torch.tensor([[4, IGNORE, IGNORE]]), torch.tensor([1]))[
        0
    ].nonzero().tolist() == [[0], [3], [5]]


def test_the_pointer_learns_where_a_relations_tail_stands():
    """With no content match at all, the per-relation offset bias alone points at the root two
    tokens past the head for relation 4 (a base class after `class Name(`), not for relation 8."""
    cfg = ModelConfig(vocab_size=50, roots=6, leaves=2, hidden=8, heads=2, layers=1, ffn=16)
    head = _identity_pointer(cfg)
    with torch.no_grad():
        head.q.weight.zero_()
        head.end_bias[4, COPY_OFFSETS + 1] = 30.0
    from_head = torch.arange(6)[None, :].expand(2, 6) - 2  # both groups hang from root 2 ...
    from_end = from_head - 1  # ... a head of one token
    ok = torch.ones(2, 6, dtype=torch.bool)
    ptr = head(torch.randn(2, 8), torch.randn(2, 6, 8), ok, from_head, from_end, torch.tensor([4, 8]))
    assert ptr.log_attn[0, 4].exp() > 0.99
    assert ptr.log_attn[1].exp().max() < 0.2  # relation 8 has no preference: spread over the six roots


def test_a_gate_forced_to_the_vocabulary_is_the_plain_softmax(tiny):
    batch = batch_of(tiny)
    model = _copy_model(tiny["vocab_size"], gate_bias=-1e4)
    b, first, targets = _groups_with_tails(batch)
    with torch.no_grad():
        hidden = model(*(batch[k] for k in INPUTS))
        mixed, _ = model.tail_logprobs(hidden, batch, b, first, targets)
        plain = torch.zeros(len(b))
        for s in range(L):
            real = targets[:, s] != IGNORE
            lp = torch.log_softmax(model.logits(hidden[b[real], first[real] + s]), -1)
            plain[real] += lp.gather(1, targets[real, s][:, None])[:, 0]
    assert torch.allclose(mixed, plain, atol=1e-4)


def test_without_the_copy_path_there_is_no_copy_head(tiny):
    model = GraphMERT(tiny_config(tiny["vocab_size"], copy=False))
    assert model.copy is None and not any("copy" in k for k in model.state_dict())


def test_a_tail_may_start_only_at_whole_words_of_the_groups_length(tiny):
    """A group of l slots copies a run of l real roots that is a whole word: never `Base` out of
    `BaseView` for l = 1."""
    batch = batch_of(tiny, n=8)
    model = _copy_model(tiny["vocab_size"], gate_bias=0.0)
    b, first = _leaf_positions(batch)
    with torch.no_grad():
        ptr = model.pointer(model(*(batch[k] for k in INPUTS)), batch, b, first)
    checked = 0
    for i in range(len(b)):
        n = int(batch["attention_mask"][b[i], first[i] : first[i] + L].sum())
        ids, real = batch["input_ids"][b[i], :R], batch["attention_mask"][b[i], :R]
        start, stop = batch["word_start"][b[i]], batch["word_stop"][b[i]]
        allowed = [
            j
            for j in range(R - n + 1)
            if start[j] and stop[j + n - 1] and bool((real[j : j + n] & (ids[j : j + n] >= 5)).all())
        ]
        assert torch.isfinite(ptr.log_attn[i]).nonzero()[:, 0].tolist() == allowed
        checked += bool(allowed) and len(allowed) < int(real.sum())
    assert checked > 0


def test_gradients_stay_finite_when_a_tail_cannot_be_copied(tiny):
    """Masked tails written nowhere in their window (and windows with nothing to copy) give the
    copy path an empty sum: its log is -inf, and its gradient must be zero, not NaN."""
    from graphmer.model import masked_groups
    from graphmer.train import Pretrainer

    torch.manual_seed(0)
    net = Pretrainer(tiny_config(tiny["vocab_size"]))
    batch = batch_of(tiny, n=8, masking=SamplesConfig(leaf_mask_prob=1.0))
    batch["attention_mask"][0, :R] = False  # a window with no code at all
    b, _, targets = masked_groups(batch, R, L)
    ids = batch["input_ids"][b, :R]
    assert (~span_matches(ids, targets, (targets != IGNORE).sum(1)).any(1)).any()
    out = net(batch)
    total_loss(out, 1.0, 0.1).backward()
    assert torch.isfinite(out["mnm_loss"])
    for name, p in net.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


# --------------------------------------------------------------------------- FlexAttention path

GRAPH_PARTS = {  # H-GAT, graph decay and relation bias on and off
    "all": {},
    "none": {"hgat": False, "decay_mask": False, "relation_bias": False},
    "decay-only": {"hgat": False, "relation_bias": False},
    "hgat-relation-bias": {"decay_mask": False},
}


def _sdpa_and_flex(vocab_size, **overrides):
    """Two models with the same weights, one per attention path; p_h and the relation biases random
    (they start at zero, where the relation bias would test nothing)."""
    torch.manual_seed(0)
    sdpa = GraphMERT(tiny_config(vocab_size, attention="sdpa", **overrides)).eval()
    with torch.no_grad():
        if sdpa.decay is not None:
            sdpa.decay.p.normal_()
        if sdpa.rel_bias is not None:
            sdpa.rel_bias.bias.weight[:-1].normal_()  # the padding row stays zero
    flex = GraphMERT(tiny_config(vocab_size, attention="flex", **overrides)).eval()
    flex.load_state_dict(sdpa.state_dict())
    return sdpa, flex


@pytest.mark.parametrize("parts", GRAPH_PARTS)
def test_flex_attention_gives_the_hidden_states_of_sdpa(tiny, parts):
    sdpa, flex = _sdpa_and_flex(tiny["vocab_size"], **GRAPH_PARTS[parts])
    b = batch_of(tiny)
    assert not b["attention_mask"].all() and (b["leaf_relation"] >= 0).any()  # padding, and triples
    with torch.no_grad():  # on the CPU torch's FlexAttention runs forward only unless q, k, v are constant
        hs, hf = sdpa(*(b[k] for k in INPUTS)), flex(*(b[k] for k in INPUTS))
    real = b["attention_mask"]
    assert torch.allclose(hf[real], hs[real], atol=1e-5)
    if parts == "all":  # the bias matters: without it the hidden states differ
        sdpa.decay.p.data.zero_()
        sdpa.rel_bias.bias.weight.data.zero_()
        with torch.no_grad():
            assert not torch.allclose(sdpa(*(b[k] for k in INPUTS))[real], hf[real], atol=1e-3)


@pytest.mark.parametrize("parts", [k for k in GRAPH_PARTS if k != "none"])
def test_flex_attention_gives_the_gradients_of_sdpa_to_the_graph_bias(tiny, parts):
    """Gradients reach p_h and the relation-bias table through tensors the score_mod captures. One
    layer with every other weight frozen: q, k, v then need no gradient, the one case in which
    torch's FlexAttention runs a backward on the CPU (its eager reference; CUDA compiles a kernel)."""
    b = batch_of(tiny)
    real = b["attention_mask"]
    weight = torch.randn(real.shape + (32,), generator=torch.Generator().manual_seed(1))
    grads = []
    for model in _sdpa_and_flex(tiny["vocab_size"], layers=1, **GRAPH_PARTS[parts]):
        for name, p in model.named_parameters():
            p.requires_grad_(name in ("decay.p", "rel_bias.bias.weight"))
        h = model(*(b[k] for k in INPUTS))
        (h * weight)[real].sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    sdpa, flex = grads
    assert sdpa.keys() == flex.keys() and sdpa
    for name in sdpa:
        assert sdpa[name].abs().max() > 1e-3, name  # a gradient that is there to compare
        assert torch.allclose(flex[name], sdpa[name], atol=1e-5), name
    if "rel_bias.bias.weight" in sdpa:
        assert not flex["rel_bias.bias.weight"][-1].any()  # the padding row learns nothing


def test_flex_attention_cannot_train_the_whole_model_on_the_cpu(tiny):
    """torch 2.13 refuses FlexAttention's backward on the CPU once q, k, v need gradients: `flex` is
    for CUDA; should a torch lift this, the gradient test above can cover every weight."""
    _, flex = _sdpa_and_flex(tiny["vocab_size"])
    b = batch_of(tiny)
    with pytest.raises(NotImplementedError, match="backward on CPU"):
        flex(*(b[k] for k in INPUTS))


# --------------------------------------------------------------------------- tail memory


def _memory_model(vocab_size, names, counts, gate_bias, **overrides):
    torch.manual_seed(0)
    model = GraphMERT(tiny_config(vocab_size, memory=True, memory_size=len(names), **overrides)).eval()
    model.memory.fill(names, torch.as_tensor(counts))
    with torch.no_grad():
        model.memory.gate.weight.zero_()
        model.memory.gate.bias.fill_(gate_bias)
    return model


def test_the_memory_starts_at_each_relations_tail_prior_over_names_of_the_groups_length():
    """With no content match (query weights 0), p_mem is the training graph's count of each name
    as the relation's tail, among the names of the group's length; a group no name fits has
    its memory gate shut."""
    counts = torch.zeros(NUM_RELATIONS, 3, dtype=torch.long)
    counts[0] = torch.tensor([3, 1, 0])
    counts[1] = torch.tensor([0, 2, 5])
    model = _memory_model(50, [(5,), (6,), (7, 8)], counts, gate_bias=0.0)
    with torch.no_grad():
        norm = model.memory.query[-1]  # the query's last layer: a LayerNorm
        norm.weight.zero_()
        norm.bias.zero_()
        out = model.memory(
            torch.randn(4, 32), torch.tensor([0, 1, 1, 0]), torch.tensor([1, 1, 2, 2]), model.tok.weight
        )
    p = out.log_p.exp()
    assert p[0].tolist() == pytest.approx([0.75, 0.25, 0.0])
    assert p[1].tolist() == pytest.approx([0.0, 1.0, 0.0])  # relation 1's only tail of length 1
    assert p[2].tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert out.log_gate[3] == float("-inf") and out.log_keep[3] == 0  # relation 0 has no 2-token tail
    targets = torch.tensor([[7, 8, IGNORE], [6, IGNORE, IGNORE], [9, IGNORE, IGNORE], [6, IGNORE, IGNORE]])
    relation = torch.tensor([1, 1, 1, 0])
    assert model.memory.rows_of(targets, relation).tolist() == [2, 1, -1, 1]
    # training: a name counted once for the relation is the target itself (`6` is relation 0's once)
    assert model.memory.rows_of(targets, relation, leave_one_out=True).tolist() == [2, 1, -1, -1]


def test_a_memory_gate_forced_open_gives_a_tail_its_memory_probability(tiny):
    """Copy path off, memory gate ~1: log p(tail) is the memory's log-probability of the target's
    name, and a target the memory does not hold gets (almost) nothing."""
    from graphmer.train import tail_names

    names, counts = tail_names(tiny["paths"].samples, L)
    model = _memory_model(tiny["vocab_size"], names, counts, gate_bias=1e4, copy=False)
    batch = batch_of(tiny, n=8)
    b, first, targets = _groups_with_tails(batch)
    with torch.no_grad():
        hidden = model(*(batch[k] for k in INPUTS))
        mem = model.remember(hidden, batch, b, first)
        logp, guess = model.tail_logprobs(hidden, batch, b, first, targets)
    rows = model.memory.rows_of(targets, batch["leaf_relation"][b, first])
    held = (rows >= 0) & torch.isfinite(mem.log_gate)
    assert held.sum() > 0
    for i in range(len(b)):
        if held[i]:
            assert float(logp[i]) == pytest.approx(float(mem.log_p[i, rows[i]]), abs=1e-4)
            top = model.memory.names[mem.log_p[i].argmax()]
            assert guess[i].tolist() == torch.where(targets[i] != IGNORE, top, IGNORE).tolist()
    # training leaves a name counted once out: its target gets (almost) nothing with the gate open
    relation = batch["leaf_relation"][b, first]
    with torch.no_grad():
        left, _ = model.tail_logprobs(hidden, batch, b, first, targets, leave_one_out=True)
    alone = (rows >= 0) & model.memory.once[relation, rows.clamp(min=0)] & torch.isfinite(mem.log_gate)
    assert alone.sum() > 0 and (left[alone] < -1000).all() and torch.equal(left[~alone], logp[~alone])
    finite = torch.isfinite(mem.log_p[held])
    assert torch.allclose(mem.log_p[held].exp().sum(1), torch.ones(int(held.sum())), atol=1e-4)
    # only names of the group's relation compete
    relation = batch["leaf_relation"][b, first][held]
    assert not (finite & ~model.memory.member[relation]).any()


def test_without_the_memory_there_is_no_memory_table(tiny):
    model = GraphMERT(tiny_config(tiny["vocab_size"], memory=False, memory_size=7))
    assert model.memory is None and not any("memory" in k for k in model.state_dict())
