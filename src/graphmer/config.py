"""Typed views of `params.yaml`: one dataclass per section, built by name.

Unknown keys and sections, keys given twice, values of the wrong type and numbers
out of range are errors that name the key, so a typo in `params.yaml` (or in
`dvc exp run -S ...`) fails loudly instead of being ignored or crashing a stage
later. Every numeric field carries its allowed `Range` as field metadata, checked
by one helper at the start of each `__post_init__`; a trained model's
`config.json` is checked by the same rules (`model_config`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from graphmer import GraphmerError


class ConfigError(GraphmerError):
    """A params file that does not match the typed config."""


# --------------------------------------------------------------------------- ranges


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


@dataclass(frozen=True)
class Range:
    """The values a numeric field allows: lo..hi, either end excluded (open) or absent (None).

    A float must also be finite: NaN fails every comparison, so without this test `lr: .nan`
    would pass any bound written as `if value < lo: raise`."""

    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            left, right = "(["[not self.open_lo], ")]"[not self.open_hi]
            return f"in {left}{_num(self.lo)}, {_num(self.hi)}{right}"
        if self.lo is not None:
            return f"{'>' if self.open_lo else '>='} {_num(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.open_hi else '<='} {_num(self.hi)}"
        return "finite"

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.open_lo else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.open_hi else value <= self.hi)

    def check(self, value: Any, where: str) -> None:
        """A one-line ConfigError naming `where` and the range unless `value` lies in it."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number {self}, got {value!r}")
        if value not in self:
            kind = "a finite number " if isinstance(value, float) else ""
            raise ConfigError(f"{where} must be {kind}{self}, got {value!r}")


COUNT = Range(lo=1)  # steps, sizes, batches: zero of them is never meant
NON_NEGATIVE = Range(lo=0)  # weights and counts where 0 means "off" or "all"
POSITIVE = Range(lo=0, open_lo=True)
PROBABILITY = Range(0, 1)
OPEN_UNIT = Range(0, 1, open_lo=True, open_hi=True)
SEED = Range(0, 2**32 - 1)  # numpy refuses negative seeds; 32 bits is what every RNG here accepts


def ranged(default: Any, allowed: Range) -> Any:
    """A dataclass field whose values `check_ranges` holds to `allowed`."""
    return field(default=default, metadata={"range": allowed})


