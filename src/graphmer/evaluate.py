"""Held-out evaluation: numbers a reviewer can trust.

`evaluate.split` names the held-out files read: `dev` for every choice of params,
`test` for the reported numbers. Nothing is read before a leakage guard passes:
every window of that split comes from a file of that split, no held-out file's
content hash occurs among the training files, and every triple a training window
carries was extracted from a training file (checked against the graph itself).
Everything random (masks, injections, the triple sample) is fixed by
`evaluate.seed`, so experiments answer the same questions.

1. Masked accuracy on held-out windows drawn as in training: MLM on roots; MNM
   per token and whole tail (every token of the group right), per relation, for
   copyable tails (the tail's name is a word of the window's code) and the rest.
2. Tail prediction: each triple (head, r, tail) extracted from a held-out file and
   never carried by a training window asks for its leaf group, masked, among every
   distinct tail of r in the graph (samples/candidates.parquet); other true tails of
   (head, r) are left out of the ranking (filtered setting). The same questions are
   ranked by `model` (the window with its other leaf groups), `code_only` (the same
   model, every other leaf group emptied) and the cheap rules of
   `graphmer.baselines` (`frequency`, `copy`, `name_lookup`, `copy_name`), which
   count the same training graph the model was trained on, and `rule_by_relation`:
   for each relation the rule with the best MRR on the dev questions. MRR and Hits@1/3/10 in
   expectation over ties; the model's gain over each, with a paired bootstrap interval.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from graphmer import GraphmerError, atomic, baselines, progress_bar
from graphmer.checkpoint import load_model
from graphmer.config import EvaluateConfig, PathsConfig, SamplesConfig
from graphmer.kg import FILES_TABLE, TRIPLES_TABLE, entity_names, names_of
from graphmer.loader import IGNORE, LeafyChains, collate, compact, word_starts
from graphmer.model import MODEL_INPUTS, GraphMERT, masked_groups
from graphmer.ranking import Candidates, Question, answer, rank_metrics
from graphmer.relations import RELATION_NAMES
from graphmer.samples import CANDIDATES_TABLE, TAILS_TABLE, windows_table
from graphmer.split import read_split
from graphmer.tokenizer import tail_leaf_ids

# The rule of each relation with the best dev MRR (`rule_by_relation`), applied to the reported split.
BY_RELATION = "rule_by_relation"
RULES = (*baselines.RULES, BY_RELATION)
SYSTEMS = ("model", "code_only", *RULES)  # code_only with `evaluate.code_only`


def systems_of(results: dict) -> list[str]:
    """The systems a result holds, in SYSTEMS order."""
    return [s for s in SYSTEMS if s in results]


RANK_KEYS = ("mrr", "hits1", "hits3", "hits10")


# --------------------------------------------------------------------------- leakage


def check_leakage(samples_dir: Path, kg_dir: Path, split_path: Path, held_out: str) -> dict:
    """Fail unless the `held_out` windows come from files of that split whose content is not in
    training, and every triple of a training window was extracted from a training file."""
    files = pq.read_table(kg_dir / FILES_TABLE, columns=["path", "sha256"]).to_pydict()
    sha = dict(zip(files["path"], files["sha256"]))
    splits = read_split(split_path)
    used = {
        s: set(pq.read_table(samples_dir / windows_table(s), columns=["file"]).column("file").to_pylist())
        for s in ("train", held_out)
    }
    for s, paths in used.items():
        unknown = sorted(p for p in paths if p not in sha)
        if unknown:
            raise GraphmerError(
                f"leakage guard: {s} window file {unknown[0]} is not in {kg_dir / FILES_TABLE}"
            )
        wrong = sorted(p for p in paths if splits.get(p) != s)
        if wrong:
            raise GraphmerError(
                f"leakage guard: {s} windows come from {len(wrong)} file(s) outside the {s} split, "
                f"e.g. {wrong[0]} ({splits.get(wrong[0])}); rebuild the samples"
            )
    train_hashes = {sha[p] for p in used["train"]}
    shared = sorted(p for p in used[held_out] if sha[p] in train_hashes)
    if shared:
        raise GraphmerError(
            f"leakage guard: {len(shared)} {held_out} file(s) have the content of a training file, "
            f"e.g. {shared[0]}"
        )
    foreign = foreign_training_triples(samples_dir, kg_dir, splits)
    if foreign:
        h, r, t = foreign[0]
        raise GraphmerError(
            f"leakage guard: training windows carry {len(foreign)} triple(s) extracted from no training "
            f"file, e.g. ({h}, {RELATION_NAMES[r]}, {t}); rebuild the samples"
        )
    return {"train_files": len(used["train"]), f"{held_out}_files": len(used[held_out]), "shared_content": 0}


def foreign_training_triples(samples_dir: Path, kg_dir: Path, splits: dict[str, str]) -> list[tuple]:
    """Triples of training windows that no training file yields, from the graph itself (not from
    what the samples stage says of them)."""
    tri = pq.read_table(kg_dir / TRIPLES_TABLE, columns=["head", "relation", "tail", "file"]).to_pydict()
    allowed = {
        (h, r, t)
        for h, r, t, f in zip(tri["head"], tri["relation"], tri["tail"], tri["file"])
        if splits.get(f) == "train"
    }
    tail_entity = pq.read_table(samples_dir / TAILS_TABLE, columns=["tail"])["tail"].to_pylist()
    train = pq.read_table(
        samples_dir / windows_table("train"), columns=["cand_head", "cand_relation", "cand_tail"]
    )
    carried = set(
        zip(
            _flat(train, "cand_head").tolist(),
            _flat(train, "cand_relation").tolist(),
            (tail_entity[i] for i in _flat(train, "cand_tail").tolist()),
        )
    )
    return sorted(carried - allowed)


# --------------------------------------------------------------------------- masked accuracy


@torch.no_grad()
def masked_accuracy(
    model: GraphMERT, ds: LeafyChains, windows: int, seed: int, batch_size: int, progress: bool = False
) -> dict:
    """MLM on masked roots; MNM per token and per whole tail, by relation and copyability."""
    R, L = ds.R, ds.L
    order = np.random.default_rng(seed).permutation(len(ds))[: windows or len(ds)]
    mlm = np.zeros(2)
    # per (relation, copyable): tokens, right tokens, groups, whole tails right
    mnm = np.zeros((len(RELATION_NAMES), 2, 4))
    for lo in progress_bar(
        range(0, len(order), batch_size), desc="masked", unit="batch", disable=not progress
    ):
        batch = compact(collate([ds.draw(int(i), 0) for i in order[lo : lo + batch_size]]), R, L)
        hidden = model(*(batch[k] for k in MODEL_INPUTS))
        labels = batch["labels"]
        b, p = torch.nonzero(labels[:, :R] != IGNORE, as_tuple=True)  # masked roots: the vocabulary head
        mlm += [int((model.logits(hidden[b, p]).argmax(-1) == labels[b, p]).sum()), len(b)]
        b, first, targets = masked_groups(batch, R, L)  # masked tails: with the copy path
        _, guess = model.tail_logprobs(hidden, batch, b, first, targets)
        real = targets != IGNORE
        k = (first - R) // L
        rel, copy = batch["group_relation"][b, k], batch["group_copyable"][b, k].long()
        right_tokens = ((guess == targets) & real).sum(1)
        for i in range(len(b)):
            n = int(real[i].sum())
            mnm[rel[i], copy[i]] += [n, int(right_tokens[i]), 1, int(right_tokens[i]) == n]

    def summary(m: np.ndarray) -> dict:
        tokens, right_tokens, groups, exact = m
        if groups == 0:
            return {"tails": 0, "note": "no masked tails"}
        return {
            "tails": int(groups),
            "tokens": int(tokens),
            "token_acc": float(right_tokens / tokens),
            "exact_match": float(exact / groups),
        }

    return {
        "windows": len(order),
        "mlm": {"tokens": int(mlm[1]), "acc": float(mlm[0] / mlm[1])}
        if mlm[1]
        else {"tokens": 0, "note": "no masked roots: no validation windows"},
        "mnm": {
            "overall": summary(mnm.sum((0, 1))),
            "copyable": summary(mnm[:, 1].sum(0)),
            "non_copyable": summary(mnm[:, 0].sum(0)),
            "per_relation": {
                name: summary(mnm[r].sum(0))
                | {"copyable": summary(mnm[r, 1]), "non_copyable": summary(mnm[r, 0])}
                for r, name in enumerate(RELATION_NAMES)
            },
        },
    }


# --------------------------------------------------------------------------- held-out triples


@dataclass(frozen=True)
class HeldOut:
    window: int
    row: int  # candidate row within the window
    head: str
    relation: int
    tail: str  # entity id
    copyable: bool


def _flat(table: pa.Table, column: str) -> np.ndarray:
    return pc.list_flatten(table[column]).to_numpy(zero_copy_only=False)


def held_out_triples(
    samples_dir: Path, split: str, seed: int, per_relation: int
) -> tuple[list[HeldOut], dict]:
    """A seeded sample, per relation, of the distinct triples extracted from `split` files and never
    carried by a training window (each at one of its anchors, drawn with the same seed); and counts."""
    cols = ["cand_head", "cand_relation", "cand_tail"]
    tail_entity = np.asarray(pq.read_table(samples_dir / TAILS_TABLE, columns=["tail"])["tail"].to_pylist())
    train = pq.read_table(samples_dir / windows_table("train"), columns=cols)
    seen = set(
        zip(
            _flat(train, "cand_head"),
            _flat(train, "cand_relation").tolist(),
            tail_entity[_flat(train, "cand_tail")],
        )
    )
    held = pq.read_table(samples_dir / windows_table(split), columns=[*cols, "cand_copyable", "cand_train"])
    heads, rels = _flat(held, "cand_head"), _flat(held, "cand_relation").astype(int)
    tails, copy = tail_entity[_flat(held, "cand_tail")], _flat(held, "cand_copyable")
    from_train_file = _flat(held, "cand_train")
    window = pc.list_parent_indices(held["cand_relation"]).to_numpy()
    first_row = np.concatenate([[0], np.cumsum(pc.list_value_length(held["cand_relation"]).to_numpy())])
    occurrences: dict[tuple, list[int]] = defaultdict(list)
    excluded = np.zeros(len(RELATION_NAMES), np.int64)
    for i, key in enumerate(zip(heads, rels.tolist(), tails)):
        if from_train_file[i]:
            continue  # a training fact shown as context, not a question
        if key in seen:
            excluded[key[1]] += 1
        else:
            occurrences[key].append(i)
    rng = np.random.default_rng(seed)
    by_relation: dict[int, list[tuple]] = defaultdict(list)
    for key in sorted(occurrences):
        by_relation[key[1]].append(key)
    chosen: list[HeldOut] = []
    counts = {}
    for r, name in enumerate(RELATION_NAMES):
        keys = by_relation.get(r, [])
        pick = rng.permutation(len(keys))[: per_relation or len(keys)]
        for j in sorted(pick):
            occ = occurrences[keys[j]]
            i = occ[rng.integers(len(occ))]
            w = int(window[i])
            chosen.append(HeldOut(w, i - int(first_row[w]), heads[i], r, tails[i], bool(copy[i])))
        counts[name] = {"held_out_triples": len(keys), "seen_in_training": int(excluded[r])}
    return chosen, counts


def true_tails(kg_dir: Path, heads: set[str], tok, leaves: int) -> dict[tuple[str, int], set[tuple]]:
    """(head, relation) -> leaf-token sequences of all its tails in the whole graph."""
    tri = pq.read_table(kg_dir / TRIPLES_TABLE, columns=["head", "relation", "tail"])
    tri = tri.filter(pc.is_in(tri["head"], pa.array(sorted(heads), pa.string()))).to_pydict()
    ids = tail_leaf_ids(tok, names_of(kg_dir, tri["tail"]), leaves)
    out: dict[tuple[str, int], set[tuple]] = defaultdict(set)
    for h, r, t in zip(tri["head"], tri["relation"], tri["tail"]):
        out[(h, r)].add(ids[t])
    return out


# --------------------------------------------------------------------------- tail prediction


@dataclass(frozen=True)
class Ranking:
    """What every split's questions are ranked with: each relation's candidates, the name
    lookup of the training graph and the vocabulary's word edges (read once per evaluation)."""

    cands: dict[int, Candidates]
    lookup: baselines.NameLookup
    begins: np.ndarray
    ends: np.ndarray

    @classmethod
    def load(cls, paths: PathsConfig, tok, leaves: int) -> Ranking:
        table = pq.read_table(paths.samples / CANDIDATES_TABLE)
        train_files = {p for p, s in read_split(paths.split).items() if s == "train"}
        return cls(
            {r: Candidates.of(table, r, leaves) for r in range(len(RELATION_NAMES))},
            baselines.NameLookup.from_kg(paths.kg, train_files, tok, leaves),
            *word_starts(tok.get_vocab()),
        )


