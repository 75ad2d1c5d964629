"""JavaScript grammar knowledge: tree-sitter-javascript syntax -> a FileGraph.

Ids are `js:<path in source>:<name>[.<member>]`. Definitions are function and
class declarations, functions or classes bound to a variable, methods (of
classes and of object literals bound to a variable, the namespace pattern of
pre-ES6 code), and test blocks (`it()`, `test()`, `QUnit.test()`). Types come
from JSDoc (`@param {T} x`, `@returns {T}`, `@type {T}`) where present.

The query also captures what a node sits in (the JSDoc comment before it, the
declarator of a `require()`, the call or assignment around `this.x`), never
`node.parent`: tree-sitter finds a parent by walking down from the root, so
asking once per node costs depth squared on deeply nested files.
"""

from __future__ import annotations

import bisect
import posixpath
import re

import tree_sitter_javascript
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
    nest,
    parse,
    scope_index,
    text,
)
from graphmer.relations import Relation

LANGUAGE = Language(tree_sitter_javascript.language())
FUNCTION_VALUES = "[(function_expression) (arrow_function) (generator_function) (class)]"
QUERY = Query(
    LANGUAGE,
    f"""
(function_declaration) @def
(generator_function_declaration) @def
(class_declaration) @def
(method_definition) @def
(variable_declarator name: (identifier) value: {FUNCTION_VALUES}) @def
(variable_declarator name: (identifier)
  value: (object [(pair value: {FUNCTION_VALUES}) (method_definition)])) @def
(pair key: [(property_identifier) (string)] value: {FUNCTION_VALUES}) @def
(assignment_expression left: (member_expression) right: {FUNCTION_VALUES}) @def
(field_definition) @field
(call_expression function: [(identifier) (member_expression)] @testfn
  arguments: (arguments . (string) . [(function_expression) (arrow_function)])) @test
(import_statement) @import
(call_expression function: (identifier) @req (#eq? @req "require") arguments: (arguments . (string))) @require
(call_expression) @call
(new_expression) @new
(throw_statement) @throw
(member_expression object: (this)) @thisprop
((comment) @doc . (_) @documented (#match? @doc "^/[*][*]"))
(variable_declarator
  value: (call_expression
    function: (identifier) @req (#eq? @req "require") arguments: (arguments . (string)))) @requirer
(call_expression function: (member_expression object: (this)) @thiscalled)
(assignment_expression left: (member_expression object: (this)) @thisset)
(augmented_assignment_expression left: (member_expression object: (this)) @thisset)
""",
)
# Statements whose JSDoc documents what they declare: `/** */ const f = ...`, `/** */ export class C`.
DOC_HOLDERS = frozenset(
    {"lexical_declaration", "variable_declaration", "expression_statement", "export_statement"}
)
PREFIX = "js:"
TEST_CALLEES = frozenset({"it", "test", "QUnit.test", "specify"})
GLOBALS = frozenset(
    [
        "Object",
        "Array",
        "String",
        "Number",
        "Boolean",
        "Symbol",
        "Math",
        "JSON",
        "Date",
        "RegExp",
        "Promise",
        "Map",
        "Set",
        "WeakMap",
        "WeakSet",
        "Error",
        "TypeError",
        "RangeError",
        "SyntaxError",
        "ReferenceError",
        "EvalError",
        "URIError",
        "parseInt",
        "parseFloat",
        "isNaN",
        "isFinite",
        "encodeURIComponent",
        "decodeURIComponent",
        "encodeURI",
        "decodeURI",
        "setTimeout",
        "clearTimeout",
        "setInterval",
        "clearInterval",
        "console",
        "window",
        "document",
        "jQuery",
        "$",
        "Intl",
        "Proxy",
        "Reflect",
        "structuredClone",
        "fetch",
        "alert",
        "confirm",
        "prompt",
        "requestAnimationFrame",
    ]
)
JSDOC_PRIMITIVES = frozenset(
    ["number", "string", "boolean", "object", "any", "null", "undefined", "bigint", "symbol"]
)
# A JavaScript name is `[A-Za-z_$][\w$]*` here: `\w` takes any Unicode letter, as the language
# does. Not the tokenizer's ASCII IDENTIFIER: the name read from JSDoc is matched to a parameter
# the grammar parsed, whatever its letters.
JSDOC_PARAM = re.compile(r"@param\s+\{([^}]*)\}\s+\[?([A-Za-z_$][\w$]*)")
JSDOC_RETURN = re.compile(r"@returns?\s+\{([^}]*)\}")
JSDOC_TYPE = re.compile(r"@type\s+\{([^}]*)\}")
TYPE_HEAD = re.compile(r"[A-Za-z_$][\w$.]*")


