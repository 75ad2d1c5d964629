"""GraphMERT encoder for code (arXiv 2510.09580), read top to bottom.

Design choices:
- Input: R root tokens (code), then leaf groups of L slots. Batches come in the
  compact layout of `loader.compact` (empty groups dropped); every position carries
  its coordinates (root_index, slot), from which graph distances are computed in
  closed form, so results equal those of the fixed R + R*L layout at a fraction
  of the cost. Token + position (a leaf takes its root's) + slot embeddings:
  with every graph part switched off this is a plain BERT-style encoder.
- H-GAT (`hgat`): a leaf token t_i of a triple (relation r, head tokens h_j) becomes
  t_i + sum_j alpha_ij W_r h_j, alpha = softmax_j LeakyReLU(a_r^T [W_r t_i || W_r h_j]).
- Graph decay (`decay_mask`): attention weights are multiplied by
  f(sp) = lambda^GELU(sqrt(sp) - p_h) (lambda = 0.6, p_h learnable per head), as the
  additive log-bias GELU(sqrt(sp) - p_h) * ln(lambda), where sp is the shortest
  path in the leafy chain: |i-j| between roots, +1 per leaf end, min(|a-b|, 2)
  inside one leaf group.
- Relation bias (`relation_bias`): a learned per-relation, per-head bias on the
  edges between an anchor root and the leaves of its injected triple, both ways.
- Attention (`attention`): `sdpa`, F.scaled_dot_product_attention with the summed bias and
  key-padding mask as one float attn_mask (B, H, N, N), shared by all layers; or `flex`,
  FlexAttention with a score_mod that computes the same bias per (query, key) from the
  positions' coordinates and a block mask of the padded keys: compiled (on CUDA), no
  (B, H, N, N) tensor is built. One elementwise formula of each bias serves both.
- One MLM head, tied to the token embedding, predicts masked roots and leaves.
- Copy path (`copy`): a leaf group may also copy its whole tail from the window's roots
  (pointer-generator, See et al., ACL 2017, at the level of a tail): attention from the
  group's first slot over the roots picks where the tail starts, and a learned gate mixes
  that span with the vocabulary's tokens. Most tails of code relations (bases,
  annotations, decorators, callees) are written in the code next to their head, and the
  tokenizer gives a name the same ids in the code and in the leaves, so copying is a
  lookup the model can learn in few steps.
- Tail memory (`memory`): a leaf group may also name its tail as a whole, from the tail
  names of the training graph (a classifier over them, as KG-completion encoders score
  entities): the group's first slot is matched against each name's mean token embedding
  (tied to the input embedding, so names that share pieces share evidence), plus a learned
  bias per relation and name, initialized to the log of its count as that relation's tail
  in the training graph (an output layer initialized to the class prior). Only names of the
  group's relation and length compete. A second gate mixes it with the vocabulary's
  tokens, so a tail that is neither in the window nor spelled out token by token well (a
  caught `ValidationError`, a raised `Http404`) is one decision, as for copying.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from graphmer import GraphmerError, atomic, one_line
from graphmer.config import ModelConfig
from graphmer.loader import IGNORE
from graphmer.relations import NUM_RELATIONS
from graphmer.tokenizer import PAD, SPECIAL_TOKENS

# A trained model's folder (`save_pretrained`, Hugging Face's layout): its settings and weights.
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
MAX_CONFIG_BYTES = 2**20  # a config.json is a few hundred bytes; anything near this is not one
COPY_OFFSETS = 32  # the copy pointer's position bias tells offsets -32..32 from the head apart
# GraphMERT.forward's arguments, by their names in a (compact) batch of graphmer.loader.
MODEL_INPUTS = ("input_ids", "attention_mask", "root_index", "slot", "leaf_relation", "head_end")
# What the copy path reads besides: where the roots' words start and stop (graphmer.loader.word_bounds).
COPY_INPUTS = ("word_start", "word_stop")


# --------------------------------------------------------------------------- the leafy-chain graph


# The bias of a query q and a key k is a function of their coordinates (root_index, slot) and, for
# the relation bias, of their triples' biases: written once, elementwise, it serves the dense
# (B, H, N, N) mask of SDPA (called on broadcast pairs) and FlexAttention's score_mod (called per
# entry), so the two attention paths cannot disagree.


def leafy_chain_distance(
    root_q: torch.Tensor, slot_q: torch.Tensor, root_k: torch.Tensor, slot_k: torch.Tensor
) -> torch.Tensor:
    """Shortest path between positions q and k given their coordinates, elementwise. The leafy
    chain's roots form a chain, and each leaf is joined to its root and to the leaves beside it in
    its group; so roots i and j are |i-j| apart, each leaf end adds its edge to its root, and two
    leaves of one group are |a-b| apart or 2 through their root, whichever is shorter
    (slot 0 is a root, 1..L a leaf slot)."""
    leaf_q, leaf_k = (slot_q > 0).long(), (slot_k > 0).long()
    d = (root_q - root_k).abs() + leaf_q + leaf_k
    same_group = (leaf_q & leaf_k).bool() & (root_q == root_k)
    within = (slot_q - slot_k).abs().clamp(max=2)
    return torch.where(same_group, within, d)


def anchors(
    root_q: torch.Tensor, slot_q: torch.Tensor, root_k: torch.Tensor, slot_k: torch.Tensor
) -> torch.Tensor:
    """Elementwise: is q the root that leaf k hangs from?"""
    return (slot_q == 0) & (slot_k > 0) & (root_q == root_k)


def pairs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (..., N) as the query side (..., N, 1) and the key side (..., 1, N) of every pair."""
    return x[..., :, None], x[..., None, :]


