"""A tiny real corpus run through extract -> tokenizer -> samples, for model and training tests."""

from __future__ import annotations

from pathlib import Path

from graphmer.chains import Layout, build_samples
from graphmer.extract.pipeline import extract_kg
from graphmer.model import ModelConfig
from graphmer.tokenizer import save, train_tokenizer
from tests.extract.helpers import write_tree

R, L = 16, 3
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


def build_tiny(root: Path, files: int = 10) -> dict:
    texts = {f"p/pkg/m{i}.py": LIB.format(i=i) for i in range(files)}
    texts["p/pkg/base.py"] = "class Base:\n    items = {}\n\n    def put(self, key, value):\n        pass\n"
    texts["p/pkg/__init__.py"] = "from .base import Base\n"
    raw = write_tree(root / "raw", texts)
    extract_kg({"p": raw / "p"}, root / "kg", progress=False)
    tok = train_tokenizer(list(texts.values()), vocab_size=320)
    save(tok, root / "tokenizer.json")
    build_samples(
        raw, root / "kg", root / "tokenizer.json", root / "samples", Layout(R, L, R), 0.3, 0, progress=False
    )
    return {"root": root, "vocab": tok.get_vocab(), "vocab_size": tok.get_vocab_size()}


def tiny_config(vocab_size: int, **overrides) -> ModelConfig:
    base = dict(vocab_size=vocab_size, roots=R, leaves=L, layers=2, hidden=32, heads=2, ffn=64, dropout=0.0)
    return ModelConfig(**(base | overrides))