def builtin_id(name: str) -> str | None:
    return PREFIX + name if name in GLOBALS or name in JSDOC_PRIMITIVES else None


def module_candidates(target: str) -> list[str]:
    """Files an extension-less relative import may name (`./util` -> util.js, util/index.js)."""
    return [target + ext for ext in (".js", ".mjs", ".cjs", ".jsx", "/index.js")]


def jsdoc_type(raw: str) -> str | None:
    m = TYPE_HEAD.search(raw.replace("?", "").replace("!", ""))
    return m.group(0) if m else None


def dotted(node) -> str | None:
    """`a.b.c` for identifier/member_expression chains, else None."""
    return dotted_name(node, "member_expression", "property")


def jsdocs(comments: list, documented: list) -> dict[int, str]:
    """JSDoc text by the id of the node it documents: the node right after the comment, and what a
    documented statement declares. Both lists are in document order; a node's comment is the last
    one to end before it (nothing named lies between a node and its previous sibling)."""
    ends = [c.end_byte for c in comments]
    docs: dict[int, str] = {}
    for node in documented:  # a statement comes before what it holds, whose own comment wins
        doc = text(comments[bisect.bisect_right(ends, node.start_byte) - 1])
        docs[node.id] = doc
        for child in node.named_children if node.type in DOC_HOLDERS else []:
            docs.setdefault(child.id, doc)
            for grandchild in child.named_children if child.type in DOC_HOLDERS else []:
                docs.setdefault(grandchild.id, doc)  # export const f = ...
    return docs