class GraphDecay(nn.Module):
    """log f(sp) = GELU(sqrt(sp) - p_h) * ln(lambda), per head: (B, H, N, N)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(cfg.heads))
        self.log_lambda = math.log(cfg.decay_lambda)

    def log_f(self, sp: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Elementwise: the log-bias of shortest paths sp in heads of offsets p."""
        return F.gelu(sp.float().sqrt() - p) * self.log_lambda

    def forward(self, root_index: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        (root_q, root_k), (slot_q, slot_k) = pairs(root_index), pairs(slot)
        sp = leafy_chain_distance(root_q, slot_q, root_k, slot_k)  # (B, N, N)
        return self.log_f(sp[:, None], self.p[None, :, None, None])


class RelationBias(nn.Module):
    """A per-relation, per-head bias on anchor-root <-> leaf edges of each injected triple."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.bias = nn.Embedding(NUM_RELATIONS + 1, cfg.heads, padding_idx=NUM_RELATIONS)
        nn.init.zeros_(self.bias.weight)

    def values(self, leaf_relation: torch.Tensor) -> torch.Tensor:
        """(B, H, N): the bias of each leaf's triple (the padding row's zero for roots)."""
        rel = torch.where(leaf_relation >= 0, leaf_relation, NUM_RELATIONS)
        return self.bias(rel).permute(0, 2, 1)

    @staticmethod
    def score(
        root_q: torch.Tensor,
        slot_q: torch.Tensor,
        v_q: torch.Tensor,
        root_k: torch.Tensor,
        slot_k: torch.Tensor,
        v_k: torch.Tensor,
    ) -> torch.Tensor:
        """Elementwise: leaf k's bias v_k from its anchor root q, leaf q's bias v_q to its anchor k."""
        forth, back = anchors(root_q, slot_q, root_k, slot_k), anchors(root_k, slot_k, root_q, slot_q)
        return forth.to(v_k.dtype) * v_k + back.to(v_q.dtype) * v_q

    def forward(
        self, root_index: torch.Tensor, slot: torch.Tensor, leaf_relation: torch.Tensor
    ) -> torch.Tensor:
        (root_q, root_k), (slot_q, slot_k) = pairs(root_index[:, None]), pairs(slot[:, None])
        v_q, v_k = pairs(self.values(leaf_relation))
        return self.score(root_q, slot_q, v_q, root_k, slot_k, v_k)  # (B, H, N, N)


# --------------------------------------------------------------------------- H-GAT


class HGAT(nn.Module):
    """Relation-aware leaf embedding: t_i' = t_i + sum_j alpha_ij W_r h_j."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden
        self.W = nn.Parameter(torch.randn(NUM_RELATIONS, d, d) / math.sqrt(d))
        self.a = nn.Parameter(torch.randn(NUM_RELATIONS, 2 * d) / math.sqrt(2 * d))
        self.R, self.max_head = cfg.roots, cfg.max_head_tokens

    def forward(
        self, x: torch.Tensor, root_index: torch.Tensor, leaf_relation: torch.Tensor, head_end: torch.Tensor
    ) -> torch.Tensor:
        b, j = torch.nonzero(leaf_relation >= 0, as_tuple=True)  # leaf positions of injected triples
        if len(b) == 0:
            return x
        g = root_index[b, j]
        pos = g[:, None] + torch.arange(self.max_head, device=x.device)[None, :]  # (T, Hmax) head roots
        valid = pos < head_end[b, j][:, None]
        heads = x[b[:, None], pos.clamp(max=self.R - 1)]  # roots sit at positions 0..R-1
        leaf, rel = x[b, j], leaf_relation[b, j]
        out = torch.empty_like(leaf)
        for r in rel.unique().tolist():
            sel = rel == r
            out[sel] = self.attend(leaf[sel], heads[sel], valid[sel], r)
        x = x.clone()
        x[b, j] = out
        return x

    def attend(self, t: torch.Tensor, h: torch.Tensor, valid: torch.Tensor, r: int) -> torch.Tensor:
        """t (T, d) leaf tokens, h (T, Hmax, d) their head tokens, all of relation r."""
        d = t.shape[-1]
        wt, wh = t @ self.W[r].T, h @ self.W[r].T
        e = F.leaky_relu((wt @ self.a[r, :d])[:, None] + wh @ self.a[r, d:], 0.2)  # (T, Hmax)
        alpha = torch.softmax(e.masked_fill(~valid, float("-inf")), dim=-1)
        return t + (alpha[:, :, None] * wh).sum(1)


