"""Language-neutral records one file's extraction produces (picklable, resolved later)."""

from __future__ import annotations

import bisect
import operator
from dataclasses import dataclass, field
from typing import NamedTuple

from graphmer.relations import Relation


class Ref(NamedTuple):
    """A reference to resolve after all files are parsed.

    kind: `id` (already exact), `name` (a bare name looked up from `scope`),
    `dotted` (a.b.c: first part looked up as a name), `self` (member of the
    class `scope`, through its hierarchy), `super` (member of a base of class
    `scope`), `typed` (member `text` of the value `receiver` describes, whose class
    the resolver infers), `member` (member of an unknown receiver: never resolved
    by its name alone).
    """

    kind: str
    text: str
    scope: str = ""
    receiver: tuple = ()  # a Value, for kind `typed`


# A Value describes what a receiver holds, for the resolver to infer its class. Plain nested
# tuples (they pickle without classes, so the parse cache can store them):
#   ("self", cls)              an instance of the class `cls` (an entity id)
#   ("type", dotted, scope)    what `dotted`, looked up from `scope`, names: a class -> an instance
#                              of it; a function or method -> an instance of its declared return
#                              type (`x = Foo()`, `x = make()`, `x: Foo`, `Foo x`, `new Foo()`)
#   ("attr", value, name)      member `name` of `value`: a field -> an instance of its type (its
#                              `has_type` fact or FileGraph.types); a method -> of its return type
Value = tuple


@dataclass
class Entity:
    id: str
    kind: str
    name: str
    language: str
    file: str
    start_line: int
    end_line: int
    parent: str | None = None
    span: tuple[int, int] | None = None  # bytes of the name, for the `def` mention


_new_tuple = tuple.__new__


class Fact(NamedTuple):
    head: str
    relation: int  # a Relation value
    ref: Ref
    line: int
    span: tuple[int, int] | None = None  # bytes of the reference, for a `ref` mention


@dataclass
class FileGraph:
    path: str
    language: str
    entities: list[Entity] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    imports: dict[str, str] = field(default_factory=dict)  # local alias -> target id
    star_imports: list[str] = field(default_factory=list)  # modules whose names are all imported
    types: dict[str, Value] = field(default_factory=dict)  # field id -> what it holds (no has_type)
    unions: list[str] = field(default_factory=list)  # ids typed (has_type/returns) by a union: no Value
    dynamic: list[str] = field(default_factory=list)  # classes that may make members at run time
    error_nodes: int = 0

    def add(self, head: str, relation: Relation, ref: Ref, node=None, span_node=None) -> None:
        line = node.start_point[0] + 1 if node is not None else 0
        s = span_node or node
        span = (s.start_byte, s.end_byte) if s is not None else None
        # ints pickle cheaply; tuple.__new__, as Fact's own __new__ does without its Python frame
        # (a third of this call, made for each of the corpus's 364,000 facts)
        self.facts.append(_new_tuple(Fact, (head, int(relation), ref, line, span)))


def captures(query, root) -> dict[str, list]:
    """A query's captures by name, each list in document order (the cursor's own order is not
    guaranteed, and which of two definitions of one id comes first must not vary)."""
    from tree_sitter import QueryCursor

    return {name: document_order(nodes) for name, nodes in QueryCursor(query).captures(root).items()}


def document_order(nodes: list) -> list:
    """`nodes` by start, the outer of two that start together first: sorted by end descending,
    then (stable) by start, which reads each offset through C rather than a Python key function."""
    nodes = sorted(nodes, key=_END, reverse=True)
    nodes.sort(key=_START)
    return nodes


_START, _END = operator.attrgetter("start_byte"), operator.attrgetter("end_byte")


def text(node) -> str:
    """The source text of a tree-sitter node."""
    return node.text.decode("utf-8", "replace")


def dotted_name(node, member: str, field: str) -> str | None:
    """`a.b.c` for a chain of identifiers joined by `member` nodes whose right side is `field`
    (the node names are each grammar's: Python `attribute`, JavaScript `member_expression`).
    A loop, not recursion: a 1,000-link chain in one file must not overflow the stack."""
    names = []
    while node is not None and node.type == member:
        name = node.child_by_field_name(field)
        if name is None:
            return None
        names.append(text(name))
        node = node.child_by_field_name("object")
    if node is None or node.type != "identifier":
        return None
    names.append(text(node))
    return ".".join(reversed(names))


