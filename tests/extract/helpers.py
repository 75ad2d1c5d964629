from pathlib import Path

import pandas as pd

from graphmer.config import ExtractConfig
from graphmer.extract.pipeline import extract_kg
from graphmer.relations import Relation


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def extract_tables(
    tmp_path: Path, files: dict[str, str | bytes], cfg: ExtractConfig | None = None
) -> dict[str, pd.DataFrame]:
    src = write_tree(tmp_path / "src" / "proj", files)
    out = tmp_path / "kg"
    extract_kg({"proj": src}, out, cfg or ExtractConfig(workers=1), progress=False)
    return {
        name: pd.read_parquet(out / f"{name}.parquet")
        for name in ("files", "entities", "mentions", "triples")
    }


def triples(tables, relation: Relation) -> set[tuple[str, str]]:
    t = tables["triples"]
    t = t[t["relation"] == int(relation)]
    return set(zip(t["head"], t["tail"]))