# --------------------------------------------------------------------------- copy path


class CopyHead(nn.Module):
    """A span pointer over the roots, one per leaf group (pointer-generator at the level of a
    whole tail): p(tail) = (1 - g) prod_s p_vocab,s(t_s) + g * sum_{j: roots j.. spell the tail} a_j.

    The group's first slot attends over the roots where its tail may start (a whole word of
    the group's length: not `Base` out of `BaseView`) and sets the gate g. A tail of several
    tokens is copied with one decision, as the copy rule does, so a long copied name costs no
    more than a short one. The pointer's score of start j adds to the content match q . k_j a
    learned bias per relation and signed offset of j from the head's first root and from the
    root just past the head (each clipped to +-`COPY_OFFSETS`): where a tail stands relative to
    its head (the base class after `class Name(`, the annotation after the parameter) is what
    the copy rule knows, and the pointer learns it per relation without spending attention on it."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.q, self.k = nn.Linear(cfg.hidden, cfg.hidden), nn.Linear(cfg.hidden, cfg.hidden)
        self.gate = nn.Linear(cfg.hidden, 1)
        self.start_bias = nn.Parameter(torch.zeros(NUM_RELATIONS + 1, 2 * COPY_OFFSETS + 1))
        self.end_bias = nn.Parameter(torch.zeros(NUM_RELATIONS + 1, 2 * COPY_OFFSETS + 1))

    def forward(
        self,
        query: torch.Tensor,
        roots: torch.Tensor,
        start_ok: torch.Tensor,
        from_head: torch.Tensor,
        from_end: torch.Tensor,
        relation: torch.Tensor,
    ) -> Pointer:
        """query (G, d) the state of each group's first slot; roots (G, R, d) the root states of its
        window; start_ok (G, R) where its tail may start; from_head, from_end (G, R) each root's
        index minus the head's first root and minus the root just past the head; relation (G,)."""
        scores = torch.einsum("gd,grd->gr", self.q(query), self.k(roots)) / math.sqrt(query.shape[-1])
        rel = torch.where(relation >= 0, relation, NUM_RELATIONS)[:, None]
        where = self.start_bias[rel, _bucket(from_head)] + self.end_bias[rel, _bucket(from_end)]
        scores = scores.float() + where
        return Pointer(*gated_softmax(scores, start_ok, self.gate(query).float()[:, 0]))


