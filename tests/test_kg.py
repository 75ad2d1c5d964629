"""Lookups by entity id in the extracted graph."""

import pyarrow as pa
import pyarrow.parquet as pq

from graphmer.kg import entity_columns, entity_names, names_of


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


def test_names_of_gives_each_id_its_short_name_and_an_unknown_id_itself(tmp_path):
    ent = {"id": ["py:m", "py:m.f"], "name": ["m", "f"]}
    pq.write_table(pa.table(ent), tmp_path / "entities.parquet")
    assert names_of(tmp_path, iter(["py:m.f", "py:m.f", "py:?.g"])) == {"py:m.f": "f", "py:?.g": "py:?.g"}
