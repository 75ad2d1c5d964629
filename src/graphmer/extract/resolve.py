"""Cross-file name resolution, language-neutral: FileGraphs in, triples, entities, mentions out.

After parsing, first the hierarchy (`inherits`, `implements`), in file order: a
base is looked up through the bases found before it. Then every other fact, in
parts (runs of files) that need nothing of each other, so they can be resolved in
parallel; a part's rows are unique within it, and `tables` merges the parts.
A name is looked up through the scope chain of its
definition (local -> enclosing -> module), then the file's imports (following
re-exports), star imports, the language's builtins, and finally by a unique
simple name across the corpus. `self`/`this`/`super` members are looked up in
the class hierarchy. Every triple records how its tail was found: `exact`,
`import`, `hierarchy`, `name` or `unresolved`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from graphmer.extract.records import Entity, Fact, FileGraph, Ref, is_test_path
from graphmer.relations import Relation


@dataclass(frozen=True)
class LanguageSpec:
    prefix: str
    builtin: Callable[[str], str | None]
    class_scope_visible: bool  # can a method name its class's members bare (Java) or not
    module_candidates: Callable[[str], list[str]] = lambda target: []  # ids an import may mean
    qualified_names: bool = False  # `java.io.IOException` in code names a type fully


TRIPLE_COLUMNS = ("head", "relation", "tail", "file", "line", "resolution", "language")
MENTION_COLUMNS = ("entity_id", "file", "start_byte", "end_byte", "role")
ENTITY_COLUMNS = ("id", "kind", "name", "language", "file", "start_line", "end_line")
TAIL_DECIDES = frozenset({Relation.CALLS, Relation.INHERITS, Relation.ACCESSES, Relation.TESTS})
HIERARCHY = frozenset({Relation.INHERITS, Relation.IMPLEMENTS})
CALLABLE = ("function", "method", "class", "interface")
CLASSES = ("class", "interface")


class Resolver:
    def __init__(self, graphs: list[FileGraph], specs: dict[str, LanguageSpec], max_depth: int):
        self.specs = specs
        self.max_depth = max_depth  # links followed for one name (ExtractConfig.resolve_depth)
        self.by_prefix = {spec.prefix: spec for spec in specs.values()}
        self.entities: dict[str, Entity] = {}
        self.children: dict[str, dict[str, str]] = defaultdict(dict)
        self.by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.imports: dict[str, dict[str, str]] = {}
        self.stars: dict[str, list[str]] = {}
        self.module_imports: dict[str, dict[str, str]] = {}
        self.redefined: set[str] = set()  # ids defined in more than one file (the first one counts)
        for g in graphs:
            self.imports[g.path], self.stars[g.path] = g.imports, g.star_imports
            if g.entities:
                self.module_imports.setdefault(g.entities[0].id, g.imports)
            for e in g.entities:
                if e.id in self.entities:
                    self.redefined.add(e.id)
                    continue
                self.entities[e.id] = e
                if e.parent:
                    self.children[e.parent].setdefault(e.name, e.id)
                if e.kind in CALLABLE:
                    self.by_name[(e.language, e.name)].add(e.id)
        self._unique = {key: next(iter(ids)) for key, ids in self.by_name.items() if len(ids) == 1}
        self.bases: dict[str, list[str]] = defaultdict(list)
        self._ancestors: dict[str, list[str]] = {}
        self._hierarchy_done = False
        self._names: dict[tuple[str, str, str], tuple[str, str] | None] = {}

    # ----------------------------------------------------------------- lookups

    def member(self, owner: str, name: str, depth: int = 0) -> tuple[str, str] | None:
        """`owner.name` for a defined owner: its children, a module's imports, a class's ancestors."""
        if depth > self.max_depth:
            return None
        if name in self.children.get(owner, {}):
            return self.children[owner][name], "exact"
        target = self.module_imports.get(owner, {}).get(name)
        if target:
            found = self.path(target, depth + 1)
            return (found[0], "import") if found else (target, "import")
        if self.entities.get(owner) and self.entities[owner].kind in CLASSES:
            found = self.in_hierarchy(owner, name, include_self=False)
            if found:
                return found, "hierarchy"
        return None

    def path(self, target: str, depth: int = 0) -> tuple[str, str] | None:
        """A dotted id (`py:a.b.C`): defined as is, or reached from its longest defined prefix."""
        if target in self.entities:
            return target, "exact"
        prefix, _, body = target.partition(":")
        spec = self.by_prefix.get(prefix + ":")
        for candidate in spec.module_candidates(target) if spec else []:
            if candidate in self.entities:
                return candidate, "import"
        if ":" in body:  # js:<module path>:<member path>
            head, _, rest = target.rpartition(":")
            parts = rest.split(".")
        else:
            head, sep, last = target.rpartition(".")
            if not sep:
                return None
            parts = [last]
        owner = self.path(head, depth + 1) if depth < self.max_depth else None
        tail = owner[0] if owner else None
        for part in parts:
            step = self.member(tail, part, depth + 1) if tail in self.entities else None
            if step is None:
                return None
            tail = step[0]
        return tail, "import"

    def ancestors(self, cls: str) -> list[str]:
        """Base classes, nearest first (cached: call only once the hierarchy is complete)."""
        if cls in self._ancestors:
            return self._ancestors[cls]
        seen, order, queue = {cls}, [], list(self.bases.get(cls, []))
        while queue:
            c = queue.pop(0)
            if c not in seen:
                seen.add(c)
                order.append(c)
                queue.extend(self.bases.get(c, []))
        if self._hierarchy_done:
            self._ancestors[cls] = order
        return order

    def in_hierarchy(self, cls: str, name: str, include_self: bool = True) -> str | None:
        for c in ([cls] if include_self else []) + self.ancestors(cls):
            if name in self.children.get(c, {}):
                return self.children[c][name]
        return None

    def name(self, name: str, scope: str, file: str, lang: str) -> tuple[str, str] | None:
        key = (name, scope, file)
        if key not in self._names:
            self._names[key] = self._lookup(name, scope, file, lang)
        return self._names[key]

    def _lookup(self, name: str, scope: str, file: str, lang: str) -> tuple[str, str] | None:
        spec = self.specs[lang]
        s: str | None = scope
        first = True
        while s:
            ent = self.entities.get(s)
            skip = ent is not None and ent.kind in CLASSES and not first and not spec.class_scope_visible
            if not skip and name in self.children.get(s, {}):
                return self.children[s][name], "exact"
            first = False
            s = ent.parent if ent else None
        target = self.imports.get(file, {}).get(name)
        if target:
            found = self.path(target)
            return (found[0], "import") if found else (target, "import")
        for star in self.stars.get(file, []):
            if name in self.children.get(star, {}):
                return self.children[star][name], "import"
        builtin = spec.builtin(name)
        if builtin:
            return builtin, "exact"
        return None

    def unique(self, name: str, lang: str) -> str | None:
        return self._unique.get((lang, name))

    # ----------------------------------------------------------------- refs

    def resolve(self, ref: Ref, file: str, lang: str) -> tuple[str, str]:
        if ref.kind == "id":
            if ref.text in self.entities:
                return ref.text, "exact"
            return self.path(ref.text) or (ref.text, "import")
        prefix = self.specs[lang].prefix
        if ref.kind in ("self", "super"):
            found = self.in_hierarchy(ref.scope, ref.text, include_self=ref.kind == "self")
            if found:
                own = self.entities[found].parent == ref.scope
                return found, "exact" if own else "hierarchy"
            return self._fallback(ref.text, lang, prefix)
        parts = ref.text.split(".")
        if ref.kind == "member":
            return self._fallback(parts[-1], lang, prefix)
        found = self.name(parts[0], ref.scope, file, lang)
        if found is None and len(parts) > 1 and self.specs[lang].qualified_names:
            found = self.path(prefix + ref.text) or (prefix + ref.text, "exact")
            return found
        if found is None:
            return self._fallback(parts[-1], lang, prefix)
        tail, how = found
        for part in parts[1:]:
            if tail in self.entities:
                step = self.member(tail, part)
                if step is None:
                    return self._fallback(part, lang, prefix)
                tail = step[0]
                how = how if step[1] == "exact" else step[1]
            else:
                tail = f"{tail}.{part}"
        return tail, how

    def _fallback(self, name: str, lang: str, prefix: str) -> tuple[str, str]:
        found = self.unique(name, lang)
        return (found, "name") if found else (prefix + "?." + name, "unresolved")

    # ----------------------------------------------------------------- triples

    def hierarchy(self, graphs: list[FileGraph]) -> tuple[list[tuple], list[tuple]]:
        """The `inherits`/`implements` rows (unique) and their `ref` mentions, in file order, each
        base recorded as it is found; after this, `part` may run on any files, in any process."""
        rows: list[tuple] = []
        mentions: list[tuple] = []
        seen: set = set()
        for g in graphs:
            for f in g.facts:
                if f.relation in HIERARCHY:
                    tail, how = self.resolve(f.ref, g.path, g.language)
                    self.bases[f.head].append(tail)
                    self._add(rows, mentions, seen, g, f, tail, how)
        self._hierarchy_done = True
        return rows, mentions

    def part(self, graphs: list[FileGraph]) -> tuple[list[tuple], list[tuple], list[tuple]]:
        """The rows of every other fact of `graphs`, then their `overrides` rows (unique within
        the part; none has an `inherits`/`implements` relation, so none repeats a hierarchy row),
        and the `ref` mentions."""
        rows: list[tuple] = []
        overrides: list[tuple] = []
        mentions: list[tuple] = []
        seen: set = set()
        for g in graphs:
            for f in g.facts:
                if f.relation not in HIERARCHY:
                    self._add(rows, mentions, seen, g, f, *self.resolve(f.ref, g.path, g.language))
        for g in graphs:
            self._overrides(g, overrides, seen)
        return rows, overrides, mentions

    def _add(self, rows, mentions, seen, g: FileGraph, f: Fact, tail: str, how: str) -> None:
        rel = self.relabel(f.head, f.relation, tail)
        if rel is None:
            return
        if f.span and how != "unresolved" and tail in self.entities:
            mentions.append((tail, g.path, f.span[0], f.span[1], "ref"))
        key = (f.head, rel, tail)
        if key not in seen:
            seen.add(key)
            rows.append((f.head, int(rel), tail, g.path, f.line, how, g.language))

    def relabel(self, head: str, rel: Relation, tail: str) -> Relation | None:
        """Relations that the tail's kind decides: a call of a class instantiates it, etc."""
        if rel not in TAIL_DECIDES:
            return rel
        kind = self.entities[tail].kind if tail in self.entities else "external"
        if rel == Relation.CALLS and kind in CLASSES:
            return Relation.INSTANTIATES
        if rel == Relation.INHERITS and kind == "interface" and self.entities[head].kind != "interface":
            return Relation.IMPLEMENTS
        if rel == Relation.ACCESSES and kind in CALLABLE:
            return None
        if rel == Relation.CALLS and kind in ("parameter", "field", "module", "package"):
            return None  # a callback argument or attribute: its target is not known statically
        if rel == Relation.TESTS and (kind not in CALLABLE or is_test_path(self.entities[tail].file)):
            return None
        return rel

    def _overrides(self, g: FileGraph, rows: list, seen: set) -> None:
        for e in g.entities:
            if e.kind != "method" or not e.parent or self.entities.get(e.id) is not e:
                continue
            for anc in self.ancestors(e.parent):
                target = self.children.get(anc, {}).get(e.name)
                if target and self.entities[target].kind == "method":
                    rel = Relation.OVERRIDES
                    if (e.id, rel, target) not in seen:
                        seen.add((e.id, rel, target))
                        rows.append((e.id, int(rel), target, g.path, e.start_line, "hierarchy", g.language))
                    break