def gated_softmax(
    scores: torch.Tensor, ok: torch.Tensor, gate: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A path's choice among the entries `ok` of each row (G, K) and the gate that mixes it in:
    log g, log (1 - g) (G,) and log softmax over the ok entries (-inf elsewhere). A row with no ok
    entry has its gate shut (g = 0): nothing to copy, no name that fits."""
    # -inf only where a row keeps a finite score: an all -inf row has NaN gradients
    scores = scores.masked_fill(~ok & ok.any(1, keepdim=True), float("-inf"))
    log_p = torch.log_softmax(scores, dim=-1).masked_fill(~ok, float("-inf"))
    gate = gate.masked_fill(~ok.any(1), float("-inf"))
    return F.logsigmoid(gate), F.logsigmoid(-gate), log_p


@dataclass
class Pointer:
    """Per leaf group: log g, log (1 - g), and log a_j over the roots (-inf where no tail starts)."""

    log_gate: torch.Tensor  # (G,)
    log_keep: torch.Tensor  # (G,)
    log_attn: torch.Tensor  # (G, R)


def span_matches(root_ids: torch.Tensor, targets: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """(G, R): do roots j .. j+l-1 spell the target (targets (G, L), first `length` tokens)?"""
    R, L = root_ids.shape[1], targets.shape[1]
    at = (torch.arange(R, device=root_ids.device)[:, None] + torch.arange(L, device=root_ids.device)).clamp(
        max=R - 1
    )
    same = root_ids[:, at] == targets[:, None, :]  # (G, R, L)
    beyond = torch.arange(L, device=root_ids.device)[None, :] >= length[:, None]
    return (same | beyond[:, None, :]).all(-1)


def _bucket(offset: torch.Tensor) -> torch.Tensor:
    return offset.clamp(-COPY_OFFSETS, COPY_OFFSETS) + COPY_OFFSETS


# --------------------------------------------------------------------------- tail memory


class TailMemory(nn.Module):
    """A classifier over the training graph's tail names, one per leaf group:
    p_mem(n | group) = softmax over the names n of the group's relation and length of
    (W q) . e_n / sqrt(d) + b[r, n], e_n the mean token embedding of n (tied), b[r, n] initialized
    to log count(r, n) in the training graph. Its gate h mixes it into the generator:
    p_gen(tail) = (1 - h) prod_s p_vocab,s(t_s) + h p_mem(tail)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        n = cfg.memory_size
        self.register_buffer("names", torch.full((n, cfg.leaves), PAD, dtype=torch.long))
        self.register_buffer("member", torch.zeros(NUM_RELATIONS, n, dtype=torch.bool))
        # names counted once: in training that one triple is the target itself (not saved)
        self.register_buffer("once", torch.zeros(NUM_RELATIONS, n, dtype=torch.bool), persistent=False)
        # shaped like the MLM head, so the content term starts at the scale of the vocabulary's logits
        self.query = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(), nn.LayerNorm(cfg.hidden))
        self.gate = nn.Linear(cfg.hidden, 1)
        self.bias = nn.Parameter(torch.zeros(NUM_RELATIONS, n))
        self._rows: dict[tuple[int, ...], int] | None = None

    @torch.no_grad()
    def fill(self, names: list[tuple[int, ...]], counts: torch.Tensor) -> None:
        """The names (leaf ids, each at most L) and their counts (NUM_RELATIONS, N) as each
        relation's tail in the training graph; a name counted 0 for r is no answer of r."""
        if counts.shape != self.member.shape or len(names) != len(self.names):
            raise GraphmerError(f"a memory of {len(self.names)} names cannot hold {len(names)}")
        self.names.fill_(PAD)
        for i, ids in enumerate(names):
            self.names[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        self.member.copy_(counts > 0)
        self.once.copy_(counts == 1)
        self.bias.copy_(torch.where(counts > 0, counts.float().clamp(min=1).log(), 0.0))
        self._rows = None

    def rows(self) -> dict[tuple[int, ...], int]:
        """Leaf ids -> memory row (built once)."""
        if self._rows is None:
            ids = self.names.tolist()
            self._rows = {tuple(x for x in row if x != PAD): i for i, row in enumerate(ids)}
        return self._rows

    def rows_of(
        self, targets: torch.Tensor, relation: torch.Tensor, leave_one_out: bool = False
    ) -> torch.Tensor:
        """(G,) the memory row of each target tail (G, L), `IGNORE` after it; -1 if none. With
        `leave_one_out` (training, where the target is a training-graph triple), a name the
        training graph has once as the relation's tail counts as not held: that once is the
        target itself, and a held-out question's tail is missing from the memory as often."""
        rows = self.rows()
        found = [rows.get(tuple(x for x in t if x != IGNORE), -1) for t in targets.tolist()]
        found = torch.as_tensor(found, dtype=torch.long, device=targets.device)
        if leave_one_out:
            alone = self.once[relation.clamp(min=0), found.clamp(min=0)]
            found = torch.where(alone, -1, found)
        return found

    def forward(
        self, query: torch.Tensor, relation: torch.Tensor, length: torch.Tensor, embedding: torch.Tensor
    ) -> Remembered:
        """query (G, d) each group's first slot; relation, length (G,); embedding the token table."""
        names = F.embedding_bag(self.names, embedding, mode="mean", padding_idx=PAD)  # (N, d)
        scores = self.query(query).float() @ names.float().T
        rel = relation.clamp(min=0)
        fits = (self.names != PAD).sum(1)[None, :] == length[:, None]
        ok = self.member[rel] & fits & (relation >= 0)[:, None]
        return Remembered(*gated_softmax(scores + self.bias[rel], ok, self.gate(query).float()[:, 0]))


@dataclass
class Remembered:
    """Per leaf group: log h, log (1 - h), and log p_mem over the memory's names (-inf where none)."""

    log_gate: torch.Tensor  # (G,)
    log_keep: torch.Tensor  # (G,)
    log_p: torch.Tensor  # (G, N)


def mix(tokens, remembered, copied, mem_gate, mem_keep, copy_gate, copy_keep) -> torch.Tensor:
    """log p(tail) from its three paths' log-probabilities (any broadcastable shapes):
    (1 - g) [(1 - h) prod p_vocab + h p_mem] + g p_copy. A path that is off has gate log 0 = -inf."""
    gen = torch.logaddexp(mem_keep + tokens, mem_gate + remembered)
    return torch.logaddexp(copy_keep + gen, copy_gate + copied)


# --------------------------------------------------------------------------- transformer


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | FlexBias) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        # No dropout on attention weights: on CPU it cost a fifth of the step (bernoulli over
        # B*H*N*N); dropout stays on the embeddings and residual branches.
        if isinstance(mask, FlexBias):
            y = _flex(q.device)(q, k, v, score_mod=mask.score_mod, block_mask=mask.block_mask)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(B, N, D))


