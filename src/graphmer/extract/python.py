"""Python grammar knowledge: tree-sitter-python syntax -> a FileGraph of definitions and facts.

Definitions come from one query (run in C); their parameters, types, bases
and decorators are read off each definition node. References (calls, raises,
excepts, `self.x`) come from the same query and are attached to the innermost
enclosing definition by byte offset, so no Python-level walk over every node.
What a node sits in (a decorated definition, a call, an assignment) is captured
by the query too: tree-sitter finds `node.parent` by walking down from the root,
so asking it once per node costs depth squared on deeply nested files.
"""

from __future__ import annotations

import builtins

import tree_sitter_python
from tree_sitter import Language, Query

from graphmer.extract.records import (
    FUNCTIONS,
    FileGraph,
    FileState,
    Ref,
    captures,
    count_errors,
    dotted_name,
    exact,
    is_test_path,
    nest,
    parse,
    scope_index,
    text,
)
from graphmer.relations import Relation

LANGUAGE = Language(tree_sitter_python.language())
QUERY = Query(
    LANGUAGE,
    """
(function_definition) @def
(class_definition) @def
(import_statement) @import
(import_from_statement) @import
(call) @call
(raise_statement) @raise
(except_clause) @except
(decorated_definition) @decorated
(attribute object: (identifier) @obj (#any-of? @obj "self" "cls")) @selfattr
(call function: (attribute object: (identifier) @obj (#any-of? @obj "self" "cls")) @selfcalled)
(assignment left: (attribute object: (identifier) @obj (#any-of? @obj "self" "cls")) @selfset)
(augmented_assignment left: (attribute object: (identifier) @obj (#any-of? @obj "self" "cls")) @selfset)
""",
)
BUILTINS = frozenset(dir(builtins))
PREFIX = "py:"


def module_name(rel: str, package_dirs: set[str]) -> str:
    """Dotted module name of a source-relative path: parents count while they hold __init__.py."""
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    start = len(parts) - 1
    while start > 0 and "/".join(parts[:start]) in package_dirs:
        start -= 1
    return ".".join(parts[start:]) or rel.rsplit("/", 1)[-1][:-3]


def dotted(node) -> str | None:
    """`a.b.c` for identifier/attribute chains, else None."""
    return dotted_name(node, "attribute", "attribute")


def base_expr(node):
    """`Generic[T]` -> Generic: the class a subscripted base names."""
    return node.child_by_field_name("value") if node.type == "subscript" else node


def type_ref(node, scope: str) -> Ref | None:
    """The named type of an annotation: `List[Foo]` -> List, `Foo | None` -> Foo, `"Foo"` -> Foo."""
    while node is not None:
        if node.type in ("type", "parenthesized_expression"):
            node = node.named_children[0] if node.named_children else None
        elif node.type in ("subscript", "generic_type"):
            node = node.child_by_field_name("value") or (node.named_children or [None])[0]
        elif node.type == "binary_operator":
            node = node.child_by_field_name("left")
        elif node.type == "string":
            name = text(node).strip("'\"").split("[")[0].split("|")[0].strip()
            return Ref("dotted", name, scope) if name.replace(".", "").isidentifier() else None
        else:
            name = dotted(node)
            return Ref("dotted", name, scope) if name else None
    return None