def range_of(cls: type, name: str) -> Range:
    """The Range of field `name` of dataclass `cls` (so another check can reuse the rule)."""
    (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
    return f.metadata["range"]


def check_ranges(obj: Any, section: str) -> None:
    """Check every ranged field of a config dataclass (each item of a list field); None (not set,
    e.g. a preset's size) passes."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if "range" in f.metadata and isinstance(value, list):
            for i, item in enumerate(value):
                f.metadata["range"].check(item, f"{section}.{f.name}[{i}]")
        elif "range" in f.metadata and value is not None:
            f.metadata["range"].check(value, f"{section}.{f.name}")


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
        # The name is a folder under data/raw/: '.', '..' or a hidden name would escape or hide it.
        if not self.name or self.name[0] == "." or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError(f"{where}.name must be letters, digits, '-', '_' or '.', not starting with '.'")
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
    max_archive_member_bytes: int = ranged(64 * 2**20, COUNT)
    """Largest single archive member accepted (decompression-bomb guard)."""
    max_archive_total_bytes: int = ranged(2 * 2**30, COUNT)
    """Largest total unpacked size of one archive."""
    max_archive_members: int = ranged(200_000, COUNT)
    """Most members one archive may hold."""

    def __post_init__(self) -> None:
        check_ranges(self, "corpus")
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

    workers: int = ranged(0, NON_NEGATIVE)
    """Worker processes; 0 means one per CPU core."""
    max_file_bytes: int = ranged(1_000_000, COUNT)
    """Files larger than this are skipped with reason `too_large`."""
    chunk_files: int = ranged(16, COUNT)
    """Files per task handed to a worker (larger: less overhead, coarser balance)."""
    resolve_depth: int = ranged(8, COUNT)
    """Most links (re-exports, aliases, attribute hops) cross-file resolution follows for one name."""
    minified_line_bytes: int = ranged(5000, COUNT)
    """A file with a line longer than this is skipped as `minified` (minifiers strip newlines)."""
    minified_mean_line_bytes: int = ranged(300, COUNT)
    """... and so is a file over `minified_min_bytes` whose mean line is longer than this."""
    minified_min_bytes: int = ranged(2000, COUNT)
    """A shorter file is never called minified by its mean line length."""

    def __post_init__(self) -> None:
        check_ranges(self, "extract")

    @property
    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


# --------------------------------------------------------------------------- split, tokenizer


@dataclass
class SplitConfig:
    """`split`: train / dev / test by file (near-duplicates kept together) or by whole source."""

    by: str = "file"
    """file: each file (group of near-duplicates) by a content hash; source: whole projects held out."""
    dev_fraction: float = ranged(0.1, OPEN_UNIT)
    """by=file: share of (de-duplicated) files in dev, where every choice is tuned."""
    test_fraction: float = ranged(0.1, OPEN_UNIT)
    """by=file: share of files in test, where the reported numbers come from."""
    dev_sources: list[str] = field(default_factory=list)
    """by=source: sources (corpus.sources names) held out for dev."""
    test_sources: list[str] = field(default_factory=list)
    """by=source: sources held out for test."""
    near_duplicate_share: float = ranged(0.5, OPEN_UNIT)
    """A file sharing at least this share of its distinctive lines with another goes with it."""
    min_line_chars: int = ranged(20, COUNT)
    """A distinctive line has at least this many characters once stripped (shorter: `}`, `return`)."""
    max_line_files: int = ranged(3, COUNT)
    """... and occurs in at most this many files (more: boilerplate such as a license header)."""
    min_distinctive_lines: int = ranged(5, COUNT)
    """A file needs this many distinctive lines to be anyone's near-duplicate."""
    seed: int = ranged(0, SEED)
    """Salt of the content hash that assigns files; change it for another split."""

    def __post_init__(self) -> None:
        check_ranges(self, "split")
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

    vocab_size: int = ranged(8000, Range(lo=300))
    """Vocabulary size, the 5 special tokens and 256 byte symbols included."""
    min_frequency: int = ranged(2, COUNT)
    """A merge must occur at least this often."""

    def __post_init__(self) -> None:
        check_ranges(self, "tokenizer")  # >= 300: 256 byte symbols, 5 specials, some merges


@dataclass
class SamplesConfig:
    """`samples`: GraphMERT leafy-chain windows and how the loader fills and masks them."""

    roots: int = ranged(128, Range(2, 2**15, open_hi=True))  # anchors are stored as int16
    """R: code tokens per window (the chain of roots)."""
    leaves: int = ranged(7, COUNT)
    """L: leaf slots per root; sequence length is R + R*L."""
    stride: int = ranged(128, COUNT)
    """Tokens between window starts (< roots: overlapping windows)."""
    balance: bool = True
    """Draw the injected triple of an anchor with weight 1/frequency of its relation."""
    mask_rate: float = ranged(0.15, OPEN_UNIT)
    """Share of roots masked (span masking)."""
    span_p: float = ranged(0.2, OPEN_UNIT)
    """Geometric parameter of span lengths (clipped to 1..max_span)."""
    max_span: int = ranged(7, COUNT)
    """Longest masked span of roots."""
    leaf_mask_prob: float = ranged(0.8, Range(0, 1, open_lo=True))  # 1: every tail masked
    """Probability that a non-empty leaf group is masked whole (0.8, not BERT's 0.15: with ~3 filled
    groups a window, 0.15 leaves most steps without a single masked tail; README says how it was set)."""

    def __post_init__(self) -> None:
        check_ranges(self, "samples")
        if self.stride > self.roots:
            raise ConfigError(f"samples.stride ({self.stride}) must be <= samples.roots ({self.roots})")


# --------------------------------------------------------------------------- model, train

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SIZES = ("layers", "hidden", "heads", "ffn")
ATTENTIONS = ("sdpa", "flex")  # ModelSection.attention
PRESETS = {
    "tiny": {"layers": 4, "hidden": 256, "heads": 4, "ffn": 1024},
    "base": {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072},
}


@dataclass
class ModelSection:
    """`model`: a preset (tiny for CPU, base = 12x768x12) and any field overridden."""

    preset: str = "tiny"
    """tiny (4 layers, 256 wide, 4 heads) or base (12, 768, 12; FFN 3072)."""
    # The upper bounds lie far above any model trained here (base: 12 x 768): a bigger value is a
    # typo that would otherwise allocate until memory runs out before anything else could fail.
    layers: int | None = ranged(None, Range(1, 1024))
    """Transformer blocks; unset: the preset's."""
    hidden: int | None = ranged(None, Range(1, 2**16))
    """Width of the residual stream; a multiple of heads."""
    heads: int | None = ranged(None, Range(1, 1024))
    """Attention heads."""
    ffn: int | None = ranged(None, Range(1, 2**18))
    """Width of the feed-forward layer."""
    dropout: float = ranged(0.1, Range(0, 1, open_hi=True))
    """Dropout probability on the embeddings and in every block."""
    hgat: bool = True
    """Relation-aware leaf embedding (H-GAT)."""
    decay_mask: bool = True
    """Attention decay by shortest-path distance in the leafy chain."""
    relation_bias: bool = True
    """Learned per-relation, per-head bias on root<->leaf edges."""
    copy: bool = True
    """Copy path: leaf prediction may point at the window's roots (pointer-generator)."""
    memory: bool = False
    """Tail memory: leaf prediction may name a tail of the training graph as a whole (a classifier
    over its tail names, conditioned on the relation and the tail's length). Off: at 500 CPU steps
    it lowered dev tail MRR (README)."""
    attention: str = "sdpa"
    """sdpa | flex: the graph bias as one dense (B, H, N, N) attn_mask of scaled_dot_product_attention,
    or computed per entry inside FlexAttention (no such tensor; needs CUDA to train)."""

    def __post_init__(self) -> None:
        check_ranges(self, "model")
        if self.preset not in PRESETS:
            raise ConfigError(f"model.preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        check_model(PRESETS[self.preset] | self.overrides(), "model")  # the sizes the model gets

    def overrides(self) -> dict:
        out = {k: getattr(self, k) for k in SIZES if getattr(self, k) is not None}
        return out | {
            "dropout": self.dropout,
            "hgat": self.hgat,
            "decay_mask": self.decay_mask,
            "relation_bias": self.relation_bias,
            "copy": self.copy,
            "memory": self.memory,
            "attention": self.attention,
        }


def default_of(cls: type, name: str) -> Any:
    """The default of field `name` of dataclass `cls`: a default written once, read everywhere."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


_PRESET = PRESETS[default_of(ModelSection, "preset")]


@dataclass(frozen=True)
class ModelConfig:
    """A built model's settings (its config.json): the `model` section resolved against its preset,
    with the vocabulary and window shape of the trained tokenizer and the samples."""

    vocab_size: int = default_of(TokenizerConfig, "vocab_size")
    roots: int = default_of(SamplesConfig, "roots")
    leaves: int = default_of(SamplesConfig, "leaves")
    layers: int = _PRESET["layers"]
    hidden: int = _PRESET["hidden"]
    heads: int = _PRESET["heads"]
    ffn: int = _PRESET["ffn"]
    dropout: float = default_of(ModelSection, "dropout")
    hgat: bool = default_of(ModelSection, "hgat")
    decay_mask: bool = default_of(ModelSection, "decay_mask")
    relation_bias: bool = default_of(ModelSection, "relation_bias")
    copy: bool = default_of(ModelSection, "copy")
    memory: bool = default_of(ModelSection, "memory")
    memory_size: int = 0  # tail names in the memory: set by training from samples/candidates.parquet
    decay_lambda: float = 0.6  # attention decays as lambda ** distance (GraphMERT, arXiv 2510.09580)
    max_head_tokens: int = 8  # head spans longer than this feed H-GAT their first tokens
    attention: str = default_of(ModelSection, "attention")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_preset(cls, preset: str, **overrides) -> ModelConfig:
        return dataclasses.replace(cls(**PRESETS[preset]), **overrides)

    @classmethod
    def from_params(cls, model: ModelSection, samples: SamplesConfig, vocab_size: int) -> ModelConfig:
        """The model the `model` and `samples` sections describe, for a tokenizer of `vocab_size`."""
        shape = {"vocab_size": vocab_size, "roots": samples.roots, "leaves": samples.leaves}
        return cls.from_preset(model.preset, **shape, **model.overrides())


@dataclass
class TrainConfig:
    """`train`: optimization of MLM + mu(t) * MNM + constraint_weight * InfoNCE."""

    steps: int = ranged(500, COUNT)
    """Optimizer steps."""
    micro_batch: int = ranged(8, COUNT)
    """Windows per forward pass (per process)."""
    grad_accum: int = ranged(4, COUNT)
    """Micro-batches per optimizer step: effective batch = micro_batch * grad_accum * processes."""
    lr: float = ranged(1e-3, POSITIVE)
    """Peak learning rate."""
    warmup_steps: int = ranged(50, NON_NEGATIVE)
    """Steps of linear warm-up to lr."""
    min_lr_ratio: float = ranged(0.1, PROBABILITY)
    """Cosine decay ends at lr * min_lr_ratio."""
    weight_decay: float = ranged(0.01, NON_NEGATIVE)
    """AdamW weight decay."""
    grad_clip: float = ranged(1.0, POSITIVE)
    """Largest gradient norm (clipping to 0 would zero every update)."""
    mnm_weight: float = ranged(1.0, NON_NEGATIVE)
    """Target weight mu of the MNM loss."""
    mnm_ramp_steps: int = ranged(100, NON_NEGATIVE)
    """Steps after warm-up over which mu ramps linearly from 0 to mnm_weight (curriculum)."""
    constraint_weight: float = ranged(0.1, NON_NEGATIVE)
    """Weight of the graph-structure InfoNCE regularizer (0 switches it off)."""
    constraint_temperature: float = ranged(0.1, POSITIVE)
    """Temperature of the InfoNCE regularizer's cosine scores."""
    adam_betas: list[float] = field(
        default_factory=lambda: [0.9, 0.98], metadata={"range": Range(0, 1, open_hi=True)}
    )
    """AdamW's beta1, beta2 (0.98: BERT-style pre-training's shorter second-moment memory)."""
    anchored_only: bool = True
    """Train on the windows that carry at least one triple (a quarter carry none: MLM alone)."""
    precision: str = "auto"
    """auto | fp32 | bf16 | fp16; auto: bf16 on CUDA cards that have it, fp16 on older ones, fp32 on CPU."""
    loader_workers: int = ranged(0, Range(0, 64))
    """Processes that build micro-batches while the model trains (0: inline, in the training loop);
    the batches are the same either way."""
    compile: bool = False
    """Run the encoder's transformer blocks through torch.compile (needs a C++ compiler on CPU)."""
    checkpoint_every: int = ranged(250, COUNT)
    """Steps between resumable checkpoints."""
    keep_checkpoints: int = ranged(2, COUNT)
    """Checkpoints kept on disk (the newest)."""
    eval_every: int = ranged(100, COUNT)
    """Steps between dev evaluations."""
    eval_batches: int = ranged(8, COUNT)
    """Micro-batches of dev windows per evaluation (0 would report an accuracy of nothing)."""
    log_every: int = ranged(1, COUNT)
    """Steps between logged metrics."""
    monitor_system: bool = True
    """Log CPU and RAM use (and GPU utilization, memory, temperature, power) with the curves."""
    seed: int = ranged(0, SEED)
    """Seeds the initialization and the order of the micro-batches."""

    def __post_init__(self) -> None:
        check_ranges(self, "train")
        if len(self.adam_betas) != 2:
            raise ConfigError(f"train.adam_betas must be two numbers (beta1, beta2), got {self.adam_betas!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )


@dataclass
class EvaluateConfig:
    """`evaluate`: held-out metrics on the dev or test files."""

    split: str = "test"
    """Held-out files asked: dev (every tuning choice) or test (the reported numbers)."""
    seed: int = ranged(0, SEED)
    """Fixes masks, injections and the triple sample: runs compare on the same questions."""
    windows: int = ranged(2048, NON_NEGATIVE)
    """Validation windows for masked MLM/MNM accuracy (0: all)."""
    triples_per_relation: int = ranged(100, NON_NEGATIVE)
    """Held-out triples ranked per relation (a seeded sample of those unseen in training; 0: all)."""
    batch_size: int = ranged(32, COUNT)
    """Windows per forward pass."""
    code_only: bool = False
    """Also rank with every other leaf group emptied (what the graph input adds; doubles the cost)."""

    def __post_init__(self) -> None:
        check_ranges(self, "evaluate")
        if self.split not in ("dev", "test"):
            raise ConfigError(f"evaluate.split must be dev or test, got {self.split!r}")


@dataclass
class DistillConfig:
    """`distill`: the static graph completed by the model, with probabilities calibrated on dev."""

    split: str = "test"
    """Files whose gaps are filled: test (never training files; dev is where the scorer and the
    calibrator are fitted) or dev."""
    languages: list[str] = field(default_factory=lambda: ["python"])
    """Languages whose gaps are asked (python, javascript; Java declares its types: no type gaps)."""
    top_k: int = ranged(3, COUNT)
    """Tails kept per question, each a predicted triple with its own probability."""
    max_tail_tokens: int = ranged(4, COUNT)
    """Longest candidate tail in tokens (the model's leaves if fewer): each length is one more forward
    pass per question, and 99% of the training graph's types and return types have at most 4."""
    max_questions: int = ranged(1500, NON_NEGATIVE)
    """Gap questions asked on the distilled files, a seeded sample (0: every gap)."""
    held_out_per_relation: int = ranged(0, NON_NEGATIVE)
    """Hidden facts per relation asked on dev (fitting) and on test (the check); 0: all of them."""
    calibration: str = "isotonic"
    """isotonic: a map per relation fitted on dev's predictions (lowest dev ECE); softmax: the dev-fitted
    scorer's own softmax as it is (its scale is fitted by maximum likelihood: temperature scaling
    built in), a smooth map with no step for a threshold to fall on (README: the trade-off)."""
    min_calibration_points: int = ranged(200, COUNT)
    """A relation gets its own isotonic map from this many dev predictions; below, the pooled map."""
    thresholds: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.9], metadata={"range": PROBABILITY})
    """Probabilities at which precision, coverage and the triples added are reported."""
    bins: int = ranged(10, COUNT)
    """Equal-width probability bins of the expected calibration error and the reliability plot."""
    seed: int = ranged(0, SEED)
    """Fixes the hidden facts drawn and the sample of gap questions."""
    batch_size: int = ranged(32, COUNT)
    """Windows per forward pass."""

    def __post_init__(self) -> None:
        check_ranges(self, "distill")
        if self.split not in ("dev", "test"):
            raise ConfigError(f"distill.split must be dev or test, got {self.split!r}")
        if self.calibration not in ("isotonic", "softmax"):
            raise ConfigError(f"distill.calibration must be isotonic or softmax, got {self.calibration!r}")
        if not self.thresholds:
            raise ConfigError("distill.thresholds is empty: name at least one probability")
        unknown = sorted(set(self.languages) - {"python", "javascript"})
        if unknown or not self.languages:
            raise ConfigError(
                f"distill.languages must name python and/or javascript, got {unknown or self.languages!r}"
            )


# --------------------------------------------------------------------------- paths


@dataclass(frozen=True)
class PathsConfig:
    """`paths`: where every stage reads and writes, relative to the project root. dvc.yaml reads the
    same table through `${paths.*}`, so a stage and its DVC declaration cannot disagree."""

    raw: Path = Path("data/raw")
    """fetch: one folder per corpus source."""
    kg: Path = Path("data/kg")
    """extract: files, entities, mentions and triples Parquet."""
    extract_cache: Path = Path("data/extract_cache")
    """extract: each file's parse result, reused while the file and the extractor are unchanged
    (outside `kg`: the tables are the same with or without it)."""
    split: Path = Path("data/split.parquet")
    """split: each file's train/dev/test."""
    samples: Path = Path("data/samples")
    """samples: leafy-chain windows and the candidate tails."""
    models: Path = Path("models")
    """The model a user downloads: config.json, model.safetensors, the tokenizer, the card."""
    checkpoints: Path = Path("checkpoints")
    """train: resumable checkpoints (outside models/: not part of the download)."""
    dvclive: Path = Path("dvclive")
    """train: the curves `dvc plots` draws."""
    distilled: Path = Path("data/distilled.parquet")
    """distill: the static graph with the model's triples."""
    metrics: Path = Path("metrics")
    """Every stage's metrics, tables and plot data."""

    @property
    def tokenizer(self) -> Path:
        return self.models / "tokenizer.json"

    @property
    def calibration(self) -> Path:
        return self.models / "calibration.json"

    def under(self, root: str | Path) -> PathsConfig:
        """The same table inside `root` (a test's or a user's project folder)."""
        return PathsConfig(**{f.name: Path(root) / getattr(self, f.name) for f in dataclasses.fields(self)})


# --------------------------------------------------------------------------- a trained model's settings

# A saved config.json holds ModelConfig's fields; each one is held to the rule of the params field
# it was resolved from, so a model that trains can always be loaded and the two never disagree.
MODEL_RANGES: dict[str, Range] = {
    # the trained tokenizer's real size, below tokenizer.vocab_size when a small corpus has few merges;
    # load_model holds it to the tokenizer's, exactly
    "vocab_size": COUNT,
    "roots": range_of(SamplesConfig, "roots"),
    "leaves": range_of(SamplesConfig, "leaves"),
    **{key: range_of(ModelSection, key) for key in (*SIZES, "dropout")},
    "decay_lambda": OPEN_UNIT,  # attention decays as lambda ** distance
    "max_head_tokens": COUNT,
    "memory_size": Range(0, 2**22),  # tail names; the default corpus has about 30K
}


def check_model(values: Mapping[str, Any], where: str = "") -> None:
    """Ranges and cross-field rules of resolved model settings (a preset with its overrides, or a
    saved config.json), which GraphMERT would otherwise fail on, or allocate for, when built."""
    for key, allowed in MODEL_RANGES.items():
        if key in values:
            allowed.check(values[key], _key(where, key))
    if values.get("attention", "sdpa") not in ATTENTIONS:
        raise ConfigError(
            f"{_key(where, 'attention')} must be one of {', '.join(ATTENTIONS)}, got {values['attention']!r}"
        )
    hidden, heads = values["hidden"], values["heads"]
    if hidden % heads:
        raise ConfigError(
            f"{_key(where, 'hidden')} ({hidden}) must be divisible by {_key(where, 'heads')} ({heads})"
        )


def model_config(raw: Any, where: str) -> Any:
    """A ModelConfig from a trained model's settings (config.json less its `architecture` tag),
    checked for types by `build` and for ranges by `check_model` before any model is built;
    an error is one line that starts with `where` (the file)."""
    try:
        cfg = build(ModelConfig, raw, "")
        check_model(dataclasses.asdict(cfg))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return cfg


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
    "distill": DistillConfig,
    "paths": PathsConfig,
}


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from a mapping, checking keys and types; `where` names it in errors
    ("" for a flat file whose keys are the fields)."""
    if not isinstance(data, dict):
        must = f"{where} must be" if where else "must hold"
        raise ConfigError(f"{must} a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - set(fields)))  # str: YAML keys may be numbers
    if unknown:
        raise ConfigError(f"unknown key {_key(where, unknown[0])} (known: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _coerce(hints[name], data[name], _key(where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing key {_key(where, name)}")
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
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a path (a non-empty string), got {_short(value)}")
        return Path(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**1023:  # float() would raise OverflowError
            raise ConfigError(f"{where} must be a finite number, got an integer of {len(str(value))} digits")
        return float(value)
    if tp is str and isinstance(value, (int, float)):
        # YAML reads `version: 5.10` as the float 5.1: demand quotes instead of guessing.
        raise ConfigError(f"{where} must be a string (quote it in YAML), got {value!r}")
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {tp.__name__}, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    """repr of a value, cut to keep an error on one short line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping, at any depth.

    PyYAML keeps the last of two equal keys without a word, so `lr:` written twice in
    `train:` would silently train with the second value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_at: dict[Any, str] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden: not a duplicate
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first_at.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                continue
            if earlier is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at {earlier})", key_node.start_mark
                )
            mark = key_node.start_mark
            first_at[key] = f"line {mark.line + 1}, column {mark.column + 1}"
        return super().construct_mapping(node, deep)


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The sections of a params file, untyped; a key given twice or an unknown section is an error."""
    try:
        data = yaml.load(Path(path).read_text(), Loader=UniqueKeyLoader)  # a SafeLoader: plain data only
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {_yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections")
    unknown = sorted(map(str, set(data) - set(SECTIONS)))
    if unknown:
        raise ConfigError(f"{path}: unknown params section {unknown[0]!r} (known: {', '.join(SECTIONS)})")
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's message on one line: the problem and where (its own str spans several lines)."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return f"{where}{err.problem}"
    return " ".join(str(err).split())


def load_all(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Every section of a params file, typed; an unknown section is an error."""
    params = load_params(path)
    return {name: build(cls, params.get(name, {}), name) for name, cls in SECTIONS.items()}


def load_section(name: str, path: str | Path = "params.yaml") -> Any:
    """The typed config of one `params.yaml` section, e.g. `load_section("corpus")`."""
    if name not in SECTIONS:
        raise ConfigError(f"unknown params section {name!r} (known: {', '.join(SECTIONS)})")
    params = load_params(path)
    return build(SECTIONS[name], params.get(name, {}), name)