@dataclass
class FlexBias:
    """The attention bias as FlexAttention takes it, shared by all layers: score_mod(score, b, h, q, k)
    adds the graph bias of one entry (None: none), block_mask leaves out the padded keys."""

    score_mod: Callable | None
    block_mask: BlockMask


def _flex(device: torch.device) -> Callable:
    """flex_attention, compiled on CUDA: eager, it computes every score densely (B, H, N, N), which
    on the CPU (where torch has no fused kernel for training) is the reference the tests use."""
    return _compiled_flex() if device.type == "cuda" else flex_attention


@functools.cache
def _compiled_flex() -> Callable:
    return torch.compile(flex_attention)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.hidden), nn.LayerNorm(cfg.hidden)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.hidden, cfg.ffn), nn.GELU(), nn.Linear(cfg.ffn, cfg.hidden))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | FlexBias) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), mask))
        return x + self.drop(self.mlp(self.ln2(x)))


class GraphMERT(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="graphmer",
    tags=["code", "knowledge-graph", "graphmert"],
    license="apache-2.0",
    paper_url="https://arxiv.org/abs/2510.09580",
):
    """The encoder. `GraphMERT.from_pretrained("models")` loads a trained one (a folder, or a Hub
    repository with the same two files), `save_pretrained(dir)` writes one."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.tok = nn.Embedding(cfg.vocab_size, d)
        self.pos = nn.Embedding(cfg.roots, d)  # a leaf takes the position of its root
        self.slot = nn.Embedding(cfg.leaves + 1, d)  # 0: a root, 1..L: leaf slot
        self.hgat = HGAT(cfg) if cfg.hgat else None
        self.decay = GraphDecay(cfg) if cfg.decay_mask else None
        self.rel_bias = RelationBias(cfg) if cfg.relation_bias else None
        self.copy = CopyHead(cfg) if cfg.copy else None
        self.memory = TailMemory(cfg) if cfg.memory and cfg.memory_size else None
        self.emb_ln, self.drop = nn.LayerNorm(d), nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(d)
        self.mlm = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d))
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, RelationBias):
            nn.init.zeros_(m.bias.weight)

    def attention_mask(
        self,
        attention_mask: torch.Tensor,
        root_index: torch.Tensor,
        slot: torch.Tensor,
        leaf_relation: torch.Tensor,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """One float mask (B, H or 1, N, N): graph decay + relation bias + -inf on padded keys."""
        B, N = attention_mask.shape
        mask = torch.zeros(B, 1, 1, N, device=attention_mask.device)
        mask = mask.masked_fill(~attention_mask[:, None, None, :], float("-inf"))
        if self.decay is not None:
            mask = mask + self.decay(root_index, slot)
        if self.rel_bias is not None:
            mask = mask + self.rel_bias(root_index, slot, leaf_relation)
        return mask.to(dtype)

    def flex_bias(
        self,
        attention_mask: torch.Tensor,
        root_index: torch.Tensor,
        slot: torch.Tensor,
        leaf_relation: torch.Tensor,
    ) -> FlexBias:
        """The bias of `attention_mask` for FlexAttention: the score_mod reads each entry's coordinates
        from the (B, N) tensors it captures (and the relation biases from (B, H, N)), so gradients
        reach p_h and the relation-bias table through FlexAttention's backward, which returns
        gradients of captured tensors; the relation-bias table is read through its Embedding (not
        indexed in the score_mod) so that its padding row gets none, as in the dense path."""
        B, N = attention_mask.shape
        decay = self.decay
        v = self.rel_bias.values(leaf_relation) if self.rel_bias is not None else None

        def graph_bias(score, b, h, q, k):
            root_q, slot_q, root_k, slot_k = root_index[b, q], slot[b, q], root_index[b, k], slot[b, k]
            bias = 0  # summed as in attention_mask: 0 + decay + relation bias
            if decay is not None:
                bias = bias + decay.log_f(leafy_chain_distance(root_q, slot_q, root_k, slot_k), decay.p[h])
            if v is not None:
                bias = bias + RelationBias.score(root_q, slot_q, v[b, h, q], root_k, slot_k, v[b, h, k])
            return score + bias

        def real_key(b, h, q, k):
            return attention_mask[b, k]

        block_mask = create_block_mask(real_key, B, None, N, N, device=attention_mask.device)
        graph = decay is not None or v is not None
        return FlexBias(graph_bias if graph else None, block_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        root_index: torch.Tensor,
        slot: torch.Tensor,
        leaf_relation: torch.Tensor,
        head_end: torch.Tensor,
    ) -> torch.Tensor:
        """Final hidden states (B, N, hidden) of a (compact) leafy-chain batch, see loader.compact."""
        x = self.tok(input_ids)
        if self.hgat is not None:
            x = self.hgat(x, root_index, leaf_relation, head_end)
        x = self.drop(self.emb_ln(x + self.pos(root_index) + self.slot(slot)))
        if self.cfg.attention == "flex":
            mask = self.flex_bias(attention_mask, root_index, slot, leaf_relation)
        else:
            mask = self.attention_mask(attention_mask, root_index, slot, leaf_relation, x.dtype)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states (B, n, hidden) of code alone, n <= cfg.roots tokens, no leaf groups (the graph
        is what training and tail completion add; reading code needs none):
        `model.encode(**tokenizer(code, return_tensors="pt"))` with `AutoTokenizer.from_pretrained`."""
        B, n = input_ids.shape
        if n > self.cfg.roots:
            raise GraphmerError(f"{n} tokens: the model reads at most {self.cfg.roots} at a time")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        pos = torch.arange(n, device=input_ids.device).expand(B, n)
        no_leaf = torch.full_like(pos, -1)
        return self(input_ids, attention_mask.bool(), pos, torch.zeros_like(pos), no_leaf, pos + 1)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Token logits through the MLM head tied to the token embedding."""
        return self.mlm(hidden) @ self.tok.weight.T + self.mlm_bias

    def vocab_logprobs(self, hidden: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """log p (P, V) of the vocabulary head at positions (b, p)."""
        return torch.log_softmax(self.logits(hidden[b, p]).float(), dim=-1)

    def pointer(
        self, hidden: torch.Tensor, batch: dict, b: torch.Tensor, first: torch.Tensor
    ) -> Pointer | None:
        """The copy path's pointer of the leaf groups whose first slots are at (b, first) of a
        compact batch (None without the copy path). A tail may start at root j when roots
        j .. j+l-1 (l the group's length) are real code tokens and, where the batch says where
        words start and stop (`word_start`, `word_stop`), a whole word."""
        if self.copy is None:
            return None
        R = self.cfg.roots
        at = torch.arange(R, device=hidden.device)[None, :]
        length = self.group_length(batch, b, first)
        root_ids = batch["input_ids"][b, :R]
        bad = (~(batch["attention_mask"][b, :R] & (root_ids >= len(SPECIAL_TOKENS)))).long()  # never [MASK]
        bad = F.pad(bad.cumsum(1), (1, 0))  # bad[:, j] = bad roots before j
        last = at + length[:, None] - 1
        start_ok = (last < R) & (bad.gather(1, (last + 1).clamp(max=R)) == bad[:, :R])
        if "word_start" in batch:
            start_ok &= batch["word_start"][b] & batch["word_stop"][b].gather(1, last.clamp(max=R - 1))
        return self.copy(
            hidden[b, first],
            hidden[b, :R],
            start_ok,
            at - batch["root_index"][b, first][:, None],
            at - batch["head_end"][b, first][:, None],
            batch["leaf_relation"][b, first],
        )

    def group_length(self, batch: dict, b: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """(G,) slots in use of the leaf groups whose first slots are at (b, first)."""
        slots = first[:, None] + torch.arange(self.cfg.leaves, device=b.device)
        return batch["attention_mask"][b[:, None], slots].sum(1)

    def remember(
        self, hidden: torch.Tensor, batch: dict, b: torch.Tensor, first: torch.Tensor
    ) -> Remembered | None:
        """The tail memory's output for the leaf groups at (b, first) (None without the memory)."""
        if self.memory is None:
            return None
        relation = batch["leaf_relation"][b, first]
        return self.memory(hidden[b, first], relation, self.group_length(batch, b, first), self.tok.weight)

    def tail_logprobs(
        self,
        hidden: torch.Tensor,
        batch: dict,
        b: torch.Tensor,
        first: torch.Tensor,
        targets: torch.Tensor,
        leave_one_out: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For leaf groups at (b, first) with target tails (G, L) (`IGNORE` after each tail): log p of
        each whole tail (G,), the vocabulary, memory and copy paths mixed (`mix`), and the greedy
        guess (G, L): the likeliest of each path's best answer. `leave_one_out`: see
        `TailMemory.rows_of`."""
        L = self.cfg.leaves
        real = targets != IGNORE
        pos = first[:, None] + torch.arange(L, device=b.device)
        vocab = self.vocab_logprobs(hidden, b[:, None].expand(-1, L)[real], pos[real])
        tokens = torch.zeros(real.shape, device=hidden.device)
        tokens[real] = vocab.gather(1, targets[real][:, None])[:, 0]
        best = torch.zeros(real.shape, device=hidden.device)
        guess = torch.full(real.shape, IGNORE, dtype=torch.long, device=b.device)
        best[real], guess[real] = vocab.max(-1)
        none = torch.full((len(b),), float("-inf"), device=hidden.device)
        zero = torch.zeros_like(none)
        # each path's log p of the target, its gate and its own best guess (score, tokens)
        remembered, mem_gate, mem_keep = none, none, zero
        choices = [(best.sum(1), guess)]
        mem = self.remember(hidden, batch, b, first)
        if mem is not None:
            rows = self.memory.rows_of(targets, batch["leaf_relation"][b, first], leave_one_out)
            remembered = torch.where(rows >= 0, mem.log_p.gather(1, rows.clamp(min=0)[:, None])[:, 0], none)
            mem_gate, mem_keep = mem.log_gate, mem.log_keep
            top, n = mem.log_p.max(-1)
            named = torch.where(real, self.memory.names[n], IGNORE)
            choices = [(mem_keep + best.sum(1), guess), (mem_gate + top, named)]
        copied, copy_gate, copy_keep = none, none, zero
        ptr = self.pointer(hidden, batch, b, first)
        if ptr is not None:
            root_ids = batch["input_ids"][b, : self.cfg.roots]
            match = span_matches(root_ids, targets, real.sum(1)) & torch.isfinite(ptr.log_attn)
            copied = none.clone()
            some = match.any(1)  # logsumexp of an all -inf row has NaN gradients
            at_match = ptr.log_attn[some].masked_fill(~match[some], float("-inf"))
            copied[some] = torch.logsumexp(at_match, dim=-1)
            copy_gate, copy_keep = ptr.log_gate, ptr.log_keep
            top, j = ptr.log_attn.max(-1)
            span = root_ids.gather(
                1, (j[:, None] + torch.arange(L, device=b.device)).clamp(max=self.cfg.roots - 1)
            )
            choices = [(copy_keep + score, g) for score, g in choices] + [(copy_gate + top, span)]
        logp = mix(tokens.sum(1), remembered, copied, mem_gate, mem_keep, copy_gate, copy_keep)
        scores = torch.stack([score for score, _ in choices])  # (paths, G)
        pick = scores.argmax(0)
        guesses = torch.stack([g for _, g in choices])  # (paths, G, L)
        guess = guesses.gather(0, pick[None, :, None].expand(1, *guess.shape))[0]
        return logp, torch.where(real, guess, IGNORE)

    # ----------------------------------------------------------------------- saved models

    def _save_pretrained(self, save_directory: Path) -> None:
        """config.json (the settings, tagged `"architecture": "GraphMERT"`) and model.safetensors,
        each written whole or not at all. (The Hub mixin's `save_pretrained` calls this.)"""
        from safetensors.torch import save as save_safetensors

        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        # As bytes, written by us: safetensors' own file writer does not report a full disk.
        weights = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        atomic.write_bytes(folder / WEIGHTS_FILE, save_safetensors(weights, metadata={"format": "pt"}))
        atomic.write_json(folder / CONFIG_FILE, self.cfg.to_dict() | {"architecture": "GraphMERT"})

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, map_location: str = "cpu", **hub) -> GraphMERT:
        """A trained model from a folder (`models/`) or a Hub repository id. (The mixin's own version
        would fetch and parse config.json before we could check it.)"""
        return cls._from_pretrained(
            model_id=str(pretrained_model_name_or_path), map_location=map_location, **hub
        )

    @classmethod
    def _from_pretrained(cls, *, model_id: str, map_location: str = "cpu", **hub) -> GraphMERT:
        """A folder, or a Hub repository id (`hub`: revision, cache_dir, token... as in
        `huggingface_hub.hf_hub_download`). Every mismatch is a one-line GraphmerError found before
        the model is built (a hostile `"layers": 200000` must not allocate); the weights load
        strictly, in eval mode."""
        folder = Path(model_id)
        if folder.is_dir() or not _looks_like_hub_id(model_id):
            config_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
            for path in (config_path, weights):
                if not path.is_file():
                    raise GraphmerError(f"{path} not found: train a model first (`dvc repro train`)")
        else:
            config_path, weights = (
                Path(_hub_file(model_id, name, hub)) for name in (CONFIG_FILE, WEIGHTS_FILE)
            )
        cfg = read_model_config(config_path)
        check_weights(weights, cfg, config_path)
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(weights), device=str(map_location))
        except (SafetensorError, OSError) as err:
            raise GraphmerError(f"{weights} is not a readable safetensors file: {one_line(err)}") from err
        with torch.device("meta"):  # no random initialization to throw away: the weights are assigned
            model = cls(cfg)
        model.load_state_dict(state, assign=True)  # strict: every tensor, no stray one
        return model.eval()


def _looks_like_hub_id(name: str) -> bool:
    """`owner/name` of letters, digits and `-_.`: anything else (`models`, `./models`, an absolute
    path) is a local folder, and a missing one is said at once, not after retries on the network."""
    hub_like = re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", name) is not None
    return hub_like and not Path(name).exists()


def _hub_file(repo_id: str, name: str, hub: dict) -> str:
    from huggingface_hub import hf_hub_download

    keys = ("revision", "cache_dir", "force_download", "token", "local_files_only")
    try:
        return hf_hub_download(repo_id=repo_id, filename=name, **{k: hub[k] for k in keys if k in hub})
    except Exception as err:  # no network, no such repository or file, an invalid id
        raise GraphmerError(f"{repo_id}: not a model folder, and not on the Hub ({one_line(err)})") from err


def read_model_config(path: Path) -> ModelConfig:
    """A model's config.json, its values checked by the rules of params.yaml's model section."""
    from graphmer.config import model_config

    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise GraphmerError(f"{path} is {path.stat().st_size} bytes: not a model config")
    try:
        raw = json.loads(path.read_text())
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise GraphmerError(f"{path} is not valid JSON: {one_line(err)}") from err
    if not isinstance(raw, dict) or raw.get("architecture") != "GraphMERT":
        raise GraphmerError(f"{path} is not a GraphMERT config")
    return model_config({k: v for k, v in raw.items() if k != "architecture"}, str(path))


def check_weights(weights: Path, cfg: ModelConfig, config_path: Path) -> None:
    """Refuse weights whose tensor names or shapes differ from what `cfg` builds. Only the
    safetensors header is read, and the model is built on the meta device (shapes, no storage), so
    nothing the size of a model is allocated before the two are known to agree."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is no mapping)
    except (SafetensorError, OSError) as err:
        raise GraphmerError(f"{weights} is not a readable safetensors file: {one_line(err)}") from err
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in GraphMERT(cfg).state_dict().items()}
    if what := shape_mismatch(found, expected, "the config says"):
        raise GraphmerError(f"{weights} does not match {config_path}: {what}")


def shape_mismatch(found: dict, expected: dict, expected_by: str) -> str | None:
    """The first way weights of shapes `found` (name -> shape) fail to load into a model of shapes
    `expected`, or None: a missing tensor, an unexpected one, or a shape `expected_by` disagrees with."""
    if missing := sorted(set(expected) - set(found)):
        return f"missing {missing[0]}"
    if unexpected := sorted(set(found) - set(expected)):
        return f"unexpected {unexpected[0]}"
    for name in sorted(expected):
        if tuple(found[name]) != tuple(expected[name]):
            return f"{name} is {tuple(found[name])}, {expected_by} {tuple(expected[name])}"
    return None


def masked_groups(batch: dict, roots: int, leaves: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The masked leaf groups of a compact batch: batch row, position of the first slot, and the
    target tokens (G, L), `IGNORE` after each tail (a group is masked whole)."""
    labels = batch["labels"][:, roots:]
    grouped = labels.reshape(labels.shape[0], -1, leaves)
    b, k = torch.nonzero((grouped != IGNORE).any(-1), as_tuple=True)
    return b, roots + k * leaves, grouped[b, k]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- pre-training


def total_loss(out: dict[str, torch.Tensor], mu: float, constraint_weight: float) -> torch.Tensor:
    """The pre-training objective from its parts (`train.Pretrainer`'s output): MLM on roots +
    mu * MNM on leaves + constraint_weight * the InfoNCE regularizer."""
    return out["mlm_loss"] + mu * out["mnm_loss"] + constraint_weight * out["constraint_loss"]


def train_flops(model: GraphMERT, windows: int, positions: int) -> int:
    """Model FLOPs of a forward + backward pass over `windows` of `positions` each (what MFU
    counts): 6 per weight per position, the embedding tables left out (lookups, not products),
    plus attention's scores and mixing, 12 * layers * positions * hidden per position."""
    weights = sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith(("tok.", "pos.", "slot."))
    )
    cfg = model.cfg
    return 6 * weights * windows * positions + 12 * cfg.layers * windows * positions * positions * cfg.hidden