MAX_SYNTAX_DEPTH = 4000
"""A syntax tree deeper than this makes the file skipped as `too_deep`, before any query runs.
tree-sitter's query engine slows down sharply on very deep trees: a 555 KB file nested 18,000
levels took 15 s to query, 16,000 nested object literals 19 s, while 1 MB of 8,000-level nests
takes 0.1 to 0.5 s. Real code stays under 100 levels (76 in our corpus); long `+` concatenations
and else-if ladders reach a few hundred, a 1,000-link attribute chain 1,005."""

MAX_NESTING = 100
"""Definitions inside definitions deeper than this make the file skipped as `too_deep`. Every id
spells its chain of parents (`py:m.f.g.h`), so the ids, the lookups along the chain and the tables
grow with depth squared: 20,000 nested functions took 139 s and 3.2 GB. Capping keeps the ids as
they are; real code nests a few levels, callbacks and namespace objects a few dozen."""

ID_CHARS_PER_BYTE = 32
"""A file whose entity ids add up to more characters than this many per byte of source (and over
ID_CHARS_FLOOR) is skipped as `ids_too_long`. Long names under shallow nesting blow up the same
way: 38,000 methods in a class with a 4,900-character name took 3 GB from a 1 MB file. Real files
stay under 4 (the largest of our corpus: 105,000 characters of ids from 164 KB)."""
ID_CHARS_FLOOR = 1_000_000


