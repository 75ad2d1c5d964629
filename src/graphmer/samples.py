"""GraphMERT leafy-chain samples for code: windows of root tokens with anchored graph triples.

A window holds `roots` (R) code tokens; root i owns leaf slots R + i*L ... R + i*L + L-1.
A head entity is anchored at the first root token of each of its mentions in the
window (a definition or a resolved reference, from mentions.parquet), and every
triple (head, relation, tail) becomes a candidate for that anchor's leaf group:
the tail's short name in BPE tokens. The loader (`graphmer.loader`) picks one
candidate per anchor each epoch, so nothing about the injection is stored.

Only triples extracted from training files are candidates in training windows; a
dev or test window also carries the triples extracted from files of its own split
(the held-out facts evaluation asks for), flagged by `cand_train` = False.

Outputs in `out_dir`: train.parquet, dev.parquet and test.parquet (one row per window),
tails.parquet (the tail vocabulary: entity id, name, token ids) and
candidates.parquet (every distinct tail of each relation in the whole graph as leaf
tokens, with its count in the training graph: what tail prediction ranks).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from graphmer import GraphmerError, atomic, progress_bar
from graphmer.config import SamplesConfig
from graphmer.kg import MENTIONS_TABLE, TRIPLES_TABLE, names_of
from graphmer.relations import NUM_RELATIONS, RELATION_NAMES
from graphmer.split import SPLITS, read_split
from graphmer.tokenizer import IDENTIFIER, leaf_ids, tail_leaf_ids
from graphmer.tokenizer import load as load_tokenizer

# The tables this stage writes into its folder (PathsConfig.samples), by file name.
TAILS_TABLE = "tails.parquet"
CANDIDATES_TABLE = "candidates.parquet"


def windows_table(split: str) -> str:
    """The file name of the windows of `split` (train, dev or test)."""
    return f"{split}.parquet"


WINDOW_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("start", pa.int32()),  # index of the first root in the file's token sequence
        ("roots", pa.list_(pa.int32())),  # <= R token ids (the loader pads)
        ("cand_anchor", pa.list_(pa.int16())),  # root index of the head's first token
        ("cand_end", pa.list_(pa.int16())),  # root index just past the head mention
        ("cand_relation", pa.list_(pa.int8())),
        ("cand_tail", pa.list_(pa.int32())),  # row of tails.parquet
        ("cand_copyable", pa.list_(pa.bool_())),  # the tail's name is a word of the window's code
        ("cand_head", pa.list_(pa.string())),  # the head's entity id (evaluation: seen in training?)
        ("cand_train", pa.list_(pa.bool_())),  # the triple was extracted from a training file
    ]
)
TAIL_SCHEMA = pa.schema(
    [("tail", pa.string()), ("name", pa.string()), ("ids", pa.list_(pa.int32())), ("truncated", pa.bool_())]
)
CANDIDATE_SCHEMA = pa.schema(
    [
        ("relation", pa.int8()),
        ("name", pa.string()),
        ("ids", pa.list_(pa.int32())),  # leaf tokens (<= L); unique per relation
        ("train_count", pa.int32()),  # triples with this tail and relation extracted from training files
        ("count", pa.int32()),  # ... from any file
    ]
)


class Tails:
    """Tail entities as token sequences, numbered in order of first use."""

    def __init__(self, tok, leaves: int):
        self.tok, self.leaves = tok, leaves
        self.index: dict[str, int] = {}
        self.rows: list[tuple[str, str, list[int], bool]] = []

    def get(self, tail: str, name: str) -> int:
        if tail not in self.index:
            (ids,) = leaf_ids(self.tok, [name], self.leaves + 1)
            self.index[tail] = len(self.rows)
            self.rows.append((tail, name, list(ids[: self.leaves]), len(ids) > self.leaves))
        return self.index[tail]

    def table(self) -> pa.Table:
        cols = list(zip(*self.rows)) if self.rows else [[], [], [], []]
        return pa.table(dict(zip(TAIL_SCHEMA.names, map(list, cols))), schema=TAIL_SCHEMA)


def window_starts(n: int, cfg: SamplesConfig) -> list[int]:
    """Starts of windows of `cfg.roots` tokens, `cfg.stride` apart, covering n tokens; a short file
    gets one (padded) window."""
    if n <= cfg.roots:
        return [0]
    starts = list(range(0, n - cfg.roots + 1, cfg.stride))
    if starts[-1] + cfg.roots < n:
        starts.append(n - cfg.roots)
    return starts


def char_offsets(data: bytes, text: str, byte_positions: np.ndarray) -> np.ndarray:
    """Byte offsets -> str offsets (identity for ASCII)."""
    if len(data) == len(text):
        return byte_positions
    lead = (np.frombuffer(data, dtype=np.uint8) & 0xC0) != 0x80
    chars_before = np.concatenate([[0], np.cumsum(lead)])
    return chars_before[byte_positions]


def mention_tokens(
    tok_ends: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Token span [first, last] of each char span: first token ending after start, ... after end-1."""
    first = np.searchsorted(tok_ends, starts, side="right")
    last = np.searchsorted(tok_ends, np.maximum(ends - 1, starts), side="right")
    return first, last