class Asker:
    """The held-out questions of one split, each with its candidates, filtered target and every
    cheap rule's scores: what tail prediction and the choice of rules share."""

    def __init__(
        self, ds: LeafyChains, split: str, paths: PathsConfig, tok, cfg: EvaluateConfig, ranking: Ranking
    ):
        self.ds, self.seed, self.ranking, self.cands = ds, cfg.seed, ranking, ranking.cands
        self.held, self.counts = held_out_triples(paths.samples, split, cfg.seed, cfg.triples_per_relation)
        heads = {h.head for h in self.held}
        self.truth = true_tails(paths.kg, heads, tok, ds.L)
        self.head_name = entity_names(paths.kg, heads)

    def question(self, h: HeldOut) -> Question:
        rng = np.random.default_rng((self.seed, h.window, h.row))
        item = self.ds.inject(h.window, rng, forced=h.row)
        anchor = int(self.ds.cands[h.window][0][h.row])
        return Question(item, anchor, h.relation, int(item["head_end"][anchor]))

    def grade(self, h: HeldOut, q: Question) -> tuple[int, torch.Tensor, dict[str, torch.Tensor]]:
        """The target's candidate row, the other true tails (left out), every rule's scores."""
        c, ds = self.cands[h.relation], self.ds
        idx = c.index()
        target = idx.get(tuple(ds.tail_ids[ds.cands[h.window][3][h.row]].tolist()))
        if target is None:
            raise GraphmerError(f"tail {h.tail} of a held-out triple is not among the candidates")
        others = {idx[t] for t in self.truth[(h.head, h.relation)] if t in idx} - {target}
        exclude = torch.zeros(len(c), dtype=torch.bool)
        exclude[list(others)] = True
        name = self.head_name.get(h.head, h.head.rsplit(".", 1)[-1])
        roots = ds.roots_ids[h.window]
        k = self.ranking
        rules = baselines.baseline_scores(
            roots, q.anchor, q.head_end, h.relation, name, c, idx, k.lookup, k.begins, k.ends
        )
        return target, exclude, rules