class _File(FileState):
    language = "javascript"

    def __init__(self, path: str, unit: str, size: int, caps: dict[str, list]):
        super().__init__(path, size)
        self.unit = unit
        self.mid = PREFIX + unit
        self.docs = jsdocs(caps.get("doc", []), caps.get("documented", []))
        # require() call id -> its declarator; ids of `this.x` that are called / assigned
        self.requirers = {d.child_by_field_name("value").id: d for d in caps.get("requirer", [])}
        self.this_called = {n.id for n in caps.get("thiscalled", [])}
        self.this_set = {n.id for n in caps.get("thisset", [])}

    def child_id(self, parent: str, name: str) -> str:
        return f"{parent}:{name}" if parent == self.mid else f"{parent}.{name}"

    def class_of(self, scope: str) -> str | None:
        while scope and self.kind.get(scope) not in ("class", "module"):
            scope = self.parent.get(scope, "")
        return scope if self.kind.get(scope) == "class" else None

    def module_target(self, spec: str) -> str:
        if spec.startswith("."):
            base = posixpath.dirname(self.unit)
            return PREFIX + posixpath.normpath(posixpath.join(base, spec))
        return PREFIX + spec

    # ----------------------------------------------------------------- definitions

    def definitions(self, defs: list) -> list:
        parents = nest(defs)
        ids: list[str] = []
        for node, p in zip(defs, parents):
            parent = self.mid if p is None else ids[p]
            name_node, kind, value = self._describe(node, parent)
            name = text(name_node).strip("'\"") if name_node is not None else "anonymous"
            if kind == "test":
                name, kind = f"test({name})", "function"
            qualifier = self._qualifier(node)
            if node.type == "assignment_expression" and not qualifier:
                kind = "function"  # exports.f = function () {...}
            eid = self.child_id(parent, qualifier + name)
            ids.append(eid)
            self.define(eid, kind, name, node, parent, name_node)
            if node.type == "call_expression":
                self.tests.add(eid)
            if kind == "class":
                self._class(value, eid, parent)
            elif kind in ("function", "method"):
                self._function(node, value, eid)
        return list(zip(defs, ids, parents))

    @staticmethod
    def _qualifier(node) -> str:
        """`Outlayer.` for `Outlayer.prototype.layout = function`: keeps same-named methods apart."""
        if node.type != "assignment_expression":
            return ""
        obj = node.child_by_field_name("left").child_by_field_name("object")
        chain = dotted(obj) if obj is not None else None
        parts = [p for p in (chain or "").split(".") if p not in ("prototype", "window", "exports", "module")]
        return "".join(p + "." for p in parts)

    def _describe(self, node, parent: str):
        """(name node, kind, the node holding parameters/body) of a definition node."""
        pkind = self.kind[parent]
        if node.type == "call_expression":
            return node.child_by_field_name("arguments").named_children[0], "test", node
        if node.type in ("variable_declarator", "pair"):
            name = node.child_by_field_name("name") or node.child_by_field_name("key")
            value = node.child_by_field_name("value")
            if value.type == "object":
                return name, "object", value
            kind = "class" if value.type == "class" else ("method" if node.type == "pair" else "function")
            return name, kind, value
        if node.type == "class_declaration":
            return node.child_by_field_name("name"), "class", node
        if node.type == "assignment_expression":  # Cls.prototype.m = function () {...}
            value = node.child_by_field_name("right")
            return node.child_by_field_name("left").child_by_field_name("property"), "method", value
        kind = "method" if node.type == "method_definition" or pkind in ("class", "object") else "function"
        return node.child_by_field_name("name"), kind, node

    def _class(self, node, eid: str, parent: str) -> None:
        heritage = next((c for c in node.children if c.type == "class_heritage"), None)
        for base in heritage.named_children if heritage is not None else []:
            if name := dotted(base):
                self.g.add(eid, Relation.INHERITS, Ref("dotted", name, parent), base)
        for dec in (c for c in node.children if c.type == "decorator"):
            self._decorator(dec, eid)

    def _decorator(self, dec, eid: str) -> None:
        expr = dec.named_children[0] if dec.named_children else None
        if expr is not None and expr.type == "call_expression":
            expr = expr.child_by_field_name("function")
        if expr is not None and (name := dotted(expr)):
            self.g.add(eid, Relation.DECORATED_BY, Ref("dotted", name, eid), dec, expr)

    def _function(self, node, value, eid: str) -> None:
        doc = self._jsdoc(node)
        types = {m.group(2): jsdoc_type(m.group(1)) for m in JSDOC_PARAM.finditer(doc)}
        for dec in (c for c in node.children if c.type == "decorator"):
            self._decorator(dec, eid)
        params = value.child_by_field_name("parameters") or value.child_by_field_name("parameter")
        plist = (
            [params]
            if params is not None and params.type == "identifier"
            else (params.named_children if params is not None else [])
        )
        for param in plist:
            name_node = param
            if param.type == "assignment_pattern":
                name_node = param.child_by_field_name("left")
            elif param.type == "rest_pattern":
                name_node = param.named_children[0] if param.named_children else None
            if name_node is None or name_node.type != "identifier":
                continue
            pid = self.parameter(eid, name_node, param)
            if tname := types.get(text(name_node)):
                self.g.add(pid, Relation.HAS_TYPE, Ref("dotted", tname, eid), param)
        ret = JSDOC_RETURN.search(doc)
        if ret and (tname := jsdoc_type(ret.group(1))) and tname not in ("void", "undefined"):
            self.g.add(eid, Relation.RETURNS, Ref("dotted", tname, eid), node)

    def _jsdoc(self, node) -> str:
        """The /** */ comment right before a definition (or before its declaration statement)."""
        return self.docs.get(node.id, "")

    def class_field(self, node, cls: str) -> None:
        """A field declared in a class body (`x = 1;`, `static y;`)."""
        prop = node.child_by_field_name("property")
        if prop is None:
            return
        fid = self.field(cls, prop, node)
        doc = self._jsdoc(node)
        if (m := JSDOC_TYPE.search(doc)) and (tname := jsdoc_type(m.group(1))):
            self.g.add(fid, Relation.HAS_TYPE, Ref("dotted", tname, cls), node)

    # ----------------------------------------------------------------- references

    def import_(self, node) -> None:
        source = node.child_by_field_name("source")
        if source is None:
            return
        target = self.module_target(text(source).strip("'\"`"))
        self.g.add(self.mid, Relation.IMPORTS, exact(target), node, source)
        clause = next((c for c in node.named_children if c.type == "import_clause"), None)
        for part in clause.named_children if clause is not None else []:
            if part.type == "identifier":  # default import
                self.g.imports[text(part)] = f"{target}:default"
            elif part.type == "namespace_import":
                self.g.imports[text(part.named_children[0])] = target
            elif part.type == "named_imports":
                for spec in part.named_children:
                    name, alias = spec.child_by_field_name("name"), spec.child_by_field_name("alias")
                    self.g.imports[text(alias or name)] = f"{target}:{text(name)}"
                    self.g.add(self.mid, Relation.IMPORTS, exact(f"{target}:{text(name)}"), node, name)

    def require(self, node) -> None:
        spec = node.child_by_field_name("arguments").named_children[0]
        target = self.module_target(text(spec).strip("'\"`"))
        self.g.add(self.mid, Relation.IMPORTS, exact(target), node, spec)
        decl = self.requirers.get(node.id)
        if decl is not None:
            name = decl.child_by_field_name("name")
            if name.type == "identifier":
                self.g.imports[text(name)] = target
            elif name.type == "object_pattern":
                for prop in name.named_children:
                    if prop.type == "shorthand_property_identifier_pattern":
                        self.g.imports[text(prop)] = f"{target}:{text(prop)}"

    def call(self, node, scope: str) -> None:
        fn = node.child_by_field_name("function")
        ref, span = None, fn
        if fn.type == "identifier":
            ref = Ref("name", text(fn), scope)
        elif fn.type == "member_expression":
            obj, prop = fn.child_by_field_name("object"), fn.child_by_field_name("property")
            cls, span = self.class_of(scope), prop
            if obj.type == "this" and cls:
                ref = Ref("self", text(prop), cls)
            elif obj.type == "super" and cls:
                ref = Ref("super", text(prop), cls)
            elif chain := dotted(fn):
                ref = Ref("dotted", chain, scope)
            else:
                ref = Ref("member", text(prop), scope)
        if ref is not None:
            self.add_call(scope, ref, node, span)

    def this_prop(self, node, scope: str) -> None:
        cls = self.class_of(scope)
        if cls is None or node.id in self.this_called:
            return
        prop = node.child_by_field_name("property")
        if node.id in self.this_set:
            self.field(cls, prop, node)
        self.g.add(scope, Relation.ACCESSES, Ref("self", text(prop), cls), node, prop)