class KG:
    """What the sampler needs of the knowledge graph, indexed for lookups: each head's triples
    with the split of the file each was extracted from."""

    def __init__(self, kg_dir: Path, splits: dict[str, str]):
        cols = ["head", "relation", "tail", "file"]
        tri = pq.read_table(kg_dir / TRIPLES_TABLE, columns=cols).to_pydict()
        self.out: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
        for h, r, t, f in zip(tri["head"], tri["relation"], tri["tail"], tri["file"]):
            if splits.get(f) in SPLITS:  # a duplicate file's triples are nobody's
                self.out[h].append((r, t, splits[f]))
        self.name = names_of(kg_dir, (t for triples in self.out.values() for _, t, _ in triples))
        men = pq.read_table(kg_dir / MENTIONS_TABLE).to_pydict()
        self.mentions: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        for e, f, s, t in zip(men["entity_id"], men["file"], men["start_byte"], men["end_byte"]):
            if e in self.out:
                self.mentions[f].append((e, s, t))


def is_word_of(name: str, chars: str, words: set[str]) -> bool:
    """Does `name` occur in the code as a whole word (or dotted name), not inside a longer one?
    (A dotted name's edges are `\\w`, wider than IDENTIFIER's ASCII class: a non-ASCII letter beside
    it makes it part of a longer word. Changing that would change the samples' `cand_copyable`.)"""
    if name in words:
        return True
    return "." in name and re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", chars) is not None


def file_windows(
    path: str, split: str, data: bytes, tok, kg: KG, tails: Tails, cfg: SamplesConfig
) -> list[dict]:
    """The windows of one file; a window of split S carries the triples from training files and
    from files of S."""
    text = data.decode("utf-8")
    enc = tok.encode(text)
    ids = np.asarray(enc.ids, dtype=np.int32)
    offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
    mentions = sorted(kg.mentions.get(path, []), key=lambda m: (m[1], m[0]))
    if mentions:
        spans = np.asarray([(s, e) for _, s, e in mentions], dtype=np.int64)
        cspans = char_offsets(data, text, spans)
        first, last = mention_tokens(offsets[:, 1], cspans[:, 0], cspans[:, 1])
    rows = []
    for w in window_starts(len(ids), cfg):
        end = min(w + cfg.roots, len(ids))
        chars = text[offsets[w, 0] : offsets[end - 1, 1]] if end > w else ""
        words = set(IDENTIFIER.findall(chars))
        cand: dict[str, list] = {k: [] for k in WINDOW_SCHEMA.names[3:]}
        anchored: set[int] = set()
        for k, (entity, _, _) in enumerate(mentions):
            a = int(first[k]) - w
            if not 0 <= a < end - w or a in anchored:
                continue
            anchored.add(a)  # one head per root: the first mention starting there
            head_end = min(int(last[k]) + 1 - w, end - w)
            for rel, tail, origin in kg.out[entity]:
                if origin not in ("train", split):
                    continue
                name = kg.name[tail]
                cand["cand_anchor"].append(a)
                cand["cand_end"].append(head_end)
                cand["cand_relation"].append(rel)
                cand["cand_tail"].append(tails.get(tail, name))
                cand["cand_copyable"].append(is_word_of(name, chars, words))
                cand["cand_head"].append(entity)
                cand["cand_train"].append(origin == "train")
        rows.append({"file": path, "start": w, "roots": ids[w:end].tolist(), **cand})
    return rows


