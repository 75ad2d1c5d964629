"""Lookups by entity id in the knowledge graph that `extract` writes (data/kg/*.parquet).

`graphmer.extract.tables` defines the tables and `graphmer.extract.pipeline` writes them; the
stages after it read them through here, without importing the extractors (and tree-sitter).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# The tables `extract` writes into the graph's folder (PathsConfig.kg), by file name; their
# columns are graphmer.extract.tables.SCHEMAS, under the names of TABLES.
FILES_TABLE = "files.parquet"
ENTITIES_TABLE = "entities.parquet"
MENTIONS_TABLE = "mentions.parquet"
TRIPLES_TABLE = "triples.parquet"
TABLES = {
    "files": FILES_TABLE,
    "entities": ENTITIES_TABLE,
    "mentions": MENTIONS_TABLE,
    "triples": TRIPLES_TABLE,
}


def entity_columns(
    kg_dir: str | Path, columns: list[str], ids: Iterable[str] | None = None
) -> dict[str, dict[str, object]]:
    """column -> {entity id: value} from entities.parquet, for every entity or only those of `ids`."""
    table = pq.read_table(Path(kg_dir) / ENTITIES_TABLE, columns=["id", *columns])
    if ids is not None:
        table = table.filter(pc.is_in(table["id"], pa.array(sorted(ids), pa.string())))
    cols = table.to_pydict()
    return {c: dict(zip(cols["id"], cols[c])) for c in columns}


def entity_names(kg_dir: str | Path, ids: Iterable[str] | None = None) -> dict[str, str]:
    """entity id -> its short name (`py:pkg.mod.Cls.run` -> `run`), for every entity or only `ids`."""
    return entity_columns(kg_dir, ["name"], ids)["name"]


def short_name(names: Mapping[str, str], entity: str) -> str:
    """`entity`'s short name in `names` (from `entity_names`), the name its leaf group holds; the id
    itself for an id without an entity. Extraction lists every head and tail of a triple as an
    entity (an external tail too), so that fallback only guards a graph not written by `extract`."""
    return names.get(entity, entity)


def names_of(kg_dir: str | Path, ids: Iterable[str]) -> dict[str, str]:
    """Each of `ids` -> its `short_name`."""
    ids = set(ids)
    names = entity_names(kg_dir, ids)
    return {i: short_name(names, i) for i in ids}