class _File(FileState):
    """State of one file's extraction."""

    language = "python"

    def __init__(self, path: str, data: bytes, module: str, is_package: bool, caps: dict[str, list]):
        super().__init__(path, len(data))
        self.data, self.module, self.is_package = data, module, is_package
        self.mid = PREFIX + module
        self.test_file = is_test_path(path)
        # definition node id -> its decorated_definition; ids of `self.x` that are called / assigned
        self.decorated = {}
        for d in caps.get("decorated", []):
            if (target := d.child_by_field_name("definition")) is not None:
                self.decorated[target.id] = d
        self.self_called = {n.id for n in caps.get("selfcalled", [])}
        self.self_set = {n.id for n in caps.get("selfset", [])}

    def class_of(self, scope: str) -> str | None:
        return self.parent.get(scope) if self.kind.get(scope) == "method" else None

    # ----------------------------------------------------------------- definitions

    def definitions(self, defs: list) -> list:
        parents = nest(defs)
        ids: list[str] = []
        for node, p in zip(defs, parents):
            name_node = node.child_by_field_name("name")
            name = text(name_node)
            parent = self.mid if p is None else ids[p]
            pkind = self.kind[parent]
            eid = f"{parent}.{name}"
            ids.append(eid)
            if node.type == "class_definition":
                kind = "interface" if self._is_protocol(node) else "class"
            else:
                kind = "method" if pkind in ("class", "interface") else "function"
            self.define(eid, kind, name, node, parent, name_node)
            if (
                kind in ("function", "method")
                and name.startswith("test")
                and (self.test_file or parent.rsplit(".", 1)[-1].startswith("Test"))
            ):
                self.tests.add(eid)
            self._decorators(node, eid)
            if node.type == "class_definition":
                self._class(node, eid)
            else:
                self._function(node, eid, kind)
        return list(zip(defs, ids, parents))

    def _is_protocol(self, node) -> bool:
        bases = node.child_by_field_name("superclasses")
        return bases is not None and any(
            (dotted(base_expr(b)) or "").rsplit(".", 1)[-1] == "Protocol" for b in bases.named_children
        )

    def _decorators(self, node, eid: str) -> None:
        decorated = self.decorated.get(node.id)
        for dec in decorated.children if decorated is not None else []:
            if dec.type == "decorator" and dec.named_children:
                expr = dec.named_children[0]
                if expr.type == "call":
                    expr = expr.child_by_field_name("function")
                name = dotted(expr)
                if name:
                    self.g.add(eid, Relation.DECORATED_BY, Ref("dotted", name, eid), dec, expr)

    def _class(self, node, eid: str) -> None:
        bases = node.child_by_field_name("superclasses")
        for base in bases.named_children if bases is not None else []:
            name = dotted(base_expr(base))
            if name and name.rsplit(".", 1)[-1] not in ("object", "Protocol"):
                self.g.add(eid, Relation.INHERITS, Ref("dotted", name, self.parent[eid]), base)
        body = node.child_by_field_name("body")
        for stmt in body.named_children if body is not None else []:
            if stmt.type == "expression_statement" and stmt.named_children:
                assign = stmt.named_children[0]
                left = assign.child_by_field_name("left") if assign.type == "assignment" else None
                if left is not None and left.type == "identifier":
                    self._field(eid, left, assign.child_by_field_name("type"))

    def _field(self, cls: str, name_node, type_node=None) -> None:
        fid = self.field(cls, name_node, name_node)
        if type_node is not None and (ref := type_ref(type_node, cls)):
            self.g.add(fid, Relation.HAS_TYPE, ref, type_node)

    def _function(self, node, eid: str, kind: str) -> None:
        params = node.child_by_field_name("parameters")
        for i, param in enumerate(params.named_children if params is not None else []):
            name_node, type_node = self._param(param)
            if name_node is None or (i == 0 and kind == "method" and text(name_node) in ("self", "cls")):
                continue
            pid = self.parameter(eid, name_node, param)
            if type_node is not None and (ref := type_ref(type_node, eid)):
                self.g.add(pid, Relation.HAS_TYPE, ref, type_node)
        ret = node.child_by_field_name("return_type")
        if ret is not None and (ref := type_ref(ret, eid)):
            self.g.add(eid, Relation.RETURNS, ref, ret)

    @staticmethod
    def _param(param):
        if param.type == "identifier":
            return param, None
        if param.type in ("default_parameter", "typed_default_parameter"):
            return param.child_by_field_name("name"), param.child_by_field_name("type")
        if param.type in ("list_splat_pattern", "dictionary_splat_pattern"):
            return (param.named_children or [None])[0], None
        if param.type == "typed_parameter":
            inner = param.named_children[0] if param.named_children else None
            if inner is not None and inner.type != "identifier":
                inner = (inner.named_children or [None])[0]
            return inner, param.child_by_field_name("type")
        return None, None

    # ----------------------------------------------------------------- references

    def imports(self, nodes: list) -> None:
        for node in nodes:
            if node.type == "import_statement":
                for item in node.named_children:
                    self._import_item(item, None, node)
            else:
                base = self._from_base(node.child_by_field_name("module_name"))
                if base is None:
                    continue
                if any(c.type == "wildcard_import" for c in node.named_children):
                    self.g.star_imports.append(PREFIX + base)
                    self.g.add(self.mid, Relation.IMPORTS, exact(PREFIX + base), node)
                for item in node.children_by_field_name("name"):
                    self._import_item(item, base, node)

    def _import_item(self, item, base: str | None, node) -> None:
        alias = None
        if item.type == "aliased_import":
            alias = text(item.child_by_field_name("alias"))
            item = item.child_by_field_name("name")
        name = text(item)
        target = f"{base}.{name}" if base else name
        local = alias or (name if base else name.split(".")[0])
        self.g.imports[local] = PREFIX + (target if (base or alias) else local)
        self.g.add(self.mid, Relation.IMPORTS, exact(PREFIX + target), node, item)

    def _from_base(self, node) -> str | None:
        if node is None:
            return None
        if node.type != "relative_import":
            return text(node)
        level = len(text(node)) - len(text(node).lstrip("."))
        rest = text(node).lstrip(".")
        package = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
        if level - 1 > len(package):
            return None
        base = package[: len(package) - (level - 1)]
        return ".".join(base + ([rest] if rest else [])) or None

    def call(self, node, callee, scope: str) -> None:
        ref, span = self._callee_ref(callee, scope)
        if ref is None:
            return
        self.add_call(scope, ref, node, span)

    def _callee_ref(self, callee, scope: str):
        if callee.type == "identifier":
            return (Ref("name", text(callee), scope), callee) if text(callee) != "super" else (None, None)
        if callee.type != "attribute":
            return None, None
        obj, attr = callee.child_by_field_name("object"), callee.child_by_field_name("attribute")
        if obj is None or attr is None:
            return None, None
        name = text(attr)
        cls = self.class_of(scope)
        if obj.type == "identifier" and text(obj) in ("self", "cls") and cls:
            return Ref("self", name, cls), attr
        fn = obj.child_by_field_name("function") if obj.type == "call" else None
        if fn is not None and fn.type == "identifier" and text(fn) == "super" and cls:
            return Ref("super", name, cls), attr
        chain = dotted(callee)
        if chain:
            return Ref("dotted", chain, scope), attr
        return Ref("member", name, scope), attr

    def raise_(self, node, scope: str) -> None:
        expr = node.named_children[0] if node.named_children else None
        if expr is not None and expr.type == "call":
            expr = expr.child_by_field_name("function")
        name = dotted(expr) if expr is not None else None
        if name and name.rsplit(".", 1)[-1][:1].isupper():
            self.g.add(scope, Relation.RAISES, Ref("dotted", name, scope), node, expr)

    def except_(self, node, scope: str) -> None:
        for expr in node.named_children:
            if expr.type == "block":
                break
            if expr.type == "as_pattern":
                expr = expr.named_children[0]
            items = expr.named_children if expr.type in ("tuple", "parenthesized_expression") else [expr]
            for item in items:
                name = dotted(item)
                if name:
                    self.g.add(scope, Relation.CATCHES, Ref("dotted", name, scope), item)

    def self_attr(self, node, scope: str) -> None:
        cls = self.class_of(scope)
        if cls is None or node.id in self.self_called:
            return
        attr = node.child_by_field_name("attribute")
        if node.id in self.self_set:
            self._field(cls, attr)
        self.g.add(scope, Relation.ACCESSES, Ref("self", text(attr), cls), node, attr)


