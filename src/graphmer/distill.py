"""Distill: the static graph completed by the model, each new triple with a calibrated probability.

The model predicts tail *names* (the tokens of a leaf group), so it fills the slots where
static extraction knows a head and a relation but no tail at all:

- `untyped_parameter` -> has_type: a Python parameter without annotation, a JavaScript
  parameter without JSDoc `@param {T}`;
- `untyped_field` -> has_type: a field without annotation (JavaScript: without `@type {T}`);
- `untyped_function` -> returns: a function or method without `->` that returns a value (a
  `return` of anything but None, or a `yield`; JavaScript: any function without `@returns {T}`).
Java declares every type: it has none of these gaps.

An unresolved tail (`py:?.append`: a method of a receiver whose class is unknown) already
has its name; what is missing is which definition it names, and every definition of that
name has the same leaf tokens, hence the same model score: not a question this model can
answer (README). Typing the receiver (an untyped parameter or field) is.

Each question is a window of the head's file (code only, as `graphmer predict` reads it),
the head's leaf group masked with the relation; its candidates are the relation's tails in
the training graph plus the identifiers of the file. Questions with a known answer are built
the same way by hiding a fact: an annotated Python parameter, field or function from a
dev or test file, its annotation deleted from the code (`x: int = 3` -> `x = 3`), asked for
its type. On dev: each scorer's MRR (the model alone, the model plus the cheap rules' features
with weights fitted on dev, the rules alone), the choice of scorer, and per-relation isotonic
calibrators of the chosen scorer's softmax over the candidates; on test: precision, coverage
and expected calibration error of the calibrated probabilities, and the same for the rules
alone (weights fitted, calibrated on dev) with the per-question differences: what the model
adds to the graph beyond what cheap rules would write. A predicted name becomes a
tail id (a class of the file, else the id the training graph most often gives that name for
the relation, else a class of that name, else `<lang>:?.<name>`) and is written only if it
passes the validity checks (`Validator`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from graphmer import GraphmerError, atomic, baselines, progress_bar
from graphmer.calibrate import Calibrator, ece, reliability, selective
from graphmer.checkpoint import load_model
from graphmer.config import DistillConfig, ExtractConfig, PathsConfig
from graphmer.evaluate import Ranking, held_out_triples, paired_interval
from graphmer.kg import FILES_TABLE, MENTIONS_TABLE, TRIPLES_TABLE, entity_columns, short_name
from graphmer.model import WEIGHTS_FILE
from graphmer.ranking import Candidates, Question, answer, code_window, rank_metrics
from graphmer.relations import RELATION_NAMES, Relation
from graphmer.samples import char_offsets, mention_tokens
from graphmer.split import read_split
from graphmer.tokenizer import IDENTIFIER, PAD, leaf_ids_by_name

# gap kind -> (relation, head kinds); which kinds each language asks (Java declares every type)
GAP_KINDS = {
    "untyped_parameter": (Relation.HAS_TYPE, ("parameter",)),
    "untyped_field": (Relation.HAS_TYPE, ("field",)),
    "untyped_function": (Relation.RETURNS, ("function", "method")),
}
LANGUAGE_GAPS = {"python": tuple(GAP_KINDS), "javascript": tuple(GAP_KINDS), "java": ()}
HIDES = ("python",)  # languages whose annotations `python_annotations` can delete (hidden-fact questions)
# relations whose tail names a type or a class; the validity checks hold these tails to it
TYPE_RELATIONS = (
    Relation.HAS_TYPE,
    Relation.RETURNS,
    Relation.INHERITS,
    Relation.IMPLEMENTS,
    Relation.INSTANTIATES,
    Relation.RAISES,
    Relation.CATCHES,
)
CLASS_KINDS = ("class", "interface")
# a scorer weighs these per candidate: the model's log-probability, the training graph's name lookup
# (any project), copy closeness, training frequency, and what the question's own file and project
# say (`LocalLookup.SCOPES`)
FEATURES = (
    "model",
    "name_lookup",
    "copy",
    "frequency",
    "project_lookup",
    "file_lookup",
    "file_types",
    "project_types",
)
CONTEXT_BYTES = 4096  # code read each side of the head: more than a window of R tokens holds


# --------------------------------------------------------------------------- the static graph


@dataclass
class Graph:
    """A static graph (the four tables of `extract`), indexed: what each entity is, where its
    name is defined, which tails each (head, relation) has."""

    kind: dict[str, str]
    name: dict[str, str]
    language: dict[str, str]
    file: dict[str, str]
    line: dict[str, int]
    span: dict[str, tuple[int, int]]  # bytes of the definition's name in its file
    tails: dict[tuple[str, int], set[str]]
    triples: pa.Table

    @classmethod
    def load(cls, kg_dir: Path) -> Graph:
        ent = entity_columns(kg_dir, ["kind", "name", "language", "file", "start_line"])
        tri = pq.read_table(kg_dir / TRIPLES_TABLE)
        men = pq.read_table(kg_dir / MENTIONS_TABLE).to_pydict()
        file = {i: f for i, f in ent["file"].items() if f is not None}
        span: dict[str, tuple[int, int]] = {}
        for e, f, s, t, role in zip(
            men["entity_id"], men["file"], men["start_byte"], men["end_byte"], men["role"]
        ):
            if role == "def" and file.get(e) == f and e not in span:
                span[e] = (s, t)
        tails: dict[tuple[str, int], set[str]] = defaultdict(set)
        for h, r, t in zip(*(tri[c].to_pylist() for c in ("head", "relation", "tail"))):
            tails[(h, r)].add(t)
        return cls(
            ent["kind"],
            ent["name"],
            ent["language"],
            file,
            {i: int(x) for i, x in ent["start_line"].items() if x is not None},
            span,
            tails,
            tri,
        )

    def name_of(self, entity: str) -> str:
        return short_name(self.name, entity)


def prefix_of(entity: str) -> str:
    return entity.split(":", 1)[0] + ":"


def is_unresolved(entity: str) -> bool:
    return entity.split(":", 1)[-1].startswith("?.")


# --------------------------------------------------------------------------- annotations (Python)


def python_annotations(data: bytes) -> dict[tuple[int, int], tuple[int, int]]:
    """Bytes of each annotated name of a Python file (parameter, class or `self` attribute,
    function) -> bytes of its annotation with the `:` or `->` before it, whose deletion leaves
    the code as if it had never been annotated. (Grammar knowledge that belongs beside the
    extractor's in extract/python.py, kept here while that module is frozen.)"""
    from tree_sitter import Parser, Query, QueryCursor

    from graphmer.extract.python import LANGUAGE

    query = Query(
        LANGUAGE,
        """
        (typed_parameter type: (type) @type) @node
        (typed_default_parameter type: (type) @type) @node
        (assignment type: (type) @type) @node
        (function_definition return_type: (type) @type) @node
        """,
    )
    out = {}
    for _, caps in QueryCursor(query).matches(Parser(LANGUAGE).parse(data).root_node):
        node, ty = caps["node"][0], caps["type"][0]
        name = _annotated_name(node)
        if name is not None and ty.prev_sibling is not None:
            out[(name.start_byte, name.end_byte)] = (ty.prev_sibling.start_byte, ty.end_byte)
    return out


def python_returners(data: bytes) -> set[tuple[int, int]]:
    """Bytes of the name of each Python function that returns a value: a `return` of anything but
    `None`, or a `yield`. The others return None, a type no triple records (`-> None` makes
    none), so neither their gaps nor their hidden facts are asked."""
    from tree_sitter import Parser, Query, QueryCursor

    from graphmer.extract.python import LANGUAGE

    query = Query(LANGUAGE, "(return_statement (_) @value) @ret (yield) @ret")
    out = set()
    for _, caps in QueryCursor(query).matches(Parser(LANGUAGE).parse(data).root_node):
        if caps.get("value") and caps["value"][0].type == "none":
            continue
        node = caps["ret"][0].parent
        while node is not None and node.type not in ("function_definition", "lambda"):
            node = node.parent
        if node is not None and node.type == "function_definition":
            name = node.child_by_field_name("name")
            out.add((name.start_byte, name.end_byte))
    return out


def _annotated_name(node):
    if node.type == "typed_parameter":
        name = node.named_children[0] if node.named_children else None
        if name is not None and name.type != "identifier":  # *args: T, **kw: T
            name = (name.named_children or [None])[0]
        return name
    if node.type == "assignment":
        left = node.child_by_field_name("left")
        return (
            left.child_by_field_name("attribute") if left is not None and left.type == "attribute" else left
        )
    return node.child_by_field_name("name")


# --------------------------------------------------------------------------- questions


@dataclass(frozen=True)
class Slot:
    """A question: which tail of `relation` does `head` (defined at `span` of `file`) have?
    A hidden fact deletes `hide` (bytes of the code) first and knows its answers (`truth`)."""

    head: str
    relation: int
    gap: str
    file: str
    line: int
    span: tuple[int, int]
    hide: tuple[int, int] | None = None
    truth: frozenset[str] = frozenset()


def gap_slots(graph: Graph, files: set[str], languages: list[str], read) -> tuple[list[Slot], Counter]:
    """Every gap of the `files`: a head of a gap kind without a triple of the kind's relation
    (nor, in Python, an annotation the resolver could not turn into one; a function, only if it
    returns a value)."""
    by_file: dict[str, list[str]] = defaultdict(list)
    for e, f in graph.file.items():
        if f in files and e in graph.span and graph.language.get(e) in languages:
            by_file[f].append(e)
    slots, found = [], Counter()
    for f in sorted(by_file):
        python = graph.language[by_file[f][0]] == "python"
        annotated = python_annotations(read(f)) if python else {}
        returners = python_returners(read(f)) if python else None
        for e in sorted(by_file[f]):
            for gap in LANGUAGE_GAPS[graph.language[e]]:
                relation, kinds = GAP_KINDS[gap]
                if (
                    graph.kind[e] in kinds
                    and (e, relation) not in graph.tails
                    and graph.span[e] not in annotated
                    and (relation != Relation.RETURNS or returners is None or graph.span[e] in returners)
                ):
                    slots.append(Slot(e, int(relation), gap, f, graph.line.get(e, 0), graph.span[e]))
                    found[gap] += 1
    return slots, found


def hidden_slots(
    graph: Graph, samples_dir: Path, split: str, cfg: DistillConfig, read
) -> tuple[list[Slot], Counter]:
    """Questions with a known answer, built like the gap questions: facts of the gap relations
    extracted from `split` files and never carried by a training window (`held_out_triples`),
    each hidden by deleting its annotation from the code. Skipped ones are counted by reason."""
    held, _ = held_out_triples(samples_dir, split, cfg.seed, 0)
    relations = {int(r) for r, _ in GAP_KINDS.values()}
    gap_of = {(int(r), k): g for g, (r, kinds) in GAP_KINDS.items() for k in kinds}
    annotations: dict[str, tuple[dict, set]] = {}
    slots, skipped, seen = defaultdict(list), Counter(), set()
    for h in held:
        if h.relation not in relations or (h.head, h.relation) in seen:
            continue
        seen.add((h.head, h.relation))
        lang, kind, f = graph.language.get(h.head), graph.kind.get(h.head), graph.file.get(h.head)
        gap = gap_of.get((h.relation, kind))
        truth = frozenset(graph.tails.get((h.head, h.relation), ()))
        if lang not in cfg.languages or gap is None:
            skipped["language_or_kind_without_gaps"] += 1
        elif lang not in HIDES:
            skipped[f"no_hide_rule_{lang}"] += 1
        elif all(is_unresolved(t) for t in truth):
            skipped["unresolved_tail"] += 1
        elif h.head not in graph.span:
            skipped["no_definition_span"] += 1
        else:
            if f not in annotations:
                annotations[f] = python_annotations(read(f)), python_returners(read(f))
            hide = annotations[f][0].get(graph.span[h.head])
            if hide is None:
                skipped["annotation_not_found"] += 1
                continue
            if h.relation == Relation.RETURNS and graph.span[h.head] not in annotations[f][1]:
                skipped["returns_no_value"] += 1  # a stub (`...`, `raise NotImplementedError`)
                continue
            line = graph.line.get(h.head, 0)
            slots[h.relation].append(Slot(h.head, h.relation, gap, f, line, graph.span[h.head], hide, truth))
    rng = np.random.default_rng(cfg.seed)
    out = []
    for r in sorted(slots):
        pick = rng.permutation(len(slots[r]))[: cfg.held_out_per_relation or len(slots[r])]
        out += [slots[r][i] for i in sorted(pick)]
    return out, skipped


def slot_window(
    slot: Slot, data: bytes, tok, roots: int, leaves: int, begins: np.ndarray, ends: np.ndarray
) -> tuple[Question, str]:
    """The question of a slot: R roots of the (hidden-fact: edited) code around the head's name, a
    quarter of them before it, as `graphmer predict` reads a file; and the whole edited text."""
    span = slot.span
    if slot.hide is not None:
        a, b = slot.hide
        data = data[:a] + data[b:]
        if span[0] >= b:
            span = (span[0] - (b - a), span[1] - (b - a))
    lo = data.rfind(b"\n", 0, max(0, span[0] - CONTEXT_BYTES)) + 1
    hi = data.find(b"\n", span[1] + CONTEXT_BYTES)
    piece = data[lo : len(data) if hi < 0 else hi]
    text = piece.decode("utf-8")
    enc = tok.encode(text)
    tok_ends = np.asarray([e for _, e in enc.offsets], dtype=np.int64)
    chars = char_offsets(piece, text, np.asarray([[span[0] - lo, span[1] - lo]], dtype=np.int64))
    first, last = mention_tokens(tok_ends, chars[:, 0], chars[:, 1])
    first, last = int(first[0]), int(last[0])
    item, start = code_window(enc.ids, first, roots, leaves, (begins, ends))
    question = Question(item, first - start, slot.relation, min(last + 1 - start, roots))
    return question, data.decode("utf-8")


# --------------------------------------------------------------------------- scoring


@dataclass
class Asked:
    """One slot's candidates with the features every scorer weighs (C, 4), which candidates
    are left out (another true tail of a hidden fact's head: the filtered setting), the hidden
    tail's row (-1: a gap, or a tail no candidate spells) and each cheap rule's reciprocal rank
    (hidden facts only)."""

    slot: Slot
    names: list[str]
    feats: np.ndarray
    keep: np.ndarray
    target: int
    rules_rr: dict[str, float] = field(default_factory=dict)


class Context:
    """What every question is ranked with: the training graph's candidates per relation, the
    cheap rules' name lookup, the vocabulary's word edges, a cache of token forms of names."""

    def __init__(
        self, ranking: Ranking, tok, leaves: int, max_tokens: int, corpus: Graph, local: Graph, read
    ):
        self.ranking, self.tok, self.L, self.corpus, self.local = ranking, tok, leaves, corpus, local
        self.max_tokens = max_tokens
        self.read = functools.lru_cache(maxsize=64)(read)  # a chunk's questions share few files
        self.known = {r: _training_only(c, leaves, max_tokens) for r, c in ranking.cands.items()}
        self._ids: dict[str, tuple[int, ...]] = {}
        self.local_lookup = LocalLookup(local, self.token_forms)

    def token_forms(self, names: list[str]) -> list[tuple[int, ...]]:
        new = [n for n in names if n not in self._ids]
        self._ids.update(leaf_ids_by_name(self.tok, new, self.L))
        return [self._ids[n] for n in names]

    def candidates(self, relation: int, text: str) -> Candidates:
        """The relation's training-graph tails plus the identifiers of `text` they do not spell,
        each of at most `max_tail_tokens` tokens."""
        known = self.known[relation]
        index = known.index()
        names = sorted(set(IDENTIFIER.findall(text)))
        extra, seen = [], set()
        for n, key in zip(names, self.token_forms(names)):
            if key and len(key) <= self.max_tokens and key not in index and key not in seen:
                seen.add(key)
                extra.append((n, key))
        ids = torch.full((len(extra), self.L), PAD, dtype=torch.long)
        for i, (_, key) in enumerate(extra):
            ids[i, : len(key)] = torch.as_tensor(key)
        # file names have no training count: the length prior (counts) is the known tails' one
        return Candidates(
            torch.cat([known.ids, ids]),
            torch.cat([known.lengths, torch.as_tensor([len(k) for _, k in extra], dtype=torch.long)]),
            known.names + [n for n, _ in extra],
            np.concatenate([known.train_count, np.zeros(len(extra), np.int64)]),
            known.log_length_prior,
        )


class LocalLookup:
    """What the question's own file and project say, from the distilled files' static graph less
    the question's own head (its hidden fact stays hidden; a gap's reader sees the rest of its file
    and project too). Per candidate tail (as leaf ids), how often it is the relation's tail of
    - `project_lookup`: a same-named head of the project (a name like `path` or `node` is typed
      per project; the training graph's `name_lookup` pools every project),
    - `file_lookup`: a same-named head of the file,
    - `file_types`, `project_types`: any head of the file, of the project."""

    SCOPES = ("project_lookup", "file_lookup", "file_types", "project_types")
    RELATIONS = frozenset(int(r) for r, _ in GAP_KINDS.values())

    @staticmethod
    def _keys(file: str, relation: int, head_name: str) -> tuple:
        project = _source(file)
        return (
            (project, relation, head_name),
            (file, relation, head_name),
            (file, relation),
            (project, relation),
        )

    def __init__(self, graph: Graph, token_forms):
        self.graph, self.forms = graph, token_forms
        tri = graph.triples.select(["head", "relation", "tail", "file"]).to_pydict()
        rows = [
            (f, r, graph.name_of(h), graph.name_of(t))
            for h, r, t, f in zip(tri["head"], tri["relation"], tri["tail"], tri["file"])
            if r in self.RELATIONS and not is_unresolved(t)
        ]
        tails = sorted({t for *_, t in rows})
        form = dict(zip(tails, token_forms(tails)))
        self.counts: list[dict[tuple, Counter]] = [defaultdict(Counter) for _ in self.SCOPES]
        for f, r, head_name, tail in rows:
            for table, key in zip(self.counts, self._keys(f, r, head_name)):
                table[key][form[tail]] += 1

    def counts_for(self, slot: Slot, cands: Candidates, index) -> np.ndarray:
        """(C, len(SCOPES)) counts of each candidate."""
        g = self.graph
        own = self.forms(
            [g.name_of(t) for t in g.tails.get((slot.head, slot.relation), ()) if not is_unresolved(t)]
        )
        out = np.zeros((len(cands), len(self.SCOPES)), np.float64)
        keys = self._keys(slot.file, slot.relation, g.name_of(slot.head))
        for j, (table, key) in enumerate(zip(self.counts, keys)):
            counts = Counter(table.get(key, {}))
            counts.subtract(own)
            for tail, n in counts.items():
                c = index.get(tail)
                if c is not None and n > 0:
                    out[c, j] = n
        return out


def _training_only(cands: Candidates, leaves: int, max_tokens: int) -> Candidates:
    keep = np.flatnonzero((cands.train_count > 0) & (cands.lengths.numpy() <= max_tokens))
    return Candidates.from_lists(
        [cands.ids[i, : cands.lengths[i]].tolist() for i in keep],
        [cands.names[i] for i in keep],
        cands.train_count[keep],
        leaves,
    )


def ask(model, ctx: Context, slots: list[Slot], batch_size: int, progress: bool, desc: str) -> list[Asked]:
    """Every slot ranked: the model's log-probabilities and the rules' features per candidate."""
    R, L = model.cfg.roots, model.cfg.leaves
    k = ctx.ranking
    chunk = max(1, batch_size // ctx.max_tokens)  # a question is one window per candidate length
    out = []
    for lo in progress_bar(range(0, len(slots), chunk), desc=desc, unit="chunk", disable=not progress):
        part = slots[lo : lo + chunk]
        built = [slot_window(s, ctx.read(s.file), ctx.tok, R, L, k.begins, k.ends) for s in part]
        cands = [ctx.candidates(s.relation, text) for s, (_, text) in zip(part, built)]
        scores = answer(model, [q for q, _ in built], cands, graph=False, batch_size=batch_size)
        for s, (q, _), c, sc in zip(part, built, cands, scores):
            out.append(_features(ctx, s, q, c, sc, R))
    return out


def _features(ctx: Context, s: Slot, q: Question, c: Candidates, model_scores: torch.Tensor, R: int) -> Asked:
    k, index = ctx.ranking, c.index()
    n = int(q.item["attention_mask"][:R].sum())
    roots = q.item["input_ids"][:n]
    head_name = ctx.local.name_of(s.head)
    close = baselines.copy_closeness(roots, q.anchor, q.head_end, c, k.begins, k.ends, index)
    named = k.lookup.counts_for(head_name, s.relation, c, index)
    local = ctx.local_lookup.counts_for(s, c, index)
    feats = np.column_stack(
        [
            model_scores.numpy(),
            np.log1p(named),
            close / R,
            np.log1p(c.train_count.astype(np.float64)),
            np.log1p(local),
        ]
    ).astype(np.float32)
    keep = np.ones(len(c), bool)
    target = -1
    if s.truth:
        forms = ctx.token_forms([ctx.local.name_of(t) for t in sorted(s.truth)])
        rows = sorted({index[f] for f in forms if f in index})
        target = rows[0] if rows else -1
        keep[rows[1:]] = False  # another true tail: left out of the ranking (filtered setting)
    asked = Asked(s, c.names, feats, keep, target)
    if s.truth:
        asked.rules_rr = dict.fromkeys(baselines.RULES, 0.0)
    if target >= 0:
        rules = baselines.baseline_scores(
            roots, q.anchor, q.head_end, s.relation, head_name, c, index, k.lookup, k.begins, k.ends
        )
        exclude = torch.from_numpy(~keep)
        asked.rules_rr = {r: rank_metrics(v, target, exclude)["rr"] for r, v in rules.items()}
    return asked


def reciprocal_ranks(scores: np.ndarray, target: int, keep: np.ndarray) -> np.ndarray:
    """Reciprocal rank of `target` under each column of scores (C, S), in expectation over a random
    order of ties, among the kept candidates (what `rank_metrics` computes, for S scorers at once)."""
    if target < 0:
        return np.zeros(scores.shape[1])
    others = keep.copy()
    others[target] = False
    t = scores[target]
    above = (scores[others] > t).sum(0)
    ties = (scores[others] == t).sum(0)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, len(scores) + 2))])
    return (harmonic[above + ties + 1] - harmonic[above]) / (ties + 1)