def extract(path: str, data: bytes, unit: str) -> FileGraph:
    """The FileGraph of one JavaScript file; `unit` is its path inside its source."""
    tree = parse(LANGUAGE, data)
    caps = captures(QUERY, tree.root_node)
    f = _File(path, unit, len(data), caps)
    f.g.error_nodes = count_errors(tree.root_node)
    f.entity(f.mid, "module", unit.rsplit("/", 1)[-1], tree.root_node, None)
    tests = [n for n in caps.get("test", []) if dotted(n.child_by_field_name("function")) in TEST_CALLEES]
    defs = sorted(caps.get("def", []) + tests, key=lambda n: n.start_byte)
    f.scopes = scope_index(f.mid, len(data), f.definitions(defs))
    for node in caps.get("import", []):
        f.import_(node)
    for node in caps.get("require", []):
        f.require(node)
    for node in caps.get("field", []):
        if (cls := f.enclosing(node, ("class",))) is not None:
            f.class_field(node, cls)
    test_nodes = {n.id for n in tests}
    for node in caps.get("call", []):
        if node.id not in test_nodes and (scope := f.enclosing(node, FUNCTIONS)) is not None:
            f.call(node, scope)
    for node in caps.get("new", []):
        ctor = node.child_by_field_name("constructor")
        scope = f.enclosing(node, FUNCTIONS)
        if scope is not None and ctor is not None and (name := dotted(ctor)):
            f.g.add(scope, Relation.INSTANTIATES, Ref("dotted", name, scope), node, ctor)
    for node in caps.get("throw", []):
        expr = node.named_children[0] if node.named_children else None
        if expr is None or expr.type != "new_expression":
            continue  # a thrown variable or call: its type is not written here
        ctor = expr.child_by_field_name("constructor")
        scope = f.enclosing(node, FUNCTIONS)
        if scope is not None and ctor is not None and (name := dotted(ctor)):
            f.g.add(scope, Relation.RAISES, Ref("dotted", name, scope), node, ctor)
    for node in caps.get("thisprop", []):
        if (scope := f.enclosing(node, FUNCTIONS)) is not None:
            f.this_prop(node, scope)
    return f.g
