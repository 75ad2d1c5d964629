"""The four tables of the graph (Arrow): their schemas, their assembly from resolved parts, their metrics.

Resolution gives the hierarchy rows (one serial pass) and one `part` per run of files;
a part's rows are unique within it. Assembly concatenates, in the order a single pass
over all files would give them, and drops a row that repeats one of an earlier part:
that can only happen for a head that is not defined in the row's own file alone, so
only those rows are compared (a few hundred of the corpus's 270,000). Tails that are
not defined entities become `external` entities in the order they first appear.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from graphmer.extract.records import FileGraph
from graphmer.extract.resolve import Columns, Resolver
from graphmer.languages import LANGUAGES
from graphmer.relations import NUM_RELATIONS, RELATION_NAMES, RESOLUTIONS, Relation

SCHEMAS = {
    "files": pa.schema(
        [
            ("path", pa.string()),
            ("source", pa.string()),
            ("language", pa.string()),
            ("bytes", pa.int64()),
            ("sha256", pa.string()),
            ("lines", pa.int64()),
            ("error_nodes", pa.int64()),
            ("skipped", pa.string()),
        ]
    ),
    "entities": pa.schema(
        [
            ("id", pa.string()),
            ("kind", pa.string()),
            ("name", pa.string()),
            ("language", pa.string()),
            ("file", pa.string()),
            ("start_line", pa.int64()),
            ("end_line", pa.int64()),
        ]
    ),
    "mentions": pa.schema(
        [
            ("entity_id", pa.string()),
            ("file", pa.string()),
            ("start_byte", pa.int64()),
            ("end_byte", pa.int64()),
            ("role", pa.string()),
        ]
    ),
    "triples": pa.schema(
        [
            ("head", pa.string()),
            ("relation", pa.int8()),
            ("tail", pa.string()),
            ("file", pa.string()),
            ("line", pa.int64()),
            ("resolution", pa.string()),
            ("language", pa.string()),
        ]
    ),
}
"""The four tables of the graph (the columns every later stage reads), in the order they are
built and written."""


def rows_table(rows: list[tuple], name: str) -> pa.Table:
    """Rows (tuples in the order of SCHEMAS[name]) as a table of that schema."""
    schema = SCHEMAS[name]
    columns = list(zip(*rows)) if rows else [()] * len(schema)
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, schema)], schema=schema)


def columns_table(columns: Columns, name: str) -> pa.Table:
    """Columns ({name: values}, as `resolve.columns`) as a table of the schema SCHEMAS[name]."""
    schema = SCHEMAS[name]
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)


def files_table(rows: list[dict]) -> pa.Table:
    return rows_table([tuple(r[k] for k in SCHEMAS["files"].names) for r in rows], "files")


def hierarchy_tables(resolver: Resolver, graphs: list[FileGraph]) -> dict[str, pa.Table]:
    """The `inherits`/`implements` rows and their `ref` mentions (`Resolver.hierarchy`) and the
    tails among them that are no defined entity (`externals`)."""
    rows, mentions = resolver.hierarchy(graphs)
    return {
        "rows": columns_table(rows, "triples"),
        "mentions": columns_table(mentions, "mentions"),
        "externals": externals(rows, resolver.entities),
    }


def part_tables(resolver: Resolver, graphs: list[FileGraph]) -> dict[str, pa.Table]:
    """One part of the graph: the rows and `ref` mentions of `graphs`' facts (`Resolver.part`),
    the tails among them that are no defined entity (`externals`), the entities `graphs` define
    first (`entities`) and the `def` mentions of all they define."""
    rows, overrides, mentions = resolver.part(graphs)
    first = [e for g in graphs for e in g.entities if resolver.entities[e.id] is e]
    return {
        "rows": columns_table(rows, "triples"),
        "overrides": rows_table(overrides, "triples"),  # tails that are methods: none is external
        "mentions": columns_table(mentions, "mentions"),
        "externals": externals(rows, resolver.entities),
        "entities": rows_table(
            [(e.id, e.kind, e.name, e.language, e.file, e.start_line, e.end_line) for e in first], "entities"
        ),
        "defs": rows_table(
            [(e.id, e.file, *e.span, "def") for g in graphs for e in g.entities if e.span is not None],
            "mentions",
        ),
    }


def assemble(
    files: pa.Table, hierarchy: dict[str, pa.Table], parts: list[dict[str, pa.Table]], redefined: set[str]
) -> dict[str, pa.Table]:
    """The four tables from the hierarchy's tables and the parts, in file order. A row that
    `unique_across_parts` drops repeats an earlier one, tail and all, so the externals of all rows
    first used are those of the rows kept."""
    defined = pa.concat_tables([p["entities"] for p in parts])
    triples = pa.concat_tables(
        [hierarchy["rows"]] + [p["rows"] for p in parts] + [p["overrides"] for p in parts]
    )
    if len(parts) > 1:
        triples = unique_across_parts(triples, defined, redefined)
    outside = first_of_each(
        pa.concat_tables([hierarchy["externals"]] + [p["externals"] for p in parts]), "id"
    )
    return {
        "files": files,
        "entities": pa.concat_tables([defined, outside]).combine_chunks(),
        "mentions": pa.concat_tables(
            [p["defs"] for p in parts] + [hierarchy["mentions"]] + [p["mentions"] for p in parts]
        ).combine_chunks(),
        "triples": triples.combine_chunks(),
    }


def unique_across_parts(triples: pa.Table, defined: pa.Table, redefined: set[str]) -> pa.Table:
    """`triples` without the rows that repeat an earlier (head, relation, tail). A head that only
    its own file defines has all its rows in one part, unique there; the rest are compared here:
    rows whose head another file defines too, or is not the row's file's, and every row of those
    heads."""
    defined = defined.combine_chunks()
    owner = pc.take(defined["file"], pc.index_in(triples["head"], value_set=defined["id"]))
    shared = pc.fill_null(pc.not_equal(owner, triples["file"]), True)
    shared = pc.or_(shared, pc.is_in(triples["head"], value_set=pa.array(sorted(redefined), pa.string())))
    compared = pc.is_in(triples["head"], value_set=pc.unique(triples["head"].filter(shared)))
    where = pc.indices_nonzero(compared).to_pylist()
    if not where:
        return triples
    keys = triples.select(["head", "relation", "tail"]).take(where).to_pylist()
    seen: set[tuple] = set()
    drop = []
    for i, k in zip(where, keys):
        key = (k["head"], k["relation"], k["tail"])
        if key in seen:
            drop.append(i)
        seen.add(key)
    if not drop:
        return triples
    keep = [True] * triples.num_rows
    for i in drop:
        keep[i] = False
    return triples.filter(pa.array(keep))


def externals(rows: Columns, defined: Mapping[str, object]) -> pa.Table:
    """Every tail of `rows` that is not a `defined` entity (kind `external`, no file), in order of
    first use, with the language of the row that first uses it."""
    first: dict[str, str] = {}
    for tail, lang in zip(rows["tail"], rows["language"]):
        if tail not in defined:
            first.setdefault(tail, lang)
    return rows_table(
        [(t, "external", short_name(t), lang, None, None, None) for t, lang in first.items()], "entities"
    )


def first_of_each(table: pa.Table, key: str) -> pa.Table:
    """The rows of `table` whose `key` no earlier row has."""
    seen: set = set()
    keep = []
    for i, k in enumerate(table[key].to_pylist()):
        if k not in seen:
            seen.add(k)
            keep.append(i)
    return table.take(pa.array(keep, pa.int64()))


def short_name(entity_id: str) -> str:
    """`len` of `py:builtins.len`, `m` of `js:a/b.js:C.m`."""
    return entity_id.split(":", 1)[1].rsplit(".", 1)[-1].rsplit(":", 1)[-1]


# ----------------------------------------------------------------------------- metrics


def counts(column: pa.ChunkedArray | pa.Array) -> Counter:
    return Counter({d["values"]: d["counts"] for d in pc.value_counts(column).to_pylist()})


def kg_metrics(tables: dict[str, pa.Table], seconds: float, reused: int = 0) -> dict:
    files = tables["files"]
    parsed = pc.equal(pc.fill_null(files["skipped"], ""), "")
    skipped = counts(files["skipped"].filter(pc.invert(parsed)))
    errors = files["error_nodes"].filter(parsed)
    triples = tables["triples"]
    per_rel = Counter(
        {
            (d["relation"], d["language"]): d["count_all"]
            for d in triples.group_by(["relation", "language"]).aggregate([([], "count_all")]).to_pylist()
        }
    )
    kinds = counts(tables["entities"]["kind"])
    res = counts(triples["resolution"])
    n = max(triples.num_rows, 1)
    mb = (pc.sum(files["bytes"].filter(parsed)).as_py() or 0) / 1e6
    return {
        "files": files.num_rows,
        "files_extracted": len(errors),
        "files_skipped": dict(sorted(skipped.items())),
        "files_from_cache": reused,
        "files_with_errors": pc.sum(pc.greater(errors, 0)).as_py() or 0,
        "error_nodes": pc.sum(errors).as_py() or 0,
        "entities": sum(kinds.values()) - kinds["external"],
        "external_entities": kinds["external"],
        "entities_by_kind": dict(sorted(kinds.items())),
        "triples": triples.num_rows,
        "mentions": tables["mentions"].num_rows,
        "triples_by_language": {
            lang: sum(per_rel[(i, lang)] for i in range(NUM_RELATIONS)) for lang in LANGUAGES
        },
        "triples_by_relation": {
            name: {lang: per_rel[(i, lang)] for lang in LANGUAGES} for i, name in enumerate(RELATION_NAMES)
        },
        "resolution_share": {r: round(res[r] / n, 4) for r in RESOLUTIONS},
        **call_resolution(tables),
        "megabytes": round(mb, 3),
        "seconds": round(seconds, 2),
        "mb_per_s": round(mb / max(seconds, 1e-9), 3),
    }


def call_resolution(tables: dict[str, pa.Table]) -> dict:
    """Per language, how many `calls` triples end at an entity the corpus defines (not an
    `external` tail: a builtin, a library, an unresolved name), and their share of the language's
    `calls` (`triples_by_relation.calls`): the number that goes up as resolution improves. Calls of
    a class are `instantiates`, so they are not counted."""
    ents = tables["entities"]
    defined = ents["id"].filter(pc.not_equal(ents["kind"], "external"))
    calls = tables["triples"].filter(pc.equal(tables["triples"]["relation"], int(Relation.CALLS)))
    total = counts(calls["language"])
    inside = counts(calls["language"].filter(pc.is_in(calls["tail"], value_set=defined)))
    return {
        "calls_in_corpus": {lang: inside[lang] for lang in LANGUAGES},
        "calls_in_corpus_share": {lang: round(inside[lang] / max(total[lang], 1), 4) for lang in LANGUAGES},
    }
