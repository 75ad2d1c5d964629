"""Lookups by entity id in the knowledge graph that `extract` writes (data/kg/*.parquet).

`graphmer.extract.pipeline` defines and writes the tables; the stages after it read them
through here, without importing the extractors (and tree-sitter).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def entity_columns(
    kg_dir: str | Path, columns: list[str], ids: Iterable[str] | None = None
) -> dict[str, dict[str, object]]:
    """column -> {entity id: value} from entities.parquet, for every entity or only those of `ids`."""
    table = pq.read_table(Path(kg_dir) / "entities.parquet", columns=["id", *columns])
    if ids is not None:
        table = table.filter(pc.is_in(table["id"], pa.array(sorted(ids), pa.string())))
    cols = table.to_pydict()
    return {c: dict(zip(cols["id"], cols[c])) for c in columns}


def entity_names(kg_dir: str | Path, ids: Iterable[str] | None = None) -> dict[str, str]:
    """entity id -> its short name (`py:pkg.mod.Cls.run` -> `run`), for every entity or only `ids`."""
    return entity_columns(kg_dir, ["name"], ids)["name"]
