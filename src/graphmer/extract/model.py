"""Language-neutral records one file's extraction produces (picklable, resolved later)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import NamedTuple

from graphmer.relations import Relation


class Ref(NamedTuple):
    """A reference to resolve after all files are parsed.

    kind: `id` (already exact), `name` (a bare name looked up from `scope`),
    `dotted` (a.b.c: first part looked up as a name), `self` (member of the
    class `scope`, through its hierarchy), `super` (member of a base of class
    `scope`), `member` (member of an unknown receiver).
    """

    kind: str
    text: str
    scope: str = ""


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
    error_nodes: int = 0

    def add(self, head: str, relation: Relation, ref: Ref, node=None, span_node=None) -> None:
        line = node.start_point[0] + 1 if node is not None else 0
        s = span_node or node
        span = (s.start_byte, s.end_byte) if s is not None else None
        self.facts.append(Fact(head, int(relation), ref, line, span))  # ints pickle cheaply


def captures(query, root) -> dict[str, list]:
    """A query's captures by name, each list in document order (the cursor's own order is not
    guaranteed, and which of two definitions of one id comes first must not vary)."""
    from tree_sitter import QueryCursor

    return {
        name: sorted(nodes, key=lambda n: (n.start_byte, -n.end_byte))
        for name, nodes in QueryCursor(query).captures(root).items()
    }


def text(node) -> str:
    """The source text of a tree-sitter node."""
    return node.text.decode("utf-8", "replace")


def dotted_name(node, member: str, field: str) -> str | None:
    """`a.b.c` for a chain of identifiers joined by `member` nodes whose right side is `field`
    (the node names are each grammar's: Python `attribute`, JavaScript `member_expression`)."""
    if node.type == "identifier":
        return text(node)
    if node.type == member:
        obj, name = node.child_by_field_name("object"), node.child_by_field_name(field)
        head = dotted_name(obj, member, field) if obj is not None else None
        return f"{head}.{text(name)}" if head and name is not None else None
    return None


class FileState:
    """What a language extractor tracks while it walks one file: the graph it builds, the kind
    and parent of each definition, and which definitions are tests."""

    language = ""

    def __init__(self, path: str):
        self.g = FileGraph(path=path, language=self.language)
        self.kind: dict[str, str] = {}
        self.parent: dict[str, str] = {}
        self.tests: set[str] = set()

    def entity(self, eid: str, kind: str, name: str, node, parent: str | None, name_node=None) -> None:
        """Define an entity once (a second definition of the same id adds facts, not an entity)."""
        if eid in self.kind:
            return
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


def exact(target: str) -> Ref:
    return Ref("id", target)


class ScopeIndex:
    """Innermost definition (module, class, function) enclosing a byte offset."""

    def __init__(self, scopes: list[tuple[int, int, str, int]]):
        # (start_byte, end_byte, entity id, parent index), sorted by start; nested properly.
        self.scopes = scopes
        self.starts = [s[0] for s in scopes]

    def at(self, byte: int) -> tuple[str, int]:
        i = bisect.bisect_right(self.starts, byte) - 1
        while i > 0 and not (self.scopes[i][0] <= byte < self.scopes[i][1]):
            i = self.scopes[i][3]
        return self.scopes[i][2], i


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


def nest(nodes: list) -> list[int | None]:
    """Parent (index into `nodes`, None at top level) of each definition node; sorted by start."""
    parents: list[int | None] = []
    stack: list[int] = []
    for i, node in enumerate(nodes):
        while stack and nodes[stack[-1]].end_byte <= node.start_byte:
            stack.pop()
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