def build_samples(
    raw_dir: str | Path,
    kg_dir: str | Path,
    tokenizer_path: str | Path,
    split_path: str | Path,
    out_dir: str | Path,
    cfg: SamplesConfig,
    metrics_path: str | Path | None = None,
    progress: bool = True,
) -> dict:
    raw_dir, kg_dir, out_dir = Path(raw_dir), Path(kg_dir), Path(out_dir)
    tok = load_tokenizer(tokenizer_path)
    splits = read_split(split_path)
    if not any(s in SPLITS for s in splits.values()):
        raise GraphmerError(f"no extracted files in {split_path}: the corpus is empty")
    kg = KG(kg_dir, splits)
    tails = Tails(tok, cfg.leaves)
    windows: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for path, split in progress_bar(
        sorted(splits.items()), desc="samples", unit="file", disable=not progress
    ):
        if split in SPLITS:
            data = (raw_dir / path).read_bytes()
            windows[split] += file_windows(path, split, data, tok, kg, tails, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in windows.items():
        table = pa.Table.from_pylist(rows, schema=WINDOW_SCHEMA)
        atomic.write_parquet(out_dir / windows_table(split), table)
    tail_table = tails.table()
    candidates = candidate_table(kg_dir, splits, tok, cfg.leaves)
    for name, table in ((TAILS_TABLE, tail_table), (CANDIDATES_TABLE, candidates)):
        atomic.write_parquet(out_dir / name, table)
    metrics = sample_metrics(windows, tail_table, cfg, splits)
    rel = np.bincount(candidates.column("relation").to_numpy(), minlength=NUM_RELATIONS)
    metrics["candidates_per_relation"] = {name: int(rel[i]) for i, name in enumerate(RELATION_NAMES)}
    if metrics_path is not None:
        atomic.write_json(metrics_path, metrics)
    return metrics


def candidate_table(kg_dir: Path, splits: dict[str, str], tok, leaves: int) -> pa.Table:
    """Distinct tails per relation as leaf-token sequences (the tokens a leaf group holds),
    counted over the training graph (triples from training files) and the whole graph."""
    tri = pq.read_table(kg_dir / TRIPLES_TABLE, columns=["relation", "tail", "file"]).to_pydict()
    name_of = names_of(kg_dir, tri["tail"])
    ids_of = tail_leaf_ids(tok, name_of, leaves)
    train, total = Counter(), Counter()
    first_name: dict[tuple, str] = {}
    for r, t, f in zip(tri["relation"], tri["tail"], tri["file"]):
        name, ids = name_of[t], ids_of[t]
        if not ids:
            continue
        key = (r, ids)
        first_name[key] = min(first_name.get(key, name), name)
        total[key] += 1
        train[key] += splits.get(f) == "train"
    keys = sorted(total)
    return pa.table(
        {
            "relation": [r for r, _ in keys],
            "name": [first_name[k] for k in keys],
            "ids": [list(ids) for _, ids in keys],
            "train_count": [train[k] for k in keys],
            "count": [total[k] for k in keys],
        },
        schema=CANDIDATE_SCHEMA,
    )


def sample_metrics(
    windows: dict[str, list[dict]], tails: pa.Table, cfg: SamplesConfig, splits: dict[str, str]
) -> dict:
    tail_len = np.asarray([len(ids) for ids in tails.column("ids").to_pylist()] or [0])
    truncated = tails.column("truncated").to_pylist()
    out: dict = {
        "layout": {
            "roots": cfg.roots,
            "leaves": cfg.leaves,
            "stride": cfg.stride,
            "sequence_length": cfg.roots + cfg.roots * cfg.leaves,
        },
        "files": dict(Counter(splits.values())),
        "tails": len(tail_len),
        "tails_truncated": int(sum(truncated)),
    }
    for split, rows in windows.items():
        anchors = [len(set(r["cand_anchor"])) for r in rows]
        cands = sum(len(r["cand_relation"]) for r in rows)
        # Expected filled leaf slots with one candidate per anchor, drawn uniformly.
        filled = 0.0
        for r in rows:
            per_anchor: dict[int, list[int]] = defaultdict(list)
            for a, t in zip(r["cand_anchor"], r["cand_tail"]):
                per_anchor[a].append(int(tail_len[t]))
            filled += sum(np.mean(v) for v in per_anchor.values())
        rel = Counter(x for r in rows for x in r["cand_relation"])
        copy = sum(sum(r["cand_copyable"]) for r in rows)
        out[split] = {
            "windows": len(rows),
            "anchored_heads_per_window": round(float(np.mean(anchors)) if anchors else 0.0, 3),
            "windows_without_anchor": sum(1 for a in anchors if a == 0),
            "candidate_triples": cands,
            "leaf_fill_rate": round(filled / max(len(rows) * cfg.roots * cfg.leaves, 1), 4),
            "copyable_share": round(copy / max(cands, 1), 4),
            "triples_per_relation": {name: rel[i] for i, name in enumerate(RELATION_NAMES)},
        }
    return out