def extract(path: str, data: bytes, module: str) -> FileGraph:
    """The FileGraph of one Python file; `module` is its dotted module name."""
    tree = parse(LANGUAGE, data)
    caps = captures(QUERY, tree.root_node)
    f = _File(path, data, module, path.endswith("__init__.py"), caps)
    f.g.error_nodes = count_errors(tree.root_node)
    f.entity(f.mid, "module", module.rsplit(".", 1)[-1], tree.root_node, None)
    defs = sorted(caps.get("def", []), key=lambda n: n.start_byte)
    f.scopes = scope_index(f.mid, len(data), f.definitions(defs))
    f.imports(caps.get("import", []))
    for call in caps.get("call", []):
        if (scope := f.enclosing(call, FUNCTIONS)) is not None:
            f.call(call, call.child_by_field_name("function"), scope)
    for node in caps.get("raise", []):
        if (scope := f.enclosing(node, FUNCTIONS)) is not None:
            f.raise_(node, scope)
    for node in caps.get("except", []):
        if (scope := f.enclosing(node, FUNCTIONS)) is not None:
            f.except_(node, scope)
    for node in caps.get("selfattr", []):
        if (scope := f.enclosing(node, FUNCTIONS)) is not None:
            f.self_attr(node, scope)
    return f.g


def builtin_id(name: str) -> str | None:
    return f"{PREFIX}builtins.{name}" if name in BUILTINS else None
