"""The 16 relations of the code knowledge graph: ids 0..15, in a fixed order (a saved model's
relation embeddings and every Parquet file store the id, so the order is part of the format)."""

from enum import IntEnum


class Relation(IntEnum):
    CONTAINS = 0
    IMPORTS = 1
    CALLS = 2
    INSTANTIATES = 3
    INHERITS = 4
    IMPLEMENTS = 5
    OVERRIDES = 6
    HAS_PARAMETER = 7
    HAS_TYPE = 8
    RETURNS = 9
    HAS_FIELD = 10
    ACCESSES = 11
    DECORATED_BY = 12
    RAISES = 13
    CATCHES = 14
    TESTS = 15

    @property
    def label(self) -> str:
        return self.name.lower()


RELATION_NAMES = [r.label for r in Relation]
NUM_RELATIONS = len(Relation)

# How a triple's tail was found, most to least certain.
RESOLUTIONS = ("exact", "import", "hierarchy", "inferred", "name", "unresolved")
