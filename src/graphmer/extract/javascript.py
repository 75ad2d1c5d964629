"""JavaScript grammar knowledge: tree-sitter-javascript syntax -> a FileGraph.

Ids are `js:<path in source>:<name>[.<member>]`. Definitions are function and
class declarations, functions or classes bound to a variable, methods (of
classes and of object literals bound to a variable, the namespace pattern of
pre-ES6 code), and test blocks (`it()`, `test()`, `QUnit.test()`). Types come
from JSDoc (`@param {T} x`, `@returns {T}`, `@type {T}`) where present.

A module's exports go into its `imports` under the exported name, for the
resolver to follow from another module: `export default class A` and
`module.exports = A` under `default`, `export { a as b }` and `exports.b = a`
under `b`, `export { x as y } from './m'` as `<m>:x`; `export * from './m'` is a
star import. `require('./m')` binds `<m>:default` (the resolver takes the module
itself when it exports no default), as `import X from` does.

A call's receiver is described as a Value (records.Value) when this file says
what it holds: `x = new Foo()`, a JSDoc `@type {Foo}` or `@param {Foo} x`,
`this.x = new Foo()` in any method (FileGraph.types), `new Foo().m()`. Flow-
insensitive: a name given two different values anywhere in its scope is
unknown, and a member of an unknown local or parameter is a `member` Ref, never
looked up by its name. `null` and `undefined` are no value (`this.x = null` in a
constructor then `this.x = new Foo()` in `open()` still holds a Foo).

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
    Value,
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
(export_statement value: {FUNCTION_VALUES}) @def
(field_definition) @field
(call_expression function: [(identifier) (member_expression)] @testfn
  arguments: (arguments . (string) . [(function_expression) (arrow_function)])) @test
(import_statement) @import
(export_statement) @export
(assignment_expression left: (member_expression object: (identifier) @cjs.obj) (#eq? @cjs.obj "exports")) @cjs
(assignment_expression
  left: (member_expression object: (identifier) @cjs.obj property: (property_identifier) @cjs.prop)
  (#eq? @cjs.obj "module") (#eq? @cjs.prop "exports")) @cjs
(assignment_expression
  left: (member_expression
    object: (member_expression object: (identifier) @cjs.obj property: (property_identifier) @cjs.prop))
  (#eq? @cjs.obj "module") (#eq? @cjs.prop "exports")) @cjs
(call_expression function: (identifier) @req (#eq? @req "require") arguments: (arguments . (string))) @require
(call_expression) @call
(new_expression) @new
(throw_statement) @throw
(member_expression object: (this)) @thisprop
((comment) @doc . (_) @documented (#match? @doc "^/[*][*]"))
(variable_declarator
  value: (call_expression
    function: (identifier) @req (#eq? @req "require") arguments: (arguments . (string)))) @requirer
(variable_declarator name: (identifier)
  value: (member_expression object: (call_expression
    function: (identifier) @req (#eq? @req "require") arguments: (arguments . (string))))) @requirer
(variable_declarator name: (identifier)) @declare
(assignment_expression left: (identifier) right: (_)) @assign
(assignment_expression left: (member_expression object: (this) property: (property_identifier))) @thisassign
(shorthand_property_identifier_pattern) @bound
(pair_pattern value: (identifier) @bound)
(array_pattern (identifier) @bound)
(rest_pattern (identifier) @bound)
(assignment_pattern left: (identifier) @bound)
(formal_parameters (identifier) @bound)
(arrow_function parameter: (identifier) @bound)
(catch_clause parameter: (identifier) @bound)
(for_in_statement left: (identifier) @bound)
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
VALUE_DEPTH = 6
"""Links followed to describe one receiver (an alias, a member, a call): a Value nests no deeper,
and a chain of 1,000 aliases or calls costs a few steps per call, not a thousand."""
NO_VALUE = frozenset({"null", "undefined"})  # node types an assignment of which sets no value
NOT_LEXICAL = ("class", "object")  # scopes whose members a bare name does not reach
NOT_DEFINITIONS = (None, "parameter", "field")  # children of a scope that are variables, if any


CONSTRUCTED_WHEN_CALLED = frozenset(
    ["Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError", "EvalError", "URIError"]
    + ["Array", "Object", "RegExp"]
)  # `throw Error("x")` makes an Error as `new` does (`String(x)`, `Date()` return no instance)


def builtin_class(tail: str) -> bool:
    """Whether calling this builtin without `new` constructs an instance of it."""
    return tail.startswith(PREFIX) and tail[len(PREFIX) :] in CONSTRUCTED_WHEN_CALLED


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
        # require() call id -> its declarator (and the member it reads: `require('./m').x`)
        self.requirers = {}
        for d in caps.get("requirer", []):
            value = d.child_by_field_name("value")
            if value.type == "member_expression":
                call, member = value.child_by_field_name("object"), value.child_by_field_name("property")
                self.requirers[call.id] = (d, member)
            else:
                self.requirers[value.id] = (d, None)
        # ids of `this.x` that are called / assigned
        self.this_called = {n.id for n in caps.get("thiscalled", [])}
        self.this_set = {n.id for n in caps.get("thisset", [])}
        self.def_ids: dict[int, str] = {}  # definition node id -> entity id
        self.required: set[int] = set()  # declarators and pattern names that require() binds
        self.modules: dict[int, str] = {}  # require() call id -> the module it loads
        # The names of each scope (a definition id) and what they are given: a JSDoc type, and
        # every value node assigned (with the scope it is read in; None: a value never known).
        self.declared: dict[tuple[str, str], Value] = {}
        self.assigned: dict[tuple[str, str], list[tuple[object, str]]] = {}
        self._values: dict[tuple[tuple[str, str], int], Value | None] = {}
        self.field_values: dict[str, list[tuple[object, str]]] = {}  # field id -> value nodes
        self.typed_fields: set[str] = set()  # fields with a JSDoc type (a has_type fact)

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
                kind = "class" if value.type == "class" else "function"  # exports.f = function () {...}
            eid = self.child_id(parent, qualifier + name)
            ids.append(eid)
            self.def_ids[node.id] = eid
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
        if node.type == "export_statement":  # export default function () {...}: named `default`
            value = node.child_by_field_name("value")
            keyword = next(c for c in node.children if c.type == "default")
            return keyword, "class" if value.type == "class" else "function", value
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
                if tname not in JSDOC_PRIMITIVES:
                    self.declared[(eid, text(name_node))] = ("type", tname, eid)
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
            self.typed_fields.add(fid)
        if (value := node.child_by_field_name("value")) is not None:
            self.field_values.setdefault(fid, []).append((value, cls))

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
        self.modules[node.id] = target
        decl, member = self.requirers.get(node.id, (None, None))
        if decl is None:
            return
        self.required.add(decl.id)
        name = decl.child_by_field_name("name")
        if name.type == "identifier":  # the module's `module.exports`, or the module itself
            self.g.imports[text(name)] = f"{target}:{text(member) if member else 'default'}"
            return
        for prop in name.named_children if name.type == "object_pattern" else []:
            if prop.type == "shorthand_property_identifier_pattern":
                self.g.imports[text(prop)] = f"{target}:{text(prop)}"
                self.required.add(prop.id)
            elif prop.type == "pair_pattern":  # { a: b }
                key, alias = prop.child_by_field_name("key"), prop.child_by_field_name("value")
                if alias.type == "identifier":
                    self.g.imports[text(alias)] = f"{target}:{text(key)}"
                    self.required.add(alias.id)

    # ----------------------------------------------------------------- exports

    def export(self, node) -> None:
        """An ES export: each name it exports, with what that name names, in `g.imports`."""
        source = node.child_by_field_name("source")
        target = self.module_target(text(source).strip("'\"`")) if source is not None else None
        if target:
            self.g.add(self.mid, Relation.IMPORTS, exact(target), node, source)
        decl, value = node.child_by_field_name("declaration"), node.child_by_field_name("value")
        if any(c.type == "default" for c in node.children):
            if decl is not None and decl.id in self.def_ids:  # export default class A {}
                self.export_as("default", self.def_ids[decl.id])
            elif value is not None and (chain := dotted(value)):  # export default A
                self.export_as("default", self.target_of(chain, self.mid))
        clauses = [c for c in node.named_children if c.type in ("export_clause", "namespace_export")]
        for clause in clauses:
            if clause.type == "namespace_export":  # export * as ns from './m'
                self.export_as(text(clause.named_children[0]).strip("'\""), target)
                continue
            for spec in clause.named_children:
                name, alias = spec.child_by_field_name("name"), spec.child_by_field_name("alias")
                local = text(name).strip("'\"")
                exported = text(alias or name).strip("'\"")
                if target:  # export { x as y } from './m'
                    self.g.add(self.mid, Relation.IMPORTS, exact(f"{target}:{local}"), node, name)
                    self.export_as(exported, f"{target}:{local}")
                else:
                    self.export_as(exported, self.target_of(local, self.mid))
        if target and not clauses:  # export * from './m'
            self.g.star_imports.append(target)

    def commonjs(self, node) -> None:
        """`module.exports = A`, `module.exports = { a, b: c }`, `exports.b = c`."""
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        scope, _ = self.scopes.at(node.start_byte)
        whole = dotted(left) == "module.exports"
        if whole and right.type == "object":
            for item in right.named_children:
                self._export_item(item, scope)
        else:
            name = "default" if whole else text(left.child_by_field_name("property"))
            self.export_as(name, self.exported(node, right, scope))

    def _export_item(self, item, scope: str) -> None:
        """One property of `module.exports = {...}`."""
        if item.type == "shorthand_property_identifier":
            self.export_as(text(item), self.target_of(text(item), scope))
        elif item.type == "method_definition" and item.id in self.def_ids:
            self.export_as(text(item.child_by_field_name("name")), self.def_ids[item.id])
        elif item.type == "pair":
            name = text(item.child_by_field_name("key")).strip("'\"")
            self.export_as(name, self.exported(item, item.child_by_field_name("value"), scope))

    def exported(self, holder, value, scope: str) -> str | None:
        """The id a CommonJS export's `value` names: a function or class written in place (its
        `holder`, the assignment or pair, is the definition), a name, or another module's
        export (`module.exports = require('./impl')`)."""
        if holder.id in self.def_ids:
            return self.def_ids[holder.id]
        if chain := dotted(value):
            return self.target_of(chain, scope)
        if value.type == "call_expression" and value.id in self.modules:
            return f"{self.modules[value.id]}:default"
        obj = value.child_by_field_name("object") if value.type == "member_expression" else None
        if obj is not None and obj.id in self.modules:  # require('./m').x
            return f"{self.modules[obj.id]}:{text(value.child_by_field_name('property'))}"
        return None

    def export_as(self, name: str, target: str | None) -> None:
        """Export `target` as `name`; a definition of that name needs nothing (the module's child
        is found first), and a name the module imports keeps meaning that import inside it."""
        if target and target != self.child_id(self.mid, name):
            self.g.imports.setdefault(name, target)

    def target_of(self, chain: str, scope: str) -> str | None:
        """The id `a.b` names from `scope`: a definition's id or an import's target, with the
        members after; None for a plain variable (what it holds is no entity)."""
        head, _, rest = chain.partition(".")
        base, s = None, scope
        while s and base is None:
            base = self.definition(s, head)
            s = self.parent.get(s)
        base = base or self.g.imports.get(head)
        if base is None or not rest:
            return base
        return base + ("." if ":" in base[len(PREFIX) :] else ":") + rest

    def definition(self, scope: str, name: str) -> str | None:
        """The id of the function, class or namespace object `name` that `scope` defines."""
        if self.kind.get(scope) in NOT_LEXICAL:
            return None
        cid = self.child_id(scope, name)
        return cid if self.kind.get(cid) not in NOT_DEFINITIONS else None

    # ----------------------------------------------------------------- receivers

    def bind(self, name_node, value, scope: str | None = None) -> None:
        """A name declared at `name_node` (in `scope`, else where it stands), given `value` (a
        node; None: a value this file does not tell, as a parameter's or a destructured one's)."""
        scope = scope or self.scopes.at(name_node.start_byte)[0]
        entries = self.assigned.setdefault((scope, text(name_node)), [])
        if value is None or value.type not in NO_VALUE:
            entries.append((value, scope))

    def declare(self, decl) -> None:
        """`const x = ...`: a name of the enclosing scope (not a function or class: a definition)."""
        if decl.id in self.def_ids or decl.id in self.required:
            return
        name, value = decl.child_by_field_name("name"), decl.child_by_field_name("value")
        scope, _ = self.scopes.at(decl.start_byte)
        m = JSDOC_TYPE.search(self._jsdoc(decl))
        tname = jsdoc_type(m.group(1)) if m else None
        if tname and tname not in JSDOC_PRIMITIVES:  # /** @type {Foo} */ let x;
            self.declared[(scope, text(name))] = ("type", tname, scope)
        self.assigned.setdefault((scope, text(name)), [])
        if value is not None and value.type not in NO_VALUE:
            self.assigned[(scope, text(name))].append((value, scope))

    def assign(self, node) -> None:
        """`x = ...`: a value of the `x` declared around it (undeclared: a name of this scope)."""
        left = node.child_by_field_name("left")
        name, (scope, _) = text(left), self.scopes.at(node.start_byte)
        s = scope
        while s and (s, name) not in self.assigned:
            if self.definition(s, name):
                return  # `f = wrap(f)`: f stays the function it names
            s = self.parent.get(s)
        if s is None and name in self.g.imports:
            return  # reassigning what require() bound
        self.bind(left, node.child_by_field_name("right"), s or scope)

    def local(self, name: str, scope: str) -> tuple[str, str] | None:
        """The (scope, name) a bare `name` read in `scope` is a variable or parameter of; None
        when it names a definition, an import or a global."""
        s = scope
        while s:
            if self.definition(s, name):
                return None
            if (s, name) in self.assigned or (s, name) in self.declared:
                return s, name
            s = self.parent.get(s)
        return None

    def held(self, key: tuple[str, str], budget: int) -> Value | None:
        """What a variable holds: its JSDoc type, else the one value all its assignments give."""
        if key in self.declared:
            return self.declared[key]
        if (key, budget) not in self._values:
            values = {
                self.value(node, scope, budget - 1) if node is not None else None
                for node, scope in self.assigned.get(key, [])
            }
            self._values[(key, budget)] = next(iter(values)) if len(values) == 1 else None
        return self._values[(key, budget)]

    def value(self, node, scope: str, budget: int = VALUE_DEPTH) -> Value | None:
        """The Value an expression read in `scope` gives, or None when this file does not say."""
        if budget <= 0:
            return None
        if node.type in ("parenthesized_expression", "await_expression") and node.named_children:
            return self.value(node.named_children[-1], scope, budget)
        if node.type == "this":
            cls = self.class_of(scope)
            return ("self", cls) if cls else None
        if node.type == "identifier":
            key = self.local(text(node), scope)
            return self.held(key, budget) if key else None
        if node.type == "new_expression":
            ctor = node.child_by_field_name("constructor")
            name = dotted(ctor) if ctor is not None else None
            return ("type", name, scope) if name and not self.local(name.split(".")[0], scope) else None
        if node.type == "call_expression":
            return self.result(node.child_by_field_name("function"), scope, budget)
        if node.type == "member_expression":  # a member of a described value; not of a name
            owner = self.value(node.child_by_field_name("object"), scope, budget - 1)
            return ("attr", owner, text(node.child_by_field_name("property"))) if owner else None
        return None

    def result(self, fn, scope: str, budget: int) -> Value | None:
        """The Value a call of `fn` returns: a method of a described value, or a named function
        (`make()`, `Widgets.make()`: its JSDoc return type, for the resolver to read)."""
        if fn.type == "member_expression":
            owner = self.value(fn.child_by_field_name("object"), scope, budget - 1)
            if owner:
                return "attr", owner, text(fn.child_by_field_name("property"))
        chain = dotted(fn)
        return ("type", chain, scope) if chain and not self.local(chain.split(".")[0], scope) else None

    def field_types(self) -> None:
        """FileGraph.types: the one value every `this.x = ...` and initializer of a field gives."""
        for fid, entries in self.field_values.items():
            if self.kind.get(fid) != "field" or fid in self.typed_fields:
                continue
            values = {self.value(node, scope) for node, scope in entries if node.type not in NO_VALUE}
            if len(values) == 1 and (value := values.pop()):
                self.g.types[fid] = value

    def this_assign(self, node) -> None:
        """`this.x = value` in a method: a value the field `x` of its class holds."""
        scope = self.enclosing(node, FUNCTIONS)
        cls = self.class_of(scope) if scope else None
        if cls is not None:
            prop = node.child_by_field_name("left").child_by_field_name("property")
            fid = f"{cls}.{text(prop)}"
            self.field_values.setdefault(fid, []).append((node.child_by_field_name("right"), scope))

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
            elif obj.type == "this" and (owner := self.this_owner(scope)):
                ref = Ref("self", text(prop), owner)
            elif obj.type == "super" and cls:
                ref = Ref("super", text(prop), cls)
            elif receiver := self.value(obj, scope):
                ref = Ref("typed", text(prop), scope, receiver)
            elif (chain := dotted(fn)) and not self.local(chain.split(".")[0], scope):
                ref = Ref("dotted", chain, scope)  # a definition's, an import's or a global's
            else:
                ref = Ref("member", text(prop), scope)  # of an unknown variable or expression
        if ref is not None:
            self.add_call(scope, ref, node, span)

    def this_owner(self, scope: str) -> str | None:
        """What `this` is in a function that is no class's method: the object literal it is a
        method of (`{ init() { this.render() } }`), or the object its qualified name assigns it to
        (`proto.layout = function () { this.reset() }`: `<module>:proto`, not an entity; the
        resolver looks for `<module>:proto.reset`)."""
        parent = self.parent.get(scope)
        if self.kind.get(parent) == "object":
            return parent
        qualified = (
            scope[len(self.mid) + 1 :] if parent == self.mid and scope.startswith(self.mid + ":") else ""
        )
        return scope.rpartition(".")[0] if "." in qualified else None

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
    for node in caps.get("export", []):
        f.export(node)
    for node in caps.get("cjs", []):
        f.commonjs(node)
    for node in caps.get("declare", []):
        f.declare(node)
    for node in caps.get("bound", []):
        if node.id not in f.required:
            f.bind(node, None)
    for node in caps.get("assign", []):
        f.assign(node)
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
    for node in caps.get("thisassign", []):
        f.this_assign(node)
    f.field_types()
    return f.g
