"""Lookups by entity id in the extracted graph."""

import pyarrow as pa
import pyarrow.parquet as pq

from graphmer.kg import entity_columns, entity_names


def test_entity_lookups_cover_every_entity_or_the_ones_asked(tmp_path):
    ent = {
        "id": ["py:m", "py:m.f", "py:?.g"],
        "kind": ["module", "function", "external"],
        "name": ["m", "f", "g"],
    }
    pq.write_table(pa.table(ent), tmp_path / "entities.parquet")
    assert entity_names(tmp_path) == {"py:m": "m", "py:m.f": "f", "py:?.g": "g"}
    assert entity_names(tmp_path, {"py:m.f", "py:nowhere"}) == {"py:m.f": "f"}
    assert entity_columns(tmp_path, ["kind", "name"], ["py:?.g"]) == {
        "kind": {"py:?.g": "external"},
        "name": {"py:?.g": "g"},
    }
