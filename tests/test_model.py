"""The GraphMERT encoder's parts against their formulas, and the layout equivalence."""

import math

import pytest
import torch
import torch.nn.functional as F

from graphmer.data import LeafyChains, collate, compact
from graphmer.model import HGAT, PRESETS, GraphDecay, GraphMERT, ModelConfig, count_parameters
from tests.tiny import L, R, build_tiny, tiny_config

INPUTS = ("input_ids", "attention_mask", "root_index", "slot", "leaf_relation", "head_end")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("tiny"))


def batch_of(tiny, n=4, keep_all=False, epoch=0):
    root = tiny["root"]
    ds = LeafyChains(root / "samples/train.parquet", root / "samples/tails.parquet", tiny["vocab"], R, L)
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


def test_loss_falls_when_overfitting_one_batch(tiny):
    from graphmer.train import Pretrainer

    torch.manual_seed(0)
    net = Pretrainer(tiny_config(tiny["vocab_size"]))
    b = batch_of(tiny, n=8)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        out = net(b)
        loss = out["mlm_loss"] + out["mnm_loss"] + 0.1 * out["constraint_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    assert out["mlm_correct"] / out["mlm_count"] > 0.8


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
