"""A tiny real corpus run through extract -> tokenizer -> samples, for model and training tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from graphmer.config import PathsConfig, SamplesConfig, TokenizerConfig
from graphmer.extract.pipeline import extract_kg
from graphmer.model import ModelConfig
from graphmer.samples import build_samples
from graphmer.tokenizer import save, train_tokenizer
from tests.extract.helpers import write_tree

R, L = 16, 3
SAMPLES = SamplesConfig(roots=R, leaves=L, stride=R)  # tiny windows: R roots, L leaves, stride R
LIB = '''\
class Store{i}(Base):
    """A store."""

    def put(self, key: str, value: int) -> None:
        self.items[key] = check{i}(value)

    def get(self, key: str) -> int:
        return self.items.get(key, 0)


def check{i}(value: int) -> int:
    if value < 0:
        raise ValueError(value)
    return value
'''


HELD_OUT = {"p/pkg/m7.py": "dev", "p/pkg/m8.py": "test", "p/pkg/m9.py": "test"}  # the rest: train


def write_split(kg_dir: Path, out: Path, held_out: dict[str, str]) -> Path:
    """A split.parquet (as the `split` stage writes it) sending the named files to dev or test and
    every other extracted file to train."""
    files = pq.read_table(kg_dir / "files.parquet", columns=["path", "source", "skipped"]).to_pydict()
    kept = [(p, s) for p, s, skip in zip(files["path"], files["source"], files["skipped"]) if not skip]
    paths = [p for p, _ in kept]
    pq.write_table(
        pa.table(
            {
                "path": paths,
                "source": [s for _, s in kept],
                "split": [held_out.get(p, "train") for p in paths],
                "group": paths,
            }
        ),
        out,
    )
    return out


def build_tiny(root: Path, files: int = 10) -> dict:
    """The corpus, its graph, split, tokenizer and samples where the pipeline puts them, inside
    `root` (`paths`: `PathsConfig().under(root)`)."""
    paths = PathsConfig().under(root)
    texts = {f"p/pkg/m{i}.py": LIB.format(i=i) for i in range(files)}
    texts["p/pkg/base.py"] = "class Base:\n    items = {}\n\n    def put(self, key, value):\n        pass\n"
    texts["p/pkg/__init__.py"] = "from .base import Base\n"
    write_tree(paths.raw, texts)
    extract_kg({"p": paths.raw / "p"}, paths.kg, progress=False)
    tok = train_tokenizer(list(texts.values()), TokenizerConfig(vocab_size=320))
    save(tok, paths.tokenizer)
    write_split(paths.kg, paths.split, HELD_OUT)
    build_tiny_samples(paths)
    return {"root": root, "paths": paths, "vocab": tok.get_vocab(), "vocab_size": tok.get_vocab_size()}


def build_tiny_samples(paths: PathsConfig) -> None:
    """The samples stage on the tiny corpus, in tiny windows (SAMPLES)."""
    build_samples(paths.raw, paths.kg, paths.tokenizer, paths.split, paths.samples, SAMPLES, progress=False)


def tiny_config(vocab_size: int, **overrides) -> ModelConfig:
    base = dict(vocab_size=vocab_size, roots=R, leaves=L, layers=2, hidden=32, heads=2, ffn=64, dropout=0.0)
    return ModelConfig(**(base | overrides))