def rule_by_relation(asker: Asker) -> dict[int, str]:
    """For each relation, the cheap rule with the best MRR on `asker`'s questions (the dev split):
    the strongest rule one can pick without training, and without looking at test."""
    rr: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for h in asker.held:
        target, exclude, rules = asker.grade(h, asker.question(h))
        for s in baselines.RULES:
            rr[h.relation][s].append(rank_metrics(rules[s], target, exclude)["rr"])
    overall = {s: np.mean([x for r in rr.values() for x in r[s]] or [0.0]) for s in baselines.RULES}
    fallback = max(baselines.RULES, key=lambda s: (overall[s], s))  # a relation dev never asks
    return {
        r: max(baselines.RULES, key=lambda s: (np.mean(rr[r][s]), s)) if r in rr else fallback
        for r in range(len(RELATION_NAMES))
    }


def tail_prediction(
    model: GraphMERT,
    asker: Asker,
    choice: dict[int, str],
    cfg: EvaluateConfig,
    progress: bool = False,
) -> dict:
    """Every system on `asker`'s questions; `choice` is `rule_by_relation` of the dev split."""
    results: dict[str, list[dict]] = {s: [] for s in SYSTEMS if s != "code_only" or cfg.code_only}
    chunk = max(1, cfg.batch_size // asker.ds.L)
    held = asker.held
    for lo in progress_bar(range(0, len(held), chunk), desc="tails", unit="chunk", disable=not progress):
        part = held[lo : lo + chunk]
        questions = [asker.question(h) for h in part]
        their = [asker.cands[h.relation] for h in part]
        scores = {"model": answer(model, questions, their, graph=True, batch_size=cfg.batch_size)}
        if cfg.code_only:
            scores["code_only"] = answer(model, questions, their, graph=False, batch_size=cfg.batch_size)
        for qi, h in enumerate(part):
            target, exclude, rules = asker.grade(h, questions[qi])
            rules[BY_RELATION] = rules[choice[h.relation]]
            system_scores = {**{s: scores[s][qi] for s in scores}, **rules}
            for s in results:
                m = rank_metrics(system_scores[s], target, exclude)
                results[s].append(m | {"relation": h.relation, "copyable": h.copyable})
    candidates = {RELATION_NAMES[r]: len(c) for r, c in asker.cands.items()}
    out = summarize(results, asker.counts, candidates, cfg.seed)
    out["rule_by_relation"] = {RELATION_NAMES[r]: s for r, s in choice.items()}
    return out


def _means(rows: list[dict]) -> dict:
    if not rows:
        return {"triples": 0}
    return {
        "triples": len(rows),
        **{k: float(np.mean([m["rr" if k == "mrr" else k] for m in rows])) for k in RANK_KEYS},
    }


def paired_interval(d, seed: int, resamples: int = 1000, key: str = "diff") -> dict:
    """The mean of per-question differences `d` (system a minus system b on the same questions)
    with a 95% paired-bootstrap interval (questions resampled with replacement, percentile
    interval); {} without questions."""
    d = np.asarray(d, np.float64)
    if len(d) == 0:
        return {}
    means = d[np.random.default_rng(seed).integers(len(d), size=(resamples, len(d)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {key: float(d.mean()), "ci95_low": float(low), "ci95_high": float(high)}


def paired_gain(a: list[dict], b: list[dict], seed: int, resamples: int = 1000) -> dict:
    """MRR of system a minus system b on the same questions, with its paired interval."""
    return paired_interval([x["rr"] - y["rr"] for x, y in zip(a, b)], seed, resamples, "mrr_diff")


def _gains(rows: dict[str, list[dict]], seed: int) -> dict:
    return {f"model_vs_{s}": paired_gain(rows["model"], rows[s], seed) for s in rows if s != "model"}


def summarize(results: dict[str, list[dict]], counts: dict, candidates: dict, seed: int) -> dict:
    out: dict = {}
    systems = systems_of(results)
    for part, keep in (
        ("overall", lambda m: True),
        ("copyable", lambda m: m["copyable"]),
        ("non_copyable", lambda m: not m["copyable"]),
    ):
        rows = {s: [m for m in results[s] if keep(m)] for s in systems}
        out[part] = {s: _means(rows[s]) for s in systems} | {"gain": _gains(rows, seed)}
    per = {}
    for r, name in enumerate(RELATION_NAMES):
        entry = {**counts[name], "candidates": candidates[name]}
        rows = {s: [m for m in results[s] if m["relation"] == r] for s in systems}
        if not rows["model"]:
            entry["note"] = "no held-out triples unseen in training"
        else:
            entry["evaluated"] = len(rows["model"])
            entry["copyable_share"] = float(np.mean([m["copyable"] for m in rows["model"]]))
            entry |= {s: _means(rows[s]) for s in systems}
            entry["gain"] = _gains(rows, seed)
            entry["non_copyable"] = {s: _means([m for m in rows[s] if not m["copyable"]]) for s in systems}
        per[name] = entry
    out["per_relation"] = per
    out["held_out_triples"] = sum(c["held_out_triples"] for c in counts.values())
    # The rule the model must beat: the best overall MRR among the rules that need no training.
    rules = {s: out["overall"][s].get("mrr", 0.0) for s in RULES if s in out["overall"]}
    out["strongest_baseline"] = max(rules, key=lambda s: (rules[s], s))
    out["seen_in_training_excluded"] = sum(c["seen_in_training"] for c in counts.values())
    return out


# --------------------------------------------------------------------------- the stage


def evaluate(
    cfg: EvaluateConfig,
    samples: SamplesConfig,
    paths: PathsConfig = PathsConfig(),
    progress: bool = True,
) -> dict:
    """The `evaluate` stage: the leakage guard, masked accuracy and tail prediction on `cfg.split`;
    writes metrics/eval.json, the per-relation table (eval_relations.csv, .md) and the plot data
    (eval_hits10/<system>.csv) in `paths.metrics`."""
    leakage = check_leakage(paths.samples, paths.kg, paths.split, cfg.split)
    model, tok = load_model(paths.models, paths.tokenizer)
    if (model.cfg.roots, model.cfg.leaves) != (samples.roots, samples.leaves):
        raise GraphmerError(
            f"the model was trained on windows of {model.cfg.roots} roots x {model.cfg.leaves} leaves, "
            f"the samples have {samples.roots} x {samples.leaves}: retrain (`dvc repro train`)"
        )
    torch.manual_seed(cfg.seed)
    ds = _split_windows(paths, tok, samples, cfg, cfg.split)
    with torch.inference_mode():
        masked = masked_accuracy(model, ds, cfg.windows, cfg.seed, cfg.batch_size, progress)
        ranking = Ranking.load(paths, tok, ds.L)
        dev = ds if cfg.split == "dev" else _split_windows(paths, tok, samples, cfg, "dev")
        choice = rule_by_relation(Asker(dev, "dev", paths, tok, cfg, ranking))
        tails = tail_prediction(model, Asker(ds, cfg.split, paths, tok, cfg, ranking), choice, cfg, progress)
    metrics = {"seed": cfg.seed, "leakage": leakage, "masked": masked, "tail_prediction": tails}
    write_outputs(metrics, paths)
    return metrics


def _split_windows(paths: PathsConfig, tok, samples: SamplesConfig, cfg: EvaluateConfig, split: str):
    return LeafyChains(
        paths.samples / windows_table(split),
        paths.samples / TAILS_TABLE,
        tok.get_vocab(),
        samples.roots,
        samples.leaves,
        samples,
        cfg.seed,
    )


def relation_rows(metrics: dict) -> list[dict]:
    """One row per relation: every system's rank metrics, the model's gain over the strongest rule."""
    tp = metrics["tail_prediction"]
    best = tp["strongest_baseline"]
    systems = systems_of(tp["overall"])
    rows = []
    for name, e in tp["per_relation"].items():
        mnm = metrics["masked"]["mnm"]["per_relation"][name]
        row = {
            "relation": name,
            "held_out_triples": e["held_out_triples"],
            "evaluated": e.get("evaluated", 0),
            "copyable_share": e.get("copyable_share"),
            "candidates": e["candidates"],
        }
        for s in systems:
            for k in RANK_KEYS:
                row[f"{s}_{k}"] = e.get(s, {}).get(k)
        gain = e.get("gain", {}).get(f"model_vs_{best}", {})
        for k in ("mrr_diff", "ci95_low", "ci95_high"):
            row[f"model_vs_strongest_{k}"] = gain.get(k)
        row["mnm_token_acc"] = mnm.get("token_acc")
        row["mnm_exact_match"] = mnm.get("exact_match")
        rows.append(row)
    return rows


def _fmt(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _gain(g: dict) -> str:
    """A paired MRR difference with its 95% interval, e.g. +0.031 [-0.004, +0.066]."""
    if g.get("mrr_diff") is None:
        return "–"
    return f"{g['mrr_diff']:+.3f} [{g['ci95_low']:+.3f}, {g['ci95_high']:+.3f}]"


def write_outputs(metrics: dict, paths: PathsConfig) -> None:
    table = paths.metrics / "eval_relations"  # .csv and .md
    plots = paths.metrics / "eval_hits10"  # <system>.csv: relation, hits10
    rows = relation_rows(metrics)
    atomic.write_json(paths.metrics / "eval.json", metrics)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    atomic.write_text(table.with_suffix(".csv"), buf.getvalue())
    tp = metrics["tail_prediction"]
    best = tp["strongest_baseline"]
    systems = systems_of(tp["overall"])
    mrr_cols = [f"{s}_mrr" for s in systems]
    cols = ["relation", "held_out_triples", "evaluated", "copyable_share", "model_hits1", "model_hits10"]
    cols += [*mrr_cols, "model_vs_strongest_mrr", "mnm_exact_match"]
    lines = [
        f"Strongest baseline: `{best}`; the gain column is model MRR minus {best} MRR with a 95% paired "
        "bootstrap interval.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        gain = {k: r[f"model_vs_strongest_{k}"] for k in ("mrr_diff", "ci95_low", "ci95_high")}
        lines.append("| " + " | ".join(_gain(gain) if c == cols[-2] else _fmt(r[c]) for c in cols) + " |")
    for part in ("overall", "copyable", "non_copyable"):
        cells = [
            f"**{part}**",
            str(tp["held_out_triples"]) if part == "overall" else "",
            str(tp[part]["model"]["triples"]),
            "",
            _fmt(tp[part]["model"].get("hits1")),
            _fmt(tp[part]["model"].get("hits10")),
        ]
        cells += [_fmt(tp[part][s].get("mrr")) for s in systems]
        cells += [_gain(tp[part]["gain"][f"model_vs_{best}"]), ""]
        lines.append("| " + " | ".join(cells) + " |")
    atomic.write_text(table.with_suffix(".md"), "\n".join(lines) + "\n")
    plots.mkdir(parents=True, exist_ok=True)
    for s in systems:
        plot = [f"{r['relation']},{r[f'{s}_hits10']:.4f}" for r in rows if r["evaluated"]]
        atomic.write_text(plots / f"{s}.csv", "\n".join(["relation,hits10", *plot]) + "\n")