# --------------------------------------------------------------------------- scorers


# A scorer is linear in a basis of the FEATURES, built per question (a share needs the question's
# total): each count as its log, whether it is there at all and its share of the question's counts;
# the model's, copy's and frequency's columns once more for questions where the name lookup knows
# nothing, so they can weigh differently there. `rules` leaves the model's columns out.
BASIS = (
    "model",
    "model_without_lookup",
    "lookup",
    "lookup_any",
    "lookup_share",
    "lookup_top",
    "copy",
    "copy_any",
    "copy_without_lookup",
    "frequency",
    "frequency_without_lookup",
    "project",
    "project_any",
    "project_share",
    "file",
    "file_any",
    "file_types",
    "file_types_share",
    "project_types",
    "project_types_share",
)
SCORER_COLUMNS = {
    "model+rules": BASIS,
    "rules": tuple(c for c in BASIS if not c.startswith("model")),
}


def _share(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


MODEL_FLOOR = -1e4  # nats: the model's log-probability of a candidate it cannot spell


def basis(feats: np.ndarray) -> np.ndarray:
    """A question's (C, len(FEATURES)) features -> its (C, len(BASIS)) columns."""
    model, lookup, close, freq, project, same_file, file_types, project_types = feats.astype(np.float64).T
    # the model cannot spell a candidate: very unlikely, and no nan where its weight is 0
    model = np.where(np.isfinite(model), model, MODEL_FLOOR)
    counts = np.expm1(lookup)
    share = _share(counts)
    alone = counts.sum() == 0
    top = (share > 0) & (share == share.max(initial=0.0))
    cols = {
        "model": model,
        "model_without_lookup": model * alone,
        "lookup": lookup,
        "lookup_any": counts > 0,
        "lookup_share": share,
        "lookup_top": top,
        "copy": close,
        "copy_any": close > 0,
        "copy_without_lookup": close * alone,
        "frequency": freq,
        "frequency_without_lookup": freq * alone,
        "project": project,
        "project_any": project > 0,
        "project_share": _share(np.expm1(project)),
        "file": same_file,
        "file_any": same_file > 0,
        "file_types": file_types,
        "file_types_share": _share(np.expm1(file_types)),
        "project_types": project_types,
        "project_types_share": _share(np.expm1(project_types)),
    }
    return np.stack([np.asarray(cols[c], np.float64) for c in BASIS], 1)


@dataclass(frozen=True)
class Scorer:
    """Weights on BASIS per relation name ('*': any other)."""

    name: str
    weights: dict[str, tuple[float, ...]]

    def scores(self, a: Asked) -> np.ndarray:
        w = self.weights.get(RELATION_NAMES[a.slot.relation], self.weights["*"])
        return basis(a.feats) @ np.asarray(w)

    def top(self, a: Asked, k: int) -> list[tuple[int, float]]:
        """The k best kept candidates with their softmax over the kept candidates."""
        s = self.scores(a)
        kept = np.flatnonzero(a.keep & np.isfinite(s))
        if not len(kept):
            return []
        z = s[kept] - s[kept].max()
        p = np.exp(z) / np.exp(z).sum()
        order = np.argsort(-s[kept], kind="stable")[:k]
        return [(int(kept[i]), float(p[i])) for i in order]


MODEL = Scorer("model", {"*": tuple(float(c == "model") for c in BASIS)})
MIN_FIT_QUESTIONS = 30  # a relation with fewer dev questions takes the weights fitted on all of them
L2 = 1e-3  # on standardized columns: keeps a column that never varies in a fold at weight 0


def fit_listwise(asked: list[Asked], columns: tuple[str, ...]) -> tuple[float, ...]:
    """Weights on BASIS (0 outside `columns`) that maximise the likelihood of each question's answer
    under a softmax over its kept candidates: a conditional logit (McFadden, 1974), fitted by L-BFGS
    on standardized columns. Unlike weights chosen for MRR alone, the softmax's scale is fitted too,
    so its probabilities already mean something before the isotonic maps refine them."""
    use = [BASIS.index(c) for c in columns]
    rows = [(basis(a.feats)[:, use], a.keep.copy(), a.target) for a in asked if a.target >= 0]
    rows = [(x, keep & np.isfinite(x).all(1), t) for x, keep, t in rows]
    rows = [(np.where(keep[:, None], x, 0.0), keep, t) for x, keep, t in rows if keep[t]]
    if not rows:
        return tuple(0.0 for _ in BASIS)
    width = max(len(x) for x, _, _ in rows)
    X = np.zeros((len(rows), width, len(use)))
    mask = np.zeros((len(rows), width), bool)
    for i, (x, keep, _) in enumerate(rows):
        X[i, : len(x)], mask[i, : len(x)] = x, keep
    flat = X[mask]
    mean, sd = flat.mean(0), flat.std(0)
    sd[sd == 0] = 1.0
    with torch.inference_mode(False), torch.enable_grad():  # the stage asks in inference mode
        Z = torch.from_numpy((X - mean) / sd)
        allowed = torch.from_numpy(mask)
        target = torch.as_tensor([t for _, _, t in rows])
        w = torch.zeros(len(use), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

        def loss():
            opt.zero_grad()
            s = (Z @ w).masked_fill(~allowed, -torch.inf)
            nll = torch.logsumexp(s, 1) - s[torch.arange(len(rows)), target]
            out = nll.mean() + L2 * (w * w).sum()
            out.backward()
            return out

        opt.step(loss)
    raw = w.detach().numpy() / sd  # the mean's shift is the same for every candidate: no change
    full = np.zeros(len(BASIS))
    full[use] = raw
    return tuple(float(v) for v in full)


def fit_weights(asked: list[Asked], columns: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    """`fit_listwise` on all of `asked` ('*') and on each relation with enough questions."""
    rel = [a.slot.relation for a in asked if a.target >= 0]
    out = {"*": fit_listwise(asked, columns)}
    for r in sorted(set(rel)):
        if rel.count(r) >= MIN_FIT_QUESTIONS:
            out[RELATION_NAMES[r]] = fit_listwise([a for a in asked if a.slot.relation == r], columns)
    return out


def question_rr(asked: list[Asked], scorer: Scorer) -> np.ndarray:
    """Each question's reciprocal rank under a scorer (0 where no candidate spells the answer)."""
    return np.asarray([reciprocal_ranks(scorer.scores(a)[:, None], a.target, a.keep)[0] for a in asked])


def fitted(name: str, asked: list[Asked]) -> Scorer:
    """The scorer `name` ('model', or one of SCORER_COLUMNS) with its weights fitted on `asked`."""
    return MODEL if name == MODEL.name else Scorer(name, fit_weights(asked, SCORER_COLUMNS[name]))


def mean_rr(asked: list[Asked], scorer: Scorer) -> float:
    """MRR of a scorer (0 without questions)."""
    rr = question_rr(asked, scorer)
    return float(rr.mean()) if len(rr) else 0.0


def _fold(a: Asked) -> int:
    return zlib.crc32(a.slot.head.encode()) % 2


def fold_scorers(asked: list[Asked]) -> dict[str, tuple[Scorer, Scorer]]:
    """Each scorer fitted for 2-fold cross-validation over heads: the one to grade on fold 0
    (fitted on fold 1) and the one to grade on fold 1."""
    return {
        name: tuple(fitted(name, [a for a in asked if _fold(a) != fold]) for fold in (0, 1))
        for name in (MODEL.name, *SCORER_COLUMNS)
    }


def compare_scorers(dev: list[Asked], folds: dict[str, tuple[Scorer, Scorer]]) -> tuple[Scorer, dict]:
    """Each scorer's dev MRR (fitted ones by 2-fold cross-validation over heads, `folds`, so no
    scorer is graded on the questions it was fitted on) and the chosen one: the best of the model
    alone and the model with the rules, refitted on all of dev."""
    asked = [a for a in dev if a.slot.truth]
    mrr = {"model": mean_rr(asked, MODEL)}
    for name in SCORER_COLUMNS:
        mrr[name] = float(np.mean([question_rr([a], folds[name][_fold(a)])[0] for a in asked]))
    for rule in baselines.RULES:
        mrr[rule] = float(np.mean([a.rules_rr[rule] for a in asked]))
    mrr["rule_by_relation"] = _rule_by_relation_cv(asked)
    best = max(("model", "model+rules"), key=lambda s: (mrr[s], s == "model"))
    return fitted(best, asked), mrr


def _rule_by_relation_cv(asked: list[Asked]) -> float:
    """`rule_by_relation` (each relation's best rule), chosen on one fold, graded on the other."""
    rr = []
    for fold in (0, 1):
        fit = [a for a in asked if _fold(a) != fold]
        if not fit:
            continue  # a tiny dev set whose questions all fall in one fold
        for a in (a for a in asked if _fold(a) == fold):
            mine = [b for b in fit if b.slot.relation == a.slot.relation] or fit
            best = max(baselines.RULES, key=lambda s: (np.mean([b.rules_rr[s] for b in mine]), s))
            rr.append(a.rules_rr[best])
    return float(np.mean(rr)) if rr else 0.0


# --------------------------------------------------------------------------- names -> tail ids


class TailIds:
    """The entity a predicted name stands for, for a head of a file: a class or interface the file
    defines; else, among the tails of that name the training graph has for the relation and the
    classes of that name, the one the file imports (itself or its module), else the most frequent
    tail, else a class of the head's own project (first package); else `<lang>:?.<name>`. (The
    order was chosen on dev: 2 of 595 right names mapped to a wrong id, 8 with frequency alone.)"""

    def __init__(self, corpus: Graph, train_files: set[str], local: Graph):
        tri = corpus.triples.select(["relation", "tail", "file"]).to_pydict()
        self.by_name: dict[tuple[int, str, str], Counter] = defaultdict(Counter)
        for r, t, f in zip(tri["relation"], tri["tail"], tri["file"]):
            if f in train_files and not is_unresolved(t):
                self.by_name[(r, prefix_of(t), corpus.name_of(t))][t] += 1
        self.classes: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.in_file: dict[tuple[str, str], str] = {}
        for g in (corpus, local):
            for e, k in g.kind.items():
                if k in CLASS_KINDS:
                    self.classes[(prefix_of(e), g.name_of(e))].add(e)
                    if g is local and e in local.file:
                        self.in_file.setdefault((local.file[e], g.name_of(e)), e)
        mine = local.triples.select(["relation", "tail", "file"]).to_pydict()
        self.imports: dict[str, list[str]] = defaultdict(list)
        for r, t, f in zip(mine["relation"], mine["tail"], mine["file"]):
            if r == Relation.IMPORTS:
                self.imports[f].append(t)

    def __call__(self, relation: int, head: str, file: str, name: str) -> str:
        prefix = prefix_of(head)
        if (file, name) in self.in_file and prefix_of(self.in_file[(file, name)]) == prefix:
            return self.in_file[(file, name)]
        options = Counter(self.by_name.get((relation, prefix, name), {}))
        for c in self.classes.get((prefix, name), ()):
            options[c] += 0  # a class never seen as this relation's tail: count 0
        if not options:
            return f"{prefix}?.{name}"
        imported = self.imports.get(file, ())
        project = _project(head)
        mine = self.classes.get((prefix, name), set())

        def rank(option: tuple[str, int]) -> tuple:
            c, n = option
            from_import = any(c == t or c.startswith(t + ".") for t in imported)
            return from_import, n, c in mine and _project(c) == project, c

        return max(options.items(), key=rank)[0]


def _project(entity: str) -> str:
    """The first package of an id (`py:django.db.models` -> `django`)."""
    return entity.split(":", 1)[-1].split(".", 1)[0].split("/", 1)[0]


def type_ids(graph: Graph, files: set[str] | None = None) -> set[str]:
    """Entities that are types: classes and interfaces, and every tail of a type relation in the
    triples of `files` (all of them: None)."""
    out = {e for e, k in graph.kind.items() if k in CLASS_KINDS}
    tri = graph.triples.select(["relation", "tail", "file"]).to_pydict()
    kinds = {int(r) for r in TYPE_RELATIONS}
    return out | {
        t
        for r, t, f in zip(tri["relation"], tri["tail"], tri["file"])
        if r in kinds and not is_unresolved(t) and (files is None or f in files)
    }


def project_reach(*graphs: Graph) -> tuple[dict[str, str], dict[str, set[str]]]:
    """The source project of each defined entity (its file's first folder) and, per source, the
    packages its code can name: its own and those its files import."""
    source, reach = {}, defaultdict(set)
    for g in graphs:
        for e, f in g.file.items():
            source[e] = _source(f)
            reach[source[e]].add(_project(e))
        tri = g.triples.select(["relation", "tail", "file"]).to_pydict()
        for r, t, f in zip(tri["relation"], tri["tail"], tri["file"]):
            if r == Relation.IMPORTS:
                reach[_source(f)].add(_project(t))
    return source, reach


# --------------------------------------------------------------------------- validity


class Validator:
    """Checks a predicted triple against the static graph (and the predictions already accepted):
    its tail's kind fits the relation (inherits, implements, instantiates, raises, catches: a
    class; has_type, returns: a type; overrides: a method of the same name in a class the head's
    class descends from), no inheritance cycle, `contains` stays a forest (one parent, no
    cycle), no duplicate of a static triple, and a type is one the head's project can name: its
    own, a builtin, or one of a package its files import (a Django parameter is no
    `ckan.types.Context`, a project that never imports docutils has no `docutils.nodes.Element`).
    Reasons are the keys of `metrics/distill.json`."""

    def __init__(
        self,
        kinds: dict[str, str],
        triples: list[tuple[str, int, str]],
        types: set[str],
        projects: tuple[dict[str, str], dict[str, set[str]]] = ({}, {}),
    ):
        import networkx as nx

        self.kinds, self.types = kinds, types
        self.source, self.reach = projects
        self.static = set(triples)
        self.hierarchy = nx.DiGraph()  # class -> base
        self.tree = nx.DiGraph()  # parent -> child
        for h, r, t in triples:
            self._link(h, r, t)

    def _link(self, h: str, r: int, t: str) -> None:
        if r in (Relation.INHERITS, Relation.IMPLEMENTS):
            self.hierarchy.add_edge(h, t)
        elif r == Relation.CONTAINS:
            self.tree.add_edge(h, t)

    def check(self, h: str, r: int, t: str, hidden: frozenset[str] = frozenset()) -> str | None:
        """None for a valid triple, else why it is not; the tails in `hidden` (a hidden fact's) are
        taken as absent from the static graph."""
        import networkx as nx

        if (h, r, t) in self.static and t not in hidden:
            return "duplicate_of_static"
        if r in (Relation.HAS_TYPE, Relation.RETURNS) and t not in self.types:
            return "tail_not_a_type"
        if r in (
            Relation.INHERITS,
            Relation.IMPLEMENTS,
            Relation.INSTANTIATES,
            Relation.RAISES,
            Relation.CATCHES,
        ) and not (self.kinds.get(t) in CLASS_KINDS or t in self.types):
            return "tail_not_a_class"
        if r in TYPE_RELATIONS and not self._reachable(h, t):
            return "type_the_project_never_imports"
        if r == Relation.OVERRIDES and not self._overridable(h, t):
            return "tail_not_an_ancestor_method"
        if r in (Relation.INHERITS, Relation.IMPLEMENTS) and (
            h == t or (t in self.hierarchy and h in self.hierarchy and nx.has_path(self.hierarchy, t, h))
        ):
            return "inheritance_cycle"
        if r == Relation.CONTAINS and (
            h == t
            or (t in self.tree and self.tree.in_degree(t) > 0)
            or (t in self.tree and h in self.tree and nx.has_path(self.tree, t, h))
        ):
            return "contains_not_a_forest"
        return None

    def _reachable(self, h: str, t: str) -> bool:
        """Can the head's project name the type: its own, a language builtin (`py:builtins.str`,
        `java:int`), or one of a package some file of the project imports."""
        mine = self.source.get(h)
        if mine is None or self.source.get(t) == mine:
            return True
        if "." not in t.split(":", 1)[-1] or _project(t) == "builtins":
            return True
        return _project(t) in self.reach.get(mine, set())

    def _overridable(self, h: str, t: str) -> bool:
        import networkx as nx

        if self.kinds.get(t) != "method" or h.rsplit(".", 1)[-1] != t.rsplit(".", 1)[-1]:
            return False
        mine = next(iter(self.tree.predecessors(h)), None) if h in self.tree else None
        theirs = next(iter(self.tree.predecessors(t)), None) if t in self.tree else None
        return (
            mine is not None
            and theirs is not None
            and mine in self.hierarchy
            and theirs in nx.descendants(self.hierarchy, mine)
        )

    def add(self, h: str, r: int, t: str) -> None:
        """Accept a triple: later checks see it."""
        self.static.add((h, r, t))
        self._link(h, r, t)


# --------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class Predicted:
    slot: Slot
    rank: int
    name: str
    tail: str
    raw: float  # the scorer's softmax over the question's candidates
    correct: bool  # the tail is one of the hidden fact's (False for a gap: unknown)


def predictions(asked: list[Asked], scorer: Scorer, k: int, tail_ids: TailIds) -> list[Predicted]:
    out = []
    for a in asked:
        for rank, (row, p) in enumerate(scorer.top(a, k), 1):
            s = a.slot
            tail = tail_ids(s.relation, s.head, s.file, a.names[row])
            out.append(Predicted(s, rank, a.names[row], tail, p, tail in s.truth))
    return out


CALIBRATION_METHODS = {
    "isotonic": "isotonic regression (pool adjacent violators) per relation, pooled below min_points",
    "softmax": "the scorer's softmax as it is (weights and scale fitted on dev by maximum likelihood)",
}


def fit_calibrator(preds: list[Predicted], cfg: DistillConfig) -> Calibrator:
    """Isotonic maps of the dev predictions (per relation with `min_calibration_points`), or the
    scorer's softmax as it is (`calibration: softmax`)."""
    if cfg.calibration == "softmax":
        return Calibrator.identity()
    keys = [RELATION_NAMES[p.slot.relation] for p in preds]
    return Calibrator.fit(
        keys, [p.raw for p in preds], [p.correct for p in preds], cfg.min_calibration_points
    )


def probabilities(preds: list[Predicted], calibrator: Calibrator) -> np.ndarray:
    return calibrator([RELATION_NAMES[p.slot.relation] for p in preds], [p.raw for p in preds])


@dataclass
class Checked:
    """A scorer with its calibrator fitted on dev, and its valid test predictions with their
    calibrated probabilities."""

    scorer: Scorer
    calibrator: Calibrator
    dev_preds: list[Predicted]
    dev_rejected: Counter
    test_preds: list[Predicted]
    test_probs: np.ndarray
    test_rejected: Counter


def check_scorer(
    scorer: Scorer, dev: list[Asked], test: list[Asked], tail_ids: TailIds, validator: Validator, cfg
) -> Checked:
    """Calibrate a scorer on its valid dev predictions and apply it to the valid test ones."""
    dev_preds, dev_rejected = screen(predictions(dev, scorer, cfg.top_k, tail_ids), validator)
    calibrator = fit_calibrator(dev_preds, cfg)
    test_preds, test_rejected = screen(predictions(test, scorer, cfg.top_k, tail_ids), validator)
    probs = probabilities(test_preds, calibrator)
    return Checked(scorer, calibrator, dev_preds, dev_rejected, test_preds, probs, test_rejected)


def selective_metrics(
    preds: list[Predicted], probs: np.ndarray, asked: list[Asked], cfg: DistillConfig, keep_slot=None
) -> dict:
    """Precision, coverage and recall at each threshold, accuracy@1 and ECE of calibrated
    predictions on the questions of `asked` (those whose slot passes `keep_slot`)."""
    qs = [a for a in asked if keep_slot is None or keep_slot(a.slot)]
    number = {id(a.slot): i for i, a in enumerate(qs)}
    sel = [i for i, p in enumerate(preds) if id(p.slot) in number]
    p, y = probs[sel], np.asarray([preds[i].correct for i in sel])
    q = [number[id(preds[i].slot)] for i in sel]
    top1 = [i for i in sel if preds[i].rank == 1]
    return {
        "questions": len(qs),
        "predictions": len(sel),
        "accuracy_at_1": float(np.mean([preds[i].correct for i in top1])) if top1 else None,
        "ece": ece(p, y, cfg.bins),
        "thresholds": {f"{t:g}": selective(p, y, q, len(qs), t) for t in cfg.thresholds},
    }


def recalled(preds: list[Predicted], probs: np.ndarray, asked: list[Asked], threshold: float) -> np.ndarray:
    """Per question of `asked`: is a right tail kept at probability >= threshold (the question's
    share of `selective`'s recall)?"""
    number = {id(a.slot): i for i, a in enumerate(asked)}
    out = np.zeros(len(asked), bool)
    for p, pr in zip(preds, probs):
        if p.correct and pr >= threshold and id(p.slot) in number:
            out[number[id(p.slot)]] = True
    return out


def outcomes(checked: Checked, asked: list[Asked], cfg: DistillConfig) -> dict[str, np.ndarray]:
    """Per question of `asked` (the checked test questions): its reciprocal rank, and whether a
    right tail is kept at each threshold."""
    out = {"mrr": question_rr(asked, checked.scorer)}
    for t in cfg.thresholds:
        out[f"recall@{t:g}"] = recalled(checked.test_preds, checked.test_probs, asked, t).astype(float)
    return out


def paired_differences(a: dict[str, np.ndarray], b: dict[str, np.ndarray], seed: int) -> dict:
    """a minus b per question, for each of `outcomes`, with its paired interval."""
    return {k: paired_interval(a[k] - b[k], seed) for k in a}


def reported_weights(scorer: Scorer) -> dict[str, dict[str, float]]:
    """A scorer's weights for the metrics file, {relation: {basis column: weight}}, to 6 decimals:
    the CPU's run-to-run noise (about 1e-8) is then no change in `dvc metrics diff`.
    models/calibration.json keeps the weights the scorer uses, unrounded."""
    return {k: {b: round(w, 6) for b, w in zip(BASIS, v)} for k, v in scorer.weights.items()}


def versus_rules(chosen: Checked, rules: Checked, asked: list[Asked], cfg: DistillConfig) -> dict:
    """The rules alone (weights fitted and calibrated on dev exactly like the chosen scorer's) on
    the same test questions: their figures, and the chosen scorer minus them per question with a
    paired interval: reciprocal rank, and a right triple kept at each threshold (recall)."""
    return {
        "rules": {
            "weights": reported_weights(rules.scorer),
            "mrr": mean_rr(asked, rules.scorer),
            **selective_metrics(rules.test_preds, rules.test_probs, asked, cfg),
        },
        "chosen_minus_rules": paired_differences(
            outcomes(chosen, asked, cfg), outcomes(rules, asked, cfg), cfg.seed
        ),
    }


def versus_rules_on_dev(
    chosen: Scorer,
    folds: dict[str, tuple[Scorer, Scorer]],
    dev: list[Asked],
    tail_ids: TailIds,
    validator: Validator,
    cfg: DistillConfig,
) -> dict:
    """`versus_rules`' differences by 2-fold cross-validation on dev: on each fold, the chosen kind
    of scorer and the rules alone, fitted (`folds`) and calibrated on the other fold. (What decides
    between them is on dev; the test figures only confirm it.)"""
    asked = [a for a in dev if a.slot.truth]
    mine: dict[str, list] = defaultdict(list)
    theirs: dict[str, list] = defaultdict(list)
    for fold in (0, 1):
        fit, held = [a for a in asked if _fold(a) != fold], [a for a in asked if _fold(a) == fold]
        if not fit or not held:
            return {}  # a tiny dev set whose questions all fall in one fold
        for scorer, out in zip((folds[chosen.name][fold], folds["rules"][fold]), (mine, theirs)):
            for k, v in outcomes(
                check_scorer(scorer, fit, held, tail_ids, validator, cfg), held, cfg
            ).items():
                out[k].append(v)
    a, b = ({k: np.concatenate(v) for k, v in d.items()} for d in (mine, theirs))
    return {
        "questions": len(asked),
        "chosen": {k: float(v.mean()) for k, v in a.items()},
        "rules": {k: float(v.mean()) for k, v in b.items()},
        "chosen_minus_rules": paired_differences(a, b, cfg.seed),
    }


def check_metrics(
    preds: list[Predicted], probs: np.ndarray, asked: list[Asked], scorer: Scorer, cfg: DistillConfig
) -> dict:
    """Precision, coverage and recall at each threshold, ECE and MRR, overall, per relation and
    per gap kind, of calibrated predictions on questions with known answers."""

    part = functools.partial(selective_metrics, preds, probs, asked, cfg)
    out = part()
    out["mrr"] = {sc.name: mean_rr(asked, sc) for sc in {MODEL.name: MODEL, scorer.name: scorer}.values()}
    out["examples"] = examples(preds, probs)
    out["per_relation"] = {
        RELATION_NAMES[r]: part(lambda s, r=r: s.relation == r)
        for r in sorted({a.slot.relation for a in asked})
    }
    out["per_gap_kind"] = {g: part(lambda s, g=g: s.gap == g) for g in sorted({a.slot.gap for a in asked})}
    # the projects the hidden facts come from: annotated code (what gaps lack) is not spread evenly
    out["per_source"] = {
        src: part(lambda s, src=src: _source(s.file) == src)
        for src in sorted({_source(a.slot.file) for a in asked})
    }
    return out


def _source(path: str) -> str:
    return path.split("/", 1)[0]


def screen(preds: list[Predicted], validator: Validator) -> tuple[list[Predicted], Counter]:
    """The hidden-fact predictions that pass the validity checks (the hidden fact itself is no
    duplicate); each question is checked alone, nothing is added to the graph."""
    kept, rejected = [], Counter()
    for p in preds:
        why = validator.check(p.slot.head, p.slot.relation, p.tail, p.slot.truth)
        if why is None:
            kept.append(p)
        else:
            rejected[why] += 1
    return kept, rejected


def examples(preds: list[Predicted], probs: np.ndarray, n: int = 5) -> dict:
    """The most probable right and wrong top-1 predictions: what a reader checks first."""
    order = [i for i in np.argsort(-probs, kind="stable") if preds[i].rank == 1]

    def row(i: int) -> dict:
        p = preds[i]
        return {
            "head": p.slot.head,
            "relation": RELATION_NAMES[p.slot.relation],
            "predicted": p.tail,
            "truth": sorted(p.slot.truth),
            "probability": round(float(probs[i]), 3),
        }

    return {
        "right": [row(i) for i in order if preds[i].correct][:n],
        "wrong": [row(i) for i in order if not preds[i].correct][:n],
    }


def accept(preds: list[Predicted], probs: np.ndarray, validator: Validator) -> tuple[list[tuple], Counter]:
    """Most probable first, each prediction checked against the graph and the ones accepted."""
    kept, rejected = [], Counter()
    for i in np.argsort(-probs, kind="stable"):
        p = preds[i]
        why = validator.check(p.slot.head, p.slot.relation, p.tail)
        if why is None:
            validator.add(p.slot.head, p.slot.relation, p.tail)
            kept.append((p, float(probs[i])))
        else:
            rejected[why] += 1
    return kept, rejected


# --------------------------------------------------------------------------- output

DISTILLED_SCHEMA = pa.schema(
    [
        ("head", pa.string()),
        ("relation", pa.int8()),  # ids of graphmer.relations, as in data/kg/triples.parquet
        ("tail", pa.string()),
        ("probability", pa.float32()),  # 1 for a static triple; calibrated on dev for a model one
        ("rank", pa.int16()),  # the tail's rank among the question's (null: static)
        ("file", pa.string()),
        ("line", pa.int32()),
        ("source", pa.string()),  # static | model
        ("resolution", pa.string()),  # static: how extraction resolved it; model: null
        ("gap", pa.string()),  # model: the gap kind asked (null: static)
        ("language", pa.string()),
    ]
)


def distilled_table(graph: Graph, files: set[str], kept: list[tuple[Predicted, float]]) -> pa.Table:
    import pyarrow.compute as pc

    tri = graph.triples.filter(pc.is_in(graph.triples["file"], pa.array(sorted(files), pa.string())))
    n = tri.num_rows
    static = {
        "head": tri["head"].to_pylist(),
        "relation": tri["relation"].to_pylist(),
        "tail": tri["tail"].to_pylist(),
        "probability": [1.0] * n,
        "rank": [None] * n,
        "file": tri["file"].to_pylist(),
        "line": tri["line"].to_pylist(),
        "source": ["static"] * n,
        "resolution": tri["resolution"].to_pylist(),
        "gap": [None] * n,
        "language": tri["language"].to_pylist(),
    }
    kept = sorted(kept, key=lambda x: (x[0].slot.file, x[0].slot.line, x[0].slot.head, x[0].rank))
    model = {
        "head": [p.slot.head for p, _ in kept],
        "relation": [p.slot.relation for p, _ in kept],
        "tail": [p.tail for p, _ in kept],
        "probability": [q for _, q in kept],
        "rank": [p.rank for p, _ in kept],
        "file": [p.slot.file for p, _ in kept],
        "line": [p.slot.line for p, _ in kept],
        "source": ["model"] * len(kept),
        "resolution": [None] * len(kept),
        "gap": [p.slot.gap for p, _ in kept],
        "language": [graph.language.get(p.slot.head) for p, _ in kept],
    }
    return pa.concat_tables(
        [pa.table(static, schema=DISTILLED_SCHEMA), pa.table(model, schema=DISTILLED_SCHEMA)]
    )


def added_by_threshold(kept: list[tuple[Predicted, float]], thresholds: list[float]) -> dict:
    """Model triples written per relation: all of them and those at each threshold."""
    out: dict = {}
    for r in sorted({p.slot.relation for p, _ in kept}):
        probs = [q for p, q in kept if p.slot.relation == r]
        out[RELATION_NAMES[r]] = {
            "all": len(probs),
            **{f"{t:g}": sum(q >= t for q in probs) for t in thresholds},
        }
    return out


# --------------------------------------------------------------------------- the fitted artifact


def model_digest(model_dir: Path) -> str:
    h = hashlib.sha256()
    with (model_dir / WEIGHTS_FILE).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_fitted(path: Path, scorer: Scorer, calibrator: Calibrator, digest: str, cfg: DistillConfig) -> None:
    atomic.write_json(
        path,
        {
            "model_sha256": digest,
            "scorer": {
                "name": scorer.name,
                "features": list(FEATURES),
                "basis": list(BASIS),
                "weights": scorer.weights,
            },
            "calibrator": calibrator.to_dict(),
            # what shapes a question's candidates, hence the softmax the calibrators map
            "max_tail_tokens": cfg.max_tail_tokens,
        },
    )


def load_fitted(path: Path, digest: str) -> tuple[Scorer, Calibrator, int]:
    """The scorer, calibrator and longest candidate tail the distill stage fitted and asked with on
    dev, for the model they were fitted for."""
    if not path.is_file():
        raise GraphmerError(f"{path} not found: fit the calibrator first (`dvc repro distill`)")
    try:
        d = json.loads(path.read_text())
        features = d["scorer"]["features"], d["scorer"].get("basis")
        scorer = Scorer(d["scorer"]["name"], {k: tuple(v) for k, v in d["scorer"]["weights"].items()})
        calibrator, max_tokens = Calibrator.from_dict(d["calibrator"]), int(d["max_tail_tokens"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise GraphmerError(f"{path} is not a distill calibration file: {err!r}") from err
    if d.get("model_sha256") != digest:
        raise GraphmerError(f"{path} was fitted for another model: rerun `dvc repro distill`")
    if features != (list(FEATURES), list(BASIS)) or any(
        len(w) != len(BASIS) for w in scorer.weights.values()
    ):
        raise GraphmerError(
            f"{path} weighs {features}, this version {list(FEATURES)} as {list(BASIS)}: "
            "rerun `dvc repro distill`"
        )
    return scorer, calibrator, max_tokens


# --------------------------------------------------------------------------- the stage and the command


def _reader(roots: dict[str, Path]):
    """files.parquet paths (`<source>/<path>`) -> their bytes."""

    def read(path: str) -> bytes:
        source, rest = path.split("/", 1)
        return (roots[source] / rest).read_bytes()

    return read


def _setup(
    paths: PathsConfig, tokenizer: Path, local_kg: Path | None, roots: dict[str, Path], cfg: DistillConfig
):
    model, tok = load_model(paths.models, tokenizer)
    max_tokens = min(cfg.max_tail_tokens, model.cfg.leaves)  # no leaf group holds a longer tail
    corpus = Graph.load(paths.kg)
    local = corpus if local_kg is None else Graph.load(local_kg)
    ranking = Ranking.load(paths, tok, model.cfg.leaves)
    train_files = {p for p, s in read_split(paths.split).items() if s == "train"}
    ctx = Context(ranking, tok, model.cfg.leaves, max_tokens, corpus, local, _reader(roots))
    return model, ctx, TailIds(corpus, train_files, local), _validator(corpus, local, train_files)


def _validator(corpus: Graph, local: Graph, train_files: set[str]) -> Validator:
    """Checks against the graph of the distilled files; what counts as a type comes from the
    training graph's triples (and a folder's own), never from a held-out file's."""
    tri = local.triples.select(["head", "relation", "tail"]).to_pydict()
    graphs = (corpus,) if local is corpus else (corpus, local)
    types = type_ids(corpus, train_files) | (type_ids(local) if local is not corpus else set())
    return Validator(
        {**corpus.kind, **local.kind},
        list(zip(tri["head"], tri["relation"], tri["tail"])),
        types,
        project_reach(*graphs),
    )


def _fill(model, ctx, tail_ids, validator, scorer, calibrator, files, cfg, progress, max_questions) -> dict:
    """Ask every gap of `files` (a seeded sample of `max_questions`), keep the valid predictions."""
    g = ctx.local
    slots, gaps = gap_slots(g, files, cfg.languages, ctx.read)
    order = np.random.default_rng(cfg.seed).permutation(len(slots))[: max_questions or len(slots)]
    slots = [slots[i] for i in sorted(order)]
    asked = ask(model, ctx, slots, cfg.batch_size, progress, "gaps")
    preds = predictions(asked, scorer, cfg.top_k, tail_ids)
    probs = probabilities(preds, calibrator) if preds else np.zeros(0)
    kept, rejected = accept(preds, probs, validator)
    return {
        "slots": slots,
        "kept": kept,
        "summary": {
            "files": len(files),
            "gaps": dict(sorted(gaps.items())),
            "questions_asked": dict(sorted(Counter(s.gap for s in slots).items())),
            "questions_by_source": dict(sorted(Counter(_source(s.file) for s in slots).items())),
            "predictions": len(preds),
            "rejected": dict(sorted(rejected.items())),
            "added": added_by_threshold(kept, cfg.thresholds),
        },
    }


def distill(cfg: DistillConfig, paths: PathsConfig = PathsConfig(), progress: bool = True) -> dict:
    """The `distill` stage: fit the scorer and calibrator on dev, check them on test, fill the gaps
    of the `cfg.split` files; writes the distilled graph, the metrics and the fitted calibrator."""
    from graphmer.extract.pipeline import source_roots

    start = time.perf_counter()
    model, ctx, tail_ids, validator = _setup(paths, paths.tokenizer, None, source_roots(paths.raw), cfg)
    with torch.inference_mode():
        dev_slots, dev_skipped = hidden_slots(ctx.corpus, paths.samples, "dev", cfg, ctx.read)
        if not dev_slots:
            raise GraphmerError(
                f"no annotated {'/'.join(cfg.languages)} facts in the dev files to fit the scorer and "
                f"calibrators on ({dict(dev_skipped) or 'none at all'})"
            )
        dev = ask(model, ctx, dev_slots, cfg.batch_size, progress, "dev")
        folds = fold_scorers([a for a in dev if a.slot.truth])
        scorer, dev_mrr = compare_scorers(dev, folds)
        dev_versus_rules = versus_rules_on_dev(scorer, folds, dev, tail_ids, validator, cfg)
        test_slots, test_skipped = hidden_slots(ctx.corpus, paths.samples, "test", cfg, ctx.read)
        test = ask(model, ctx, test_slots, cfg.batch_size, progress, "test")
        chosen = check_scorer(scorer, dev, test, tail_ids, validator, cfg)
        baseline = check_scorer(
            fitted("rules", [a for a in dev if a.slot.truth]), dev, test, tail_ids, validator, cfg
        )
        calibrator, dev_preds = chosen.calibrator, chosen.dev_preds
        files = {p for p, s in read_split(paths.split).items() if s == cfg.split}
        filled = _fill(
            model, ctx, tail_ids, validator, scorer, calibrator, files, cfg, progress, cfg.max_questions
        )
    atomic.write_parquet(paths.distilled, distilled_table(ctx.corpus, files, filled["kept"]))
    save_fitted(paths.calibration, scorer, calibrator, model_digest(paths.models), cfg)
    dev_probs = probabilities(dev_preds, calibrator)
    dev_ece = ece(dev_probs, [p.correct for p in dev_preds], cfg.bins)  # ~0 by fit: 1e-16 noise
    metrics = {
        "seed": cfg.seed,
        "top_k": cfg.top_k,
        "scorer": {
            "chosen": scorer.name,
            "dev_mrr": dev_mrr,
            "weights": reported_weights(scorer),
            "dev_questions": len(dev),
            "dev_versus_rules": dev_versus_rules,
        },
        "calibration": {
            "method": CALIBRATION_METHODS[cfg.calibration],
            "min_points": cfg.min_calibration_points,
            "dev_predictions": len(dev_preds),
            "maps": {
                RELATION_NAMES[r]: calibrator.source(RELATION_NAMES[r])
                for r in sorted({p.slot.relation for p in dev_preds})
            },
            "dev_ece": None if dev_ece is None else round(dev_ece, 6),
            "bins": cfg.bins,
        },
        "test": check_metrics(chosen.test_preds, chosen.test_probs, test, scorer, cfg)
        | versus_rules(chosen, baseline, test, cfg),
        "rejected_hidden_fact_predictions": {
            "dev": dict(sorted(chosen.dev_rejected.items())),
            "test": dict(sorted(chosen.test_rejected.items())),
        },
        "skipped_hidden_facts": {
            "dev": dict(sorted(dev_skipped.items())),
            "test": dict(sorted(test_skipped.items())),
        },
        "distilled": {
            "split": cfg.split,
            **filled["summary"],
            "static_triples": _static_count(ctx.corpus, files),
        },
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_outputs(
        metrics, reliability(chosen.test_probs, [p.correct for p in chosen.test_preds], cfg.bins), paths
    )
    return metrics


def _static_count(graph: Graph, files: set[str]) -> int:
    return sum(1 for f in graph.triples["file"].to_pylist() if f in files)


def distill_folders(
    roots: dict[str, Path],
    out: Path,
    cfg: DistillConfig,
    paths: PathsConfig = PathsConfig(),
    workers: int = 1,
    progress: bool = True,
    *,
    tokenizer: Path | None = None,
    calibration: Path | None = None,
) -> dict:
    """`graphmer distill PATH... --out DIR`: static extraction of the folders, then the gaps of
    every file filled with the model, the scorer and calibrator the stage fitted on the corpus's dev
    files. Writes DIR/kg/ (the static graph), DIR/distilled.parquet and DIR/distill.json. The model
    and the corpus (its graph, split and candidates) are the table's; `tokenizer` and `calibration`
    name files kept elsewhere than beside the model (`paths.tokenizer`, `paths.calibration`)."""
    from graphmer.extract.pipeline import extract_kg

    start = time.perf_counter()
    out = Path(out)
    if not (paths.models / WEIGHTS_FILE).is_file():
        raise GraphmerError(f"{paths.models / WEIGHTS_FILE} not found: train a model first")
    scorer, calibrator, max_tokens = load_fitted(calibration or paths.calibration, model_digest(paths.models))
    extract_kg(roots, out / "kg", ExtractConfig(workers=workers), progress=progress)
    cfg = replace(cfg, max_tail_tokens=max_tokens)  # questions shaped as the calibrators were fitted
    model, ctx, tail_ids, validator = _setup(paths, tokenizer or paths.tokenizer, out / "kg", roots, cfg)
    files = {
        p
        for p, s in zip(
            *(pq.read_table(out / "kg" / FILES_TABLE)[c].to_pylist() for c in ("path", "skipped"))
        )
        if not s
    }
    with torch.inference_mode():
        filled = _fill(
            model, ctx, tail_ids, validator, scorer, calibrator, files, cfg, progress, cfg.max_questions
        )
    atomic.write_parquet(out / "distilled.parquet", distilled_table(ctx.local, files, filled["kept"]))
    summary = {"scorer": scorer.name, **filled["summary"], "static_triples": _static_count(ctx.local, files)}
    summary["seconds"] = round(time.perf_counter() - start, 1)
    atomic.write_json(out / "distill.json", summary)
    return summary


# --------------------------------------------------------------------------- metrics files


def write_outputs(metrics: dict, bins: list[dict], paths: PathsConfig) -> None:
    atomic.write_json(paths.metrics / "distill.json", metrics)
    cols = ["bin_low", "bin_high", "mean_probability", "accuracy", "predictions"]
    lines = [",".join(cols)] + [
        ",".join(f"{b[c]:.4f}" if isinstance(b[c], float) else str(b[c]) for c in cols) for b in bins
    ]
    atomic.write_text(paths.metrics / "distill_reliability.csv", "\n".join(lines) + "\n")
    atomic.write_text(paths.metrics / "distill.md", summary_table(metrics))


def _f(v) -> str:
    return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def summary_table(metrics: dict) -> str:
    """Test precision / coverage at each threshold, ECE, per relation and overall (markdown)."""
    test = metrics["test"]
    ts = list(test["thresholds"])
    cols = ["relation", "questions", "predictions", "accuracy@1", "ECE"]
    cols += [f"{k} p>={t}" for t in ts for k in ("precision", "coverage")]
    lines = [
        f"Scorer `{metrics['scorer']['chosen']}`; test hidden facts, the valid ones of the top "
        f"{metrics['top_k']} tails each (accuracy@1: of the valid first tails); ECE over "
        f"{metrics['calibration']['bins']} equal-width bins.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    rows = [(f"{name}", e) for name, e in test["per_relation"].items()] + [("**overall**", test)]
    for name, e in rows:
        cells = [name, str(e["questions"]), str(e["predictions"]), _f(e["accuracy_at_1"]), _f(e["ece"])]
        for t in ts:
            cells += [_f(e["thresholds"][t]["precision"]), _f(e["thresholds"][t]["coverage"])]
        lines.append("| " + " | ".join(cells) + " |")
    rules, diff = test["rules"], test["chosen_minus_rules"]
    cells = ["rules alone", str(rules["questions"]), str(rules["predictions"])]
    cells += [_f(rules["accuracy_at_1"]), _f(rules["ece"])]
    for t in ts:
        cells += [_f(rules["thresholds"][t]["precision"]), _f(rules["thresholds"][t]["coverage"])]
    lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Chosen scorer minus the rules alone (fitted and calibrated on dev the same way), same "
        "test questions, 95% paired-bootstrap interval:",
        "",
    ]
    for k, v in diff.items():
        lines.append(
            f"- {k}: {v['diff']:+.3f} [{v['ci95_low']:+.3f}, {v['ci95_high']:+.3f}]" if v else f"- {k}: –"
        )
    return "\n".join(lines) + "\n"
