"""Typed views of `params.yaml`: one dataclass per section, built by name.

Unknown keys and values of the wrong type are errors that name the key, so a
typo in `params.yaml` (or in `dvc exp run -S ...`) fails loudly instead of being
ignored.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from graphmer import GraphmerError


class ConfigError(GraphmerError):
    """A params file that does not match the typed config."""


# --------------------------------------------------------------------------- corpus

SOURCE_KINDS = ("pypi", "npm", "git", "local")


@dataclass
class SourceConfig:
    """One pinned corpus source; `kind` decides which of the other fields are required."""

    name: str
    """Folder name under data/raw/; letters, digits, '-', '_' and '.'."""
    kind: str
    """pypi | npm | git | local."""
    package: str | None = None
    """pypi/npm: the package name."""
    version: str | None = None
    """pypi/npm: the exact version."""
    sha256: str | None = None
    """pypi/npm: sha256 of the downloaded archive (hex); required, checked after download."""
    index_url: str | None = None
    """pypi: a package index (pip --index-url); npm: a registry (--registry). Default: tool config."""
    url: str | None = None
    """git: the repository URL or path."""
    commit: str | None = None
    """git: the full commit hash to check out."""
    path: str | None = None
    """local: a directory or an archive (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .zip)."""
    include: list[str] = field(default_factory=lambda: ["**"])
    """Globs (relative to the source root, `**` crosses folders) of files to keep."""
    exclude: list[str] = field(default_factory=list)
    """Globs of files to drop, applied after `include`."""

    def __post_init__(self) -> None:
        where = f"corpus.sources[{self.name!r}]"
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError(f"{where}.name must be letters, digits, '-', '_' or '.'")
        if self.kind not in SOURCE_KINDS:
            raise ConfigError(f"{where}.kind must be one of {', '.join(SOURCE_KINDS)}, got {self.kind!r}")
        required = {
            "pypi": ("package", "version", "sha256"),
            "npm": ("package", "version", "sha256"),
            "git": ("url", "commit"),
            "local": ("path",),
        }[self.kind]
        for key in required:
            if not getattr(self, key):
                raise ConfigError(f"{where}.{key} is required for kind {self.kind}")
        if self.sha256 is not None and (
            len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256.lower())
        ):
            raise ConfigError(f"{where}.sha256 must be 64 hex digits")
        if self.commit is not None and (
            len(self.commit) != 40 or any(c not in "0123456789abcdef" for c in self.commit.lower())
        ):
            raise ConfigError(f"{where}.commit must be a full 40-digit commit hash")


@dataclass
class CorpusConfig:
    """`corpus`: the pinned sources the `fetch` stage materializes under data/raw/."""

    sources: list[SourceConfig]
    """The pinned source list."""
    max_archive_member_bytes: int = 64 * 2**20
    """Largest single archive member accepted (decompression-bomb guard)."""
    max_archive_total_bytes: int = 2 * 2**30
    """Largest total unpacked size of one archive."""
    max_archive_members: int = 200_000
    """Most members one archive may hold."""

    def __post_init__(self) -> None:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"corpus.sources: duplicate source name(s): {', '.join(dupes)}")
        if not self.sources:
            raise ConfigError("corpus.sources is empty: name at least one source")


# --------------------------------------------------------------------------- extract


@dataclass
class ExtractConfig:
    """`extract`: tree-sitter extraction of the code knowledge graph."""

    workers: int = 0
    """Worker processes; 0 means one per CPU core."""
    max_file_bytes: int = 1_000_000
    """Files larger than this are skipped with reason `too_large`."""
    chunk_files: int = 16
    """Files per task handed to a worker (larger: less overhead, coarser balance)."""

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError("extract.workers must be >= 0 (0 = all cores)")
        if self.max_file_bytes <= 0 or self.chunk_files <= 0:
            raise ConfigError("extract.max_file_bytes and extract.chunk_files must be > 0")

    @property
    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


# --------------------------------------------------------------------------- split, tokenizer


@dataclass
class SplitConfig:
    """`split`: train / dev / test by file (near-duplicates kept together) or by whole source."""

    by: str = "file"
    """file: each file (group of near-duplicates) by a content hash; source: whole projects held out."""
    dev_fraction: float = 0.1
    """by=file: share of (de-duplicated) files in dev, where every choice is tuned."""
    test_fraction: float = 0.1
    """by=file: share of files in test, where the reported numbers come from."""
    dev_sources: list[str] = field(default_factory=list)
    """by=source: sources (corpus.sources names) held out for dev."""
    test_sources: list[str] = field(default_factory=list)
    """by=source: sources held out for test."""
    near_duplicate_share: float = 0.5
    """A file sharing at least this share of its distinctive lines with another goes with it."""
    seed: int = 0
    """Salt of the content hash that assigns files; change it for another split."""

    def __post_init__(self) -> None:
        for key in ("dev_fraction", "test_fraction", "near_duplicate_share"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ConfigError(f"split.{key} must be between 0 and 1")
        if self.dev_fraction + self.test_fraction >= 1.0:
            raise ConfigError("split.dev_fraction + split.test_fraction must leave files for training")
        if self.by not in ("file", "source"):
            raise ConfigError(f"split.by must be file or source, got {self.by!r}")
        if self.by == "source" and not self.test_sources:
            raise ConfigError("split.by=source needs split.test_sources (the projects held out)")
        both = sorted(set(self.dev_sources) & set(self.test_sources))
        if both:
            raise ConfigError(f"split: source {both[0]!r} is in both dev_sources and test_sources")


@dataclass
class TokenizerConfig:
    """`tokenizer`: byte-level BPE trained on the training split."""

    vocab_size: int = 8000
    """Vocabulary size, the 5 special tokens and 256 byte symbols included."""
    min_frequency: int = 2
    """A merge must occur at least this often."""

    def __post_init__(self) -> None:
        if self.vocab_size < 300:
            raise ConfigError("tokenizer.vocab_size must be >= 300 (256 bytes + specials + merges)")


@dataclass
class SamplesConfig:
    """`samples`: GraphMERT leafy-chain windows and how the loader fills and masks them."""

    roots: int = 128
    """R: code tokens per window (the chain of roots)."""
    leaves: int = 7
    """L: leaf slots per root; sequence length is R + R*L."""
    stride: int = 128
    """Tokens between window starts (< roots: overlapping windows)."""
    balance: bool = True
    """Draw the injected triple of an anchor with weight 1/frequency of its relation."""
    mask_rate: float = 0.15
    """Share of roots masked (span masking)."""
    span_p: float = 0.2
    """Geometric parameter of span lengths (clipped to 1..max_span)."""
    max_span: int = 7
    """Longest masked span of roots."""
    leaf_mask_prob: float = 0.15
    """Probability that a non-empty leaf group is masked whole."""

    def __post_init__(self) -> None:
        if self.roots < 2 or self.leaves < 1 or not 0 < self.stride <= self.roots:
            raise ConfigError("samples: need roots >= 2, leaves >= 1 and 0 < stride <= roots")
        if self.roots >= 2**15:
            raise ConfigError("samples.roots must be < 32768")
        for key in ("mask_rate", "span_p", "leaf_mask_prob"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ConfigError(f"samples.{key} must be between 0 and 1")


# --------------------------------------------------------------------------- model, train

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class ModelSection:
    """`model`: a preset (tiny for CPU, base = 12x768x12) and any field overridden."""

    preset: str = "tiny"
    """tiny (4 layers, 256 wide, 4 heads) or base (12, 768, 12; FFN 3072)."""
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    ffn: int | None = None
    dropout: float = 0.1
    hgat: bool = True
    """Relation-aware leaf embedding (H-GAT)."""
    decay_mask: bool = True
    """Attention decay by shortest-path distance in the leafy chain."""
    relation_bias: bool = True
    """Learned per-relation, per-head bias on root<->leaf edges."""
    copy: bool = True
    """Copy path: leaf prediction may point at the window's roots (pointer-generator)."""

    def __post_init__(self) -> None:
        from graphmer.model import PRESETS

        if self.preset not in PRESETS:
            raise ConfigError(f"model.preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        hidden = self.hidden or PRESETS[self.preset]["hidden"]
        heads = self.heads or PRESETS[self.preset]["heads"]
        if hidden % heads:
            raise ConfigError(f"model.hidden ({hidden}) must be divisible by model.heads ({heads})")

    def overrides(self) -> dict:
        keys = ("layers", "hidden", "heads", "ffn")
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        return out | {
            "dropout": self.dropout,
            "hgat": self.hgat,
            "decay_mask": self.decay_mask,
            "relation_bias": self.relation_bias,
            "copy": self.copy,
        }


@dataclass
class TrainConfig:
    """`train`: optimization of MLM + mu(t) * MNM + constraint_weight * InfoNCE."""

    steps: int = 500
    """Optimizer steps."""
    micro_batch: int = 8
    """Windows per forward pass (per process)."""
    grad_accum: int = 4
    """Micro-batches per optimizer step: effective batch = micro_batch * grad_accum * processes."""
    lr: float = 1e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    """Cosine decay ends at lr * min_lr_ratio."""
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mnm_weight: float = 1.0
    """Target weight mu of the MNM loss."""
    mnm_ramp_steps: int = 100
    """Steps after warm-up over which mu ramps linearly from 0 to mnm_weight (curriculum)."""
    constraint_weight: float = 0.1
    """Weight of the graph-structure InfoNCE regularizer (0 switches it off)."""
    anchored_only: bool = True
    """Train on the windows that carry at least one triple (a quarter carry none: MLM alone)."""
    precision: str = "auto"
    """auto | fp32 | bf16 | fp16; auto: bf16 on CUDA cards that have it, fp16 on older ones, fp32 on CPU."""
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    eval_every: int = 100
    eval_batches: int = 8
    log_every: int = 1
    monitor_system: bool = True
    """Log CPU and RAM use (and GPU utilization, memory, temperature, power) with the curves."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}")
        for key in (
            "steps",
            "micro_batch",
            "grad_accum",
            "checkpoint_every",
            "keep_checkpoints",
            "eval_every",
            "log_every",
        ):
            if getattr(self, key) <= 0:
                raise ConfigError(f"train.{key} must be > 0")
        if self.warmup_steps < 0 or self.mnm_ramp_steps < 0:
            raise ConfigError("train.warmup_steps and train.mnm_ramp_steps must be >= 0")


@dataclass
class EvaluateConfig:
    """`evaluate`: held-out metrics on the dev or test files."""

    split: str = "test"
    """Held-out files asked: dev (every tuning choice) or test (the reported numbers)."""
    seed: int = 0
    """Fixes masks, injections and the triple sample: runs compare on the same questions."""
    windows: int = 2048
    """Validation windows for masked MLM/MNM accuracy (0: all)."""
    triples_per_relation: int = 100
    """Held-out triples ranked per relation (a seeded sample of those unseen in training; 0: all)."""
    batch_size: int = 32
    """Windows per forward pass."""
    code_only: bool = False
    """Also rank with every other leaf group emptied (what the graph input adds; doubles the cost)."""

    def __post_init__(self) -> None:
        for key in ("windows", "triples_per_relation"):
            if getattr(self, key) < 0:
                raise ConfigError(f"evaluate.{key} must be >= 0")
        if self.batch_size <= 0:
            raise ConfigError("evaluate.batch_size must be > 0")
        if self.split not in ("dev", "test"):
            raise ConfigError(f"evaluate.split must be dev or test, got {self.split!r}")


# --------------------------------------------------------------------------- building

SECTIONS: dict[str, type] = {
    "corpus": CorpusConfig,
    "extract": ExtractConfig,
    "split": SplitConfig,
    "tokenizer": TokenizerConfig,
    "samples": SamplesConfig,
    "model": ModelSection,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
}


def build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from a mapping, checking keys and types; `where` names it in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {where}.{unknown[0]} (known: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _coerce(hints[name], data[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing key {where}.{name}")
    return cls(**values)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, (int, float)):
        # YAML reads `version: 5.10` as the float 5.1: demand quotes instead of guessing.
        raise ConfigError(f"{where} must be a string (quote it in YAML), got {value!r}")
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {tp.__name__}, got {value!r}")
    return value


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections")
    return data


def load_all(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Every section of a params file, typed; an unknown section is an error."""
    params = load_params(path)
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown params section {unknown[0]!r} (known: {', '.join(SECTIONS)})")
    return {name: build(cls, params.get(name, {}), name) for name, cls in SECTIONS.items()}


def load_section(name: str, path: str | Path = "params.yaml") -> Any:
    """The typed config of one `params.yaml` section, e.g. `load_section("corpus")`."""
    if name not in SECTIONS:
        raise ConfigError(f"unknown params section {name!r} (known: {', '.join(SECTIONS)})")
    params = load_params(path)
    return build(SECTIONS[name], params.get(name, {}), name)
