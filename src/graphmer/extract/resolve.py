"""Cross-file name resolution, language-neutral: FileGraphs in, triples, entities, mentions out.

After parsing, first the hierarchy (`inherits`, `implements`), in file order: a
base is looked up through the bases found before it. Then every other fact, in
parts (runs of files) that need nothing of each other, so they can be resolved in
parallel; a part's rows are unique within it, and `tables` merges the parts.
A name is looked up through the scope chain of its
definition (local -> enclosing -> module), then the file's imports (following
re-exports), star imports, the language's builtins, and finally, for a bare
name only, by a unique simple name across the corpus. `self`/`this`/`super`
members are looked up in the class hierarchy; members of a receiver whose value
the extractor described (a `typed` Ref: `x = Foo(); x.get()`) in the hierarchy
of the class inferred for it. A member of an unknown receiver (`b"".join`,
`client.get` of an undescribed local) is never resolved by its name alone: the
only `join` of the corpus is rarely the one called. A member missing from a
corpus class whose one base outside the corpus is known is that base's member
(`self.assertEqual` in a `unittest.TestCase`), unless the class or a corpus base of
it is dynamic (FileGraph.dynamic: a metaclass other than ABCMeta, or its own
`__getattribute__`, may make the member at run time). Every triple records how its tail
was found: `exact`, `import`, `hierarchy`, `inferred` (through a receiver's
inferred class), `name` or `unresolved`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from graphmer.extract.records import CLASSES, Entity, Fact, FileGraph, Ref, Value, is_test_path
from graphmer.relations import Relation


@dataclass(frozen=True)
class LanguageSpec:
    prefix: str
    builtin: Callable[[str], str | None]
    class_scope_visible: bool  # can a method name its class's members bare (Java) or not
    module_candidates: Callable[[str], list[str]] = lambda target: []  # ids an import may mean
    qualified_names: bool = False  # `java.io.IOException` in code names a type fully
    builtin_class: Callable[[str], bool] = lambda tail: False  # a builtin's id names a class
    not_class: Callable[[str], bool] = lambda tail: False  # an id outside the corpus that names no class
    stars_bind: bool = True  # a star import binds its names in the file (Python), or only re-exports (JS)


def unresolved(prefix: str, name: str) -> tuple[str, str]:
    """The tail of a member whose target is unknown (`py:?.append`), and its label."""
    return f"{prefix}?.{name}", "unresolved"


def looks_like_class(tail: str) -> bool:
    """An id outside the corpus names a class by the convention of all three languages: its last
    name is capitalized (`py:requests.Session`, not `py:json.loads`)."""
    last = tail.rsplit(".", 1)[-1].rsplit(":", 1)[-1]
    return last[:1].isupper() and "?." not in tail


TRIPLE_COLUMNS = ("head", "relation", "tail", "file", "line", "resolution", "language")
MENTION_COLUMNS = ("entity_id", "file", "start_byte", "end_byte", "role")
ENTITY_COLUMNS = ("id", "kind", "name", "language", "file", "start_line", "end_line")
TAIL_DECIDES = frozenset({Relation.CALLS, Relation.INHERITS, Relation.ACCESSES, Relation.TESTS})
HIERARCHY = frozenset({Relation.INHERITS, Relation.IMPLEMENTS})
CALLABLE = ("function", "method", "class", "interface")
NOT_CALLED = ("parameter", "field", "module", "package")
OWNERS = ("class", "interface", "object")  # what a global name before a `.` may be (`Widgets.init`)
TYPED = frozenset({Relation.HAS_TYPE, Relation.RETURNS})
# The members relabel compares with, bound once: `Relation.CALLS` is an attribute lookup on the enum
# class, slower than the comparison itself.
CALLS, INHERITS, ACCESSES, TESTS = Relation.CALLS, Relation.INHERITS, Relation.ACCESSES, Relation.TESTS
INSTANTIATES, IMPLEMENTS = Relation.INSTANTIATES, Relation.IMPLEMENTS


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
        self.dynamic: set[str] = set()  # classes that may make members at run time (FileGraph.dynamic)
        # What an entity holds (field, parameter) or returns (function, method), as a Value with
        # the file and language it is read in: its has_type/returns fact, else FileGraph.types;
        # None when its facts name a union's types (FileGraph.unions): it is none of them for certain.
        self.values: dict[str, tuple[Value, str, str] | None] = {}
        owners: dict[tuple[str, str], set[str]] = defaultdict(set)
        for g in graphs:
            self.imports[g.path], self.stars[g.path] = g.imports, g.star_imports
            self.dynamic.update(g.dynamic)
            for eid in g.unions:
                self.values.setdefault(eid, None)
            for f in g.facts:
                if f.relation in TYPED and f.head not in self.values:
                    self.values[f.head] = (("type", f.ref.text, f.ref.scope), g.path, g.language)
            for eid, value in g.types.items():
                self.values.setdefault(eid, (value, g.path, g.language))
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
                if e.kind in OWNERS:
                    owners[(e.language, e.name)].add(e.id)
        # A bare name found by its one definition: a function or class (never a method: a bare name
        # outside a class's body does not reach its methods)
        self._unique = {}
        for key, ids in self.by_name.items():
            plain = [i for i in ids if self.entities[i].kind != "method"]
            if len(plain) == 1:
                self._unique[key] = plain[0]
        self._unique_owner = {key: next(iter(ids)) for key, ids in owners.items() if len(ids) == 1}
        self.bases: dict[str, list[str]] = defaultdict(list)
        self._ancestors: dict[str, list[str]] = {}
        self._hierarchy_done = False
        self._names: dict[tuple[str, str, str], tuple[str, str] | None] = {}
        self._instances: dict[tuple[Value, str, str], str | None] = {}

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
        ent = self.entities.get(owner)
        if ent is not None and ent.kind in CLASSES:
            found = self.in_hierarchy(owner, name, include_self=False)
            if found:
                return found, "hierarchy"
        if ent is not None and ent.kind == "module":
            stars = self.stars.get(ent.file, []) if name != "default" else []  # `export *` leaves it
            for star in stars:  # `export * from`, `from .x import *`
                module = self.path(star, depth + 1)
                if module and module[0] != owner and (found := self.member(module[0], name, depth + 1)):
                    return found[0], "import"
            if name == "default" and ent.language == "javascript":
                return owner, "import"  # CommonJS: without `module.exports = X` the module is the value
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
        for star in self.stars.get(file, []) if spec.stars_bind else []:
            if name in self.children.get(star, {}):
                return self.children[star][name], "import"
        builtin = spec.builtin(name)
        if builtin:
            return builtin, "exact"
        return None

    # ----------------------------------------------------------------- refs

    def resolve(self, ref: Ref, file: str, lang: str) -> tuple[str, str]:
        if ref.kind == "id":
            if ref.text in self.entities:
                return ref.text, "exact"
            return self.path(ref.text) or (ref.text, "import")
        prefix = self.specs[lang].prefix
        if ref.kind == "self" and ref.scope not in self.entities:  # JS `this` of `proto.m = function`
            sibling = f"{ref.scope}.{ref.text}"
            return (sibling, "exact") if sibling in self.entities else unresolved(prefix, ref.text)
        if ref.kind in ("self", "super"):
            found = self.in_hierarchy(ref.scope, ref.text, include_self=ref.kind == "self")
            if found:
                own = self.entities[found].parent == ref.scope
                return found, "exact" if own else "hierarchy"
            if ref.kind == "self" and self.specs[lang].class_scope_visible:
                found = self.in_outer(ref.scope, ref.text)
                if found:
                    return found
            return self.outside(ref.scope, ref.text, "hierarchy") or unresolved(prefix, ref.text)
        if ref.kind == "typed":
            return self.member_of(self.instance_class(ref.receiver, file, lang), ref.text, lang)
        parts = ref.text.split(".")
        if ref.kind == "member":
            return unresolved(prefix, parts[-1])
        found = self.name(parts[0], ref.scope, file, lang)
        if found is None and len(parts) > 1 and self.specs[lang].qualified_names:
            found = self.path(prefix + ref.text) or (prefix + ref.text, "exact")
            return found
        if found is None:  # a name may be the corpus's only one; a member of an unknown value not
            unique = (
                self._unique.get((lang, parts[0]))
                if len(parts) == 1
                else self._unique_owner.get((lang, parts[0]))
            )
            if unique is None:
                return unresolved(prefix, parts[-1])
            found = unique, "name"
        tail, how = found
        for part in parts[1:]:
            if tail in self.entities:
                step = self.member(tail, part)
                if step is None:
                    return unresolved(prefix, parts[-1])
                tail = step[0]
                how = how if step[1] == "exact" else step[1]
            else:
                tail = f"{tail}.{part}"
        return tail, how

    def in_outer(self, cls: str, name: str) -> tuple[str, str] | None:
        """`name` in the classes around `cls` (Java: an inner class calls its outer class's)."""
        outer = self.entities[cls].parent if cls in self.entities else None
        while outer in self.entities:
            if self.entities[outer].kind in CLASSES and (found := self.in_hierarchy(outer, name)):
                return found, "exact" if self.entities[found].parent == outer else "hierarchy"
            outer = self.entities[outer].parent
        return None

    def extension(self, cls: str, name: str, lang: str) -> str | None:
        """The corpus's one method that extends a class outside it (`Date.prototype.twoDigit =
        function` in a JS file is `js:<file>:Date.twoDigit`), if there is exactly one."""
        suffix = ":" + cls.split(":", 1)[-1].rsplit(".", 1)[-1] + "." + name
        found = [i for i in self.by_name.get((lang, name), ()) if i.endswith(suffix)]
        return found[0] if len(found) == 1 else None

    def outside(self, cls: str, name: str, how: str) -> tuple[str, str] | None:
        """`name` of a corpus class that does not define or inherit it in the corpus: the member of
        its one base outside the corpus, when it has exactly one (else which one is unknown) and
        neither the class nor a corpus base is dynamic (what it lacks may be made at run time)."""
        ancestors = self.ancestors(cls)
        if cls in self.dynamic or not self.dynamic.isdisjoint(ancestors):
            return None
        external = [a for a in ancestors if a not in self.entities and "?." not in a]
        return (f"{external[0]}.{name}", how) if len(external) == 1 else None

    # ----------------------------------------------------------------- inferred receivers

    def instance_class(self, value: Value, file: str, lang: str, depth: int = 0) -> str | None:
        """The class (a corpus id, or an id outside the corpus) an instance `value` describes is
        of, or None when it cannot be inferred. `value` is read in `file` (see records.Value)."""
        if depth == 0:
            key = (value, file, lang)
            if key not in self._instances:
                self._instances[key] = self._instance_class(value, file, lang, 0)
            return self._instances[key]
        return self._instance_class(value, file, lang, depth)

    def _instance_class(self, value: Value, file: str, lang: str, depth: int) -> str | None:
        if depth > self.max_depth or not value:
            return None
        if value[0] == "self":
            return value[1]
        if value[0] == "type":
            tail, how = self.resolve(Ref("dotted", value[1], value[2]), file, lang)
            if how == "unresolved":
                return None
            if tail not in self.entities and tail.endswith(":default"):  # `import Ext from 'ext'`
                return tail if looks_like_class(value[1]) else None
            return self.instance_of(tail, depth)
        if value[0] == "attr":
            owner = self.instance_class(value[1], file, lang, depth + 1)
            found = self.in_hierarchy(owner, value[2]) if owner in self.entities else None
            return self.instance_of(found, depth) if found else None
        return None

    def instance_of(self, tail: str, depth: int) -> str | None:
        """The class of the value `tail` gives: a class's instance, a function's or method's
        result, a field's or parameter's content."""
        ent = self.entities.get(tail)
        if ent is None:
            spec = self.by_prefix.get(tail.split(":", 1)[0] + ":")
            if spec is None or spec.not_class(tail) or self.owner_in_corpus(tail):
                return None
            return tail if spec.builtin_class(tail) or looks_like_class(tail) else None
        if ent.kind in CLASSES:
            return tail
        held = self.values.get(tail)
        if held and ent.kind == "method" and held[0][0] == "type" and held[0][1].rsplit(".", 1)[-1] == "Self":
            return ent.parent  # `-> Self` (typing): the method's own class
        return self.instance_class(held[0], held[1], held[2], depth + 1) if held else None

    def owner_in_corpus(self, tail: str) -> bool:
        """An id outside the corpus under a corpus module or class (`py:pkg.types.DataDict`, a type
        alias or variable): the corpus would define it if it were a class."""
        owner = tail.rpartition(":")[0] if tail.count(":") > 1 else tail.rpartition(".")[0]
        return owner in self.entities

    def member_of(self, cls: str | None, name: str, lang: str) -> tuple[str, str]:
        """`name` of an instance of `cls` (`instance_class`), labelled `inferred`."""
        prefix = self.specs[lang].prefix
        if cls is None:
            return unresolved(prefix, name)
        if cls not in self.entities:
            return self.extension(cls, name, lang) or f"{cls}.{name}", "inferred"
        found = self.in_hierarchy(cls, name)
        if found:
            return found, "inferred"
        return self.outside(cls, name, "inferred") or unresolved(prefix, name)

    # ----------------------------------------------------------------- triples

    def hierarchy(self, graphs: list[FileGraph]) -> tuple[Columns, Columns]:
        """The `inherits`/`implements` rows (unique) and their `ref` mentions, in file order, each
        base recorded as it is found; after this, `part` may run on any files, in any process."""
        rows, mentions = columns(TRIPLE_COLUMNS), columns(MENTION_COLUMNS)
        seen: set = set()
        for g in graphs:
            for f in g.facts:
                if f.relation in HIERARCHY:
                    tail, how = self.resolve(f.ref, g.path, g.language)
                    self.bases[f.head].append(tail)
                    self._add(rows, mentions, seen, g, f, tail, how)
        self._hierarchy_done = True
        return rows, mentions

    def part(self, graphs: list[FileGraph]) -> tuple[Columns, list[tuple], Columns]:
        """The rows of every other fact of `graphs`, then their `overrides` rows (tuples; unique
        within the part; none has an `inherits`/`implements` relation, so none repeats a hierarchy
        row), and the `ref` mentions."""
        rows, mentions = columns(TRIPLE_COLUMNS), columns(MENTION_COLUMNS)
        heads, rels, tails = rows["head"], rows["relation"], rows["tail"]
        lines, hows = rows["line"], rows["resolution"]
        targets, starts, ends = mentions["entity_id"], mentions["start_byte"], mentions["end_byte"]
        overrides: list[tuple] = []
        seen: set = set()
        for g in graphs:
            path, lang = g.path, g.language
            # Resolving depends on the reference (its receiver included) and the file alone,
            # relabelling (outside the hierarchy) on the relation, the tail and the language: what
            # a file repeats (one callee, many calls: a third of all references) is resolved once.
            # `_add`, inlined: it runs per fact.
            outcomes: dict[tuple, tuple | None] = {}
            for head, relation, ref, line, span in g.facts:
                if relation in HIERARCHY:
                    continue
                key = (ref, relation)
                outcome = outcomes.get(key, key)
                if outcome is key:
                    outcome = outcomes[key] = self._outcome(
                        head, relation, *self.resolve(ref, path, lang), lang
                    )
                if outcome is None:
                    continue
                rel, tail, how, mentioned = outcome
                if mentioned and span:
                    targets.append(tail)
                    starts.append(span[0])
                    ends.append(span[1])
                if (head, rel, tail) not in seen:
                    seen.add((head, rel, tail))
                    heads.append(head)
                    rels.append(rel)
                    tails.append(tail)
                    lines.append(line)
                    hows.append(how)
            fill(rows, file=path, language=lang)
            fill(mentions, file=path, role="ref")
        for g in graphs:
            self._overrides(g, overrides, seen)
        return rows, overrides, mentions

    def _outcome(self, head: str, relation: int, tail: str, how: str, lang: str) -> tuple | None:
        """What a fact resolved to `tail` (found `how`) adds: its relation once relabelled (None:
        nothing), its tail, how it was found, and whether the tail is a defined entity to mention."""
        rel = self.relabel(head, relation, tail, lang)
        if rel is None:
            return None
        return int(rel), tail, how, how != "unresolved" and tail in self.entities

    def _add(
        self, rows: Columns, mentions: Columns, seen, g: FileGraph, f: Fact, tail: str, how: str
    ) -> None:
        outcome = self._outcome(f.head, f.relation, tail, how, g.language)
        if outcome is None:
            return
        rel, tail, how, mentioned = outcome
        if mentioned and f.span:
            start, end = f.span
            append(mentions, entity_id=tail, file=g.path, start_byte=start, end_byte=end, role="ref")
        if (f.head, rel, tail) not in seen:
            seen.add((f.head, rel, tail))
            append(
                rows,
                head=f.head,
                relation=rel,
                tail=tail,
                file=g.path,
                line=f.line,
                resolution=how,
                language=g.language,
            )

    def relabel(self, head: str, rel: int, tail: str, lang: str) -> int | None:
        """Relations that the tail's kind decides: a call of a class instantiates it, etc."""
        found = self.entities.get(tail)
        if rel == INSTANTIATES and found is not None:
            return None if found.kind in NOT_CALLED else rel
        if rel not in TAIL_DECIDES:
            return rel
        kind = found.kind if found is not None else "external"
        if rel == CALLS and (kind in CLASSES or kind == "external" and self.specs[lang].builtin_class(tail)):
            return INSTANTIATES
        if rel == INHERITS and kind == "interface" and self.entities[head].kind != "interface":
            return IMPLEMENTS
        if rel == ACCESSES and kind in CALLABLE:
            return None
        if rel == CALLS and kind in NOT_CALLED:
            return None  # a callback argument or attribute: its target is not known statically
        if rel == TESTS and (kind not in CALLABLE or is_test_path(found.file)):
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


# ----------------------------------------------------------------------------- rows as columns

Columns = dict[str, list]
"""Rows of a table as columns, {column: values}: Arrow builds tables from columns (rows of tuples
would cost a transpose)."""


def columns(names: tuple[str, ...]) -> Columns:
    return {name: [] for name in names}


def append(table: Columns, **row) -> None:
    for name, value in row.items():
        table[name].append(value)


def fill(table: Columns, **value) -> None:
    """Bring the columns named to the length of the first with one value (a file's path, ...)."""
    n = len(next(iter(table.values())))
    for name, v in value.items():
        table[name] += [v] * (n - len(table[name]))