class SkipExtraction(Exception):
    """A file an extractor gives up on, with the reason files.parquet lists it under."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class FileState:
    """What a language extractor tracks while it walks one file: the graph it builds, the kind
    and parent of each definition, and which definitions are tests."""

    language = ""

    def __init__(self, path: str, size: int):
        self.g = FileGraph(path=path, language=self.language)
        self.kind: dict[str, str] = {}
        self.parent: dict[str, str] = {}
        self.tests: set[str] = set()
        self.scopes: ScopeIndex | None = None  # set once the definitions are known
        self.id_chars, self.id_budget = 0, max(ID_CHARS_PER_BYTE * size, ID_CHARS_FLOOR)

    def entity(self, eid: str, kind: str, name: str, node, parent: str | None, name_node=None) -> None:
        """Define an entity once (a second definition of the same id adds facts, not an entity)."""
        if eid in self.kind:
            return
        self.id_chars += len(eid)
        if self.id_chars > self.id_budget:
            raise SkipExtraction("ids_too_long")
        self.kind[eid] = kind
        if parent:
            self.parent[eid] = parent
        span = (name_node.start_byte, name_node.end_byte) if name_node is not None else None
        self.g.entities.append(
            Entity(
                eid,
                kind,
                name,
                self.language,
                self.g.path,
                node.start_point[0] + 1,
                node.end_point[0] + 1,
                parent,
                span,
            )
        )

    def define(self, eid: str, kind: str, name: str, node, parent: str, name_node) -> None:
        """A definition and the fact that its parent contains it."""
        self.entity(eid, kind, name, node, parent, name_node)
        self.g.add(parent, Relation.CONTAINS, exact(eid), node, name_node)

    def member(self, owner: str, kind: str, relation: Relation, name_node, node) -> str:
        """Define `owner.<name>` (a parameter or field) and the fact that `owner` has it; its id."""
        name = text(name_node)
        mid = f"{owner}.{name}"
        self.entity(mid, kind, name, node, owner, name_node)
        self.g.add(owner, relation, exact(mid), node, name_node)
        return mid

    def parameter(self, owner: str, name_node, node) -> str:
        return self.member(owner, "parameter", Relation.HAS_PARAMETER, name_node, node)

    def field(self, cls: str, name_node, node) -> str:
        """A field, defined and linked to its class where it first appears (a declaration in the
        class body, `self.x = ...`, `this.x = ...`); a later appearance adds nothing."""
        fid = f"{cls}.{text(name_node)}"
        if fid not in self.kind:
            self.member(cls, "field", Relation.HAS_FIELD, name_node, node)
        return fid

    def add_call(self, scope: str, ref: Ref, node, span_node) -> None:
        """A call from `scope`; from a test, the callee is also what the test tests."""
        self.g.add(scope, Relation.CALLS, ref, node, span_node)
        if scope in self.tests:
            self.g.add(scope, Relation.TESTS, ref, node, span_node)

    def enclosing(self, node, kinds: tuple[str, ...]) -> str | None:
        """The innermost definition around `node` when it is one of `kinds`, else None (a call at
        module level or in a class body belongs to no function)."""
        sid, _ = self.scopes.at(node.start_byte)
        return sid if self.kind.get(sid) in kinds else None


FUNCTIONS = ("function", "method")
CLASSES = ("class", "interface")


def exact(target: str) -> Ref:
    return Ref("id", target)


class ScopeIndex:
    """Innermost definition (module, class, function) enclosing a byte offset."""

    def __init__(self, scopes: list[tuple[int, int, str, int]]):
        # (start_byte, end_byte, entity id, parent index), sorted by start; nested properly.
        self.scopes = scopes
        self.starts = [s[0] for s in scopes]

    def at(self, byte: int) -> tuple[str, int]:
        scopes = self.scopes
        i = bisect.bisect_right(self.starts, byte) - 1
        while i > 0 and byte >= scopes[i][1]:  # scope i starts at or before `byte`, so do its parents
            i = scopes[i][3]
        return scopes[i][2], i


def count_errors(root) -> int:
    """Error and missing nodes of a tree (iteratively; error-free trees cost one check)."""
    if not root.has_error:
        return 0
    n, stack = 0, [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            n += 1
        stack.extend(c for c in node.children if c.has_error or c.is_missing)
    return n


def deeper_than(root, limit: int) -> bool:
    """Whether any node lies more than `limit` levels below `root`. A subtree with fewer nodes than
    levels left cannot reach the limit and is not entered, so code of ordinary depth costs a few
    hundred steps however long it is."""
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if depth + node.descendant_count - 1 > limit:
            stack.extend((child, depth + 1) for child in node.children)
    return False


def parse(language, data: bytes):
    """The syntax tree of one file, or SkipExtraction(`too_deep`) past MAX_SYNTAX_DEPTH levels."""
    from tree_sitter import Parser

    tree = Parser(language).parse(data)
    if deeper_than(tree.root_node, MAX_SYNTAX_DEPTH):
        raise SkipExtraction("too_deep")
    return tree


def nest(nodes: list) -> list[int | None]:
    """Parent (index into `nodes`, None at top level) of each definition node; sorted by start.
    Gives up (`too_deep`) past MAX_NESTING levels, before any id is built."""
    parents: list[int | None] = []
    stack: list[int] = []
    for i, node in enumerate(nodes):
        while stack and nodes[stack[-1]].end_byte <= node.start_byte:
            stack.pop()
        if len(stack) >= MAX_NESTING:
            raise SkipExtraction("too_deep")
        parents.append(stack[-1] if stack else None)
        stack.append(i)
    return parents


def scope_index(module_id: str, size: int, scoped: list[tuple[object, str, int | None]]) -> ScopeIndex:
    """ScopeIndex over (node, entity id, parent index in `scoped`) with the module as scope 0."""
    rows = [(0, size + 1, module_id, 0)]
    rows += [(n.start_byte, n.end_byte, eid, 0 if p is None else p + 1) for n, eid, p in scoped]
    return ScopeIndex(rows)


def is_test_path(path: str) -> bool:
    """A file of tests, by the conventions of pytest, JUnit and JS test runners."""
    low = path.lower()
    name = low.rsplit("/", 1)[-1]
    dirs = low.split("/")[:-1]
    return (
        name.startswith("test")
        or name.endswith(
            ("_test.py", "test.java", "tests.java", ".test.js", ".spec.js", "_test.js", ".tests.js")
        )
        or any(d in ("test", "tests", "js_tests", "__tests__", "spec") for d in dirs)
    )
