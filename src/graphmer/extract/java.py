"""Java grammar knowledge: tree-sitter-java syntax -> a FileGraph of definitions and facts.

Ids are `java:<package>.<Type>[.<Nested>].<member>`; a constructor is `<init>`.
The package is the module: top-level types are its children, so same-package
names resolve without imports. Calls on a variable, parameter or field use its
declared type (`var x = new T()`: T), resolved as an `inferred` receiver.
"""

from __future__ import annotations

import tree_sitter_java
from tree_sitter import Language, Query

from graphmer.extract.records import (
    FileGraph,
    FileState,
    Ref,
    captures,
    count_errors,
    exact,
    is_test_path,
    nest,
    parse,
    scope_index,
    text,
)
from graphmer.relations import Relation

LANGUAGE = Language(tree_sitter_java.language())
QUERY = Query(
    LANGUAGE,
    """
(package_declaration) @package
(import_declaration) @import
(class_declaration) @def
(interface_declaration) @def
(enum_declaration) @def
(record_declaration) @def
(annotation_type_declaration) @def
(method_declaration) @def
(constructor_declaration) @def
(local_variable_declaration) @local
(method_invocation) @call
(object_creation_expression) @new
(throw_statement) @throw
(catch_clause) @catch
(field_access object: (this)) @thisfield
(assignment_expression left: (identifier) @bare)
(update_expression (identifier) @bare)
(method_invocation object: (identifier) @bare)
""",
)
PREFIX = "java:"
METHOD = ("method",)  # what a reference belongs to: Java code runs only in methods
TYPE_KINDS = {
    "class_declaration": "class",
    "interface_declaration": "interface",
    "enum_declaration": "class",
    "record_declaration": "class",
    "annotation_type_declaration": "interface",
}
JAVA_LANG = frozenset(
    [
        "Object",
        "String",
        "StringBuilder",
        "StringBuffer",
        "Integer",
        "Long",
        "Short",
        "Byte",
        "Double",
        "Float",
        "Boolean",
        "Character",
        "Number",
        "Math",
        "System",
        "Thread",
        "Runnable",
        "Class",
        "ClassLoader",
        "Iterable",
        "Comparable",
        "CharSequence",
        "Enum",
        "Record",
        "Void",
        "Exception",
        "RuntimeException",
        "Error",
        "Throwable",
        "IllegalArgumentException",
        "IllegalStateException",
        "NullPointerException",
        "UnsupportedOperationException",
        "IndexOutOfBoundsException",
        "ClassCastException",
        "ArithmeticException",
        "ArrayIndexOutOfBoundsException",
        "ClassNotFoundException",
        "InterruptedException",
        "NoSuchFieldException",
        "NoSuchMethodException",
        "CloneNotSupportedException",
        "SecurityException",
        "ReflectiveOperationException",
        "InstantiationException",
        "IllegalAccessException",
        "NumberFormatException",
        "LinkageError",
        "NoClassDefFoundError",
        "UnsatisfiedLinkError",
        "OutOfMemoryError",
        "StackOverflowError",
        "AssertionError",
        "Override",
        "Deprecated",
        "SuppressWarnings",
        "FunctionalInterface",
        "SafeVarargs",
        "AutoCloseable",
        "Cloneable",
        "Process",
        "Runtime",
        "StackTraceElement",
        "ThreadLocal",
        "InheritableThreadLocal",
    ]
)
PRIMITIVES = frozenset(["int", "long", "short", "byte", "char", "boolean", "float", "double"])


def builtin_id(name: str) -> str | None:
    if name in JAVA_LANG:
        return f"{PREFIX}java.lang.{name}"
    return PREFIX + name if name in PRIMITIVES else None


def type_name(node) -> str | None:
    """`List<String>` -> List, `a.b.C[]` -> a.b.C, `int` -> int; None for void."""
    while node is not None and node.type in ("generic_type", "array_type", "annotated_type"):
        node = next(
            (c for c in node.named_children if c.type not in ("annotation", "marker_annotation")), None
        )
        if node is not None and node.type == "type_arguments":
            return None
    if node is None or node.type == "void_type":
        return None
    name = text(node)
    return name if name.replace(".", "").replace("_", "a").replace("$", "a").isalnum() else None


def receiver_text(obj) -> str | None:
    """The text of a call's receiver made of names (`a`, `a.b.C`, `this.x.y`), else None. A receiver
    holding a call is not spelled out: in a chain `x.f().y.f().y.f()` each receiver's text holds
    all the shorter ones, so reading them all costs length squared."""
    node = obj
    while node is not None and node.type == "field_access":
        node = node.child_by_field_name("object")
    if node is None or node.type not in ("identifier", "scoped_identifier", "this", "super"):
        return None
    return text(obj)


class _File(FileState):
    language = "java"

    def __init__(self, path: str, size: int):
        super().__init__(path, size)
        self.vars: dict[str, dict[str, str]] = {}  # scope (method or class) -> name -> type
        self.test_file = is_test_path(path)

    def class_of(self, scope: str) -> str | None:
        return scope if self.kind.get(scope) in ("class", "interface") else self.parent.get(scope)

    def definitions(self, pkg: str, defs: list) -> list:
        parents = nest(defs)
        ids: list[str] = []
        for node, p in zip(defs, parents):
            name_node = node.child_by_field_name("name")
            parent = pkg if p is None else ids[p]
            if node.type in TYPE_KINDS:
                kind, name = TYPE_KINDS[node.type], text(name_node)
            else:
                kind = "method"
                name = "<init>" if node.type == "constructor_declaration" else text(name_node)
            eid = f"{parent}.{name}"
            ids.append(eid)
            self.define(eid, kind, name, node, parent, name_node)
            self._annotations(node, eid)
            if kind == "method":
                self._method(node, eid, parent)
            else:
                self._type(node, eid, parent)
        return list(zip(defs, ids, parents))

    def _annotations(self, node, eid: str) -> None:
        mods = next((c for c in node.children if c.type == "modifiers"), None)
        for ann in mods.named_children if mods is not None else []:
            if ann.type in ("marker_annotation", "annotation"):
                name_node = ann.child_by_field_name("name")
                name = text(name_node)
                self.g.add(eid, Relation.DECORATED_BY, Ref("dotted", name, eid), ann, name_node)
                if name.rsplit(".", 1)[-1] == "Test":
                    self.tests.add(eid)

    def _type(self, node, eid: str, parent: str) -> None:
        sup = node.child_by_field_name("superclass")
        for t in sup.named_children if sup is not None else []:
            if name := type_name(t):
                self.g.add(eid, Relation.INHERITS, Ref("dotted", name, parent), t)
        for field_name, rel in (("interfaces", Relation.IMPLEMENTS), (None, Relation.INHERITS)):
            holder = (
                node.child_by_field_name(field_name)
                if field_name
                else next((c for c in node.children if c.type == "extends_interfaces"), None)
            )
            tlist = (
                next((c for c in holder.named_children if c.type == "type_list"), None) if holder else None
            )
            for t in tlist.named_children if tlist is not None else []:
                if name := type_name(t):
                    self.g.add(eid, rel, Ref("dotted", name, parent), t)
        body = node.child_by_field_name("body")
        for member in body.named_children if body is not None else []:
            if member.type in ("field_declaration", "constant_declaration"):
                tnode = member.child_by_field_name("type")
                tname = type_name(tnode)
                for decl in member.children_by_field_name("declarator"):
                    n = decl.child_by_field_name("name")
                    # Every declaration links its field, a repeated one too (unlike `field`).
                    fid = self.member(eid, "field", Relation.HAS_FIELD, n, decl)
                    self.vars.setdefault(eid, {})[text(n)] = tname or ""
                    if tname:
                        self.g.add(fid, Relation.HAS_TYPE, Ref("dotted", tname, eid), tnode)

    def _method(self, node, eid: str, cls: str) -> None:
        if (
            self.test_file
            and self.kind.get(eid)
            and text(node.child_by_field_name("name")).startswith("test")
        ):
            self.tests.add(eid)
        params = node.child_by_field_name("parameters")
        for param in params.named_children if params is not None else []:
            if param.type == "formal_parameter":
                name_node, tnode = param.child_by_field_name("name"), param.child_by_field_name("type")
            elif param.type == "spread_parameter":
                decl = next((c for c in param.named_children if c.type == "variable_declarator"), None)
                name_node = decl.child_by_field_name("name") if decl else None
                tnode = next((c for c in param.named_children if c.type.endswith("type")), None)
            else:
                continue
            if name_node is None:
                continue
            pid = self.parameter(eid, name_node, param)
            tname = type_name(tnode)
            self.vars.setdefault(eid, {})[text(name_node)] = tname or ""
            if tname:
                self.g.add(pid, Relation.HAS_TYPE, Ref("dotted", tname, eid), tnode)
        ret = type_name(node.child_by_field_name("type"))
        if ret:
            self.g.add(eid, Relation.RETURNS, Ref("dotted", ret, eid), node.child_by_field_name("type"))
        throws = next((c for c in node.children if c.type == "throws"), None)
        for t in throws.named_children if throws is not None else []:
            if name := type_name(t):
                self.g.add(eid, Relation.RAISES, Ref("dotted", name, eid), t)

    def var_type(self, scope: str, name: str) -> str | None:
        for s in (scope, self.class_of(scope)):
            t = self.vars.get(s or "", {}).get(name)
            if t is not None:
                return t
        return None

    def imports(self, nodes: list, head: str) -> None:
        for node in nodes:
            target = next(
                (c for c in node.named_children if c.type in ("scoped_identifier", "identifier")), None
            )
            if target is None:
                continue
            name = text(target)
            if any(c.type == "asterisk" for c in node.named_children):
                self.g.star_imports.append(PREFIX + name)
            else:
                self.g.imports[name.rsplit(".", 1)[-1]] = PREFIX + name
            self.g.add(head, Relation.IMPORTS, exact(PREFIX + name), node, target)

    def call(self, node, scope: str) -> None:
        name_node, obj = node.child_by_field_name("name"), node.child_by_field_name("object")
        name, cls = text(name_node), self.class_of(scope)
        if obj is None or obj.type == "this":
            ref = Ref("self", name, cls)
        elif obj.type == "super":
            ref = Ref("super", name, cls)
        elif (value := self.value(obj, scope, cls)) is not None:
            ref = Ref("typed", name, scope, value)
        elif obj.type == "identifier" and self.var_type(scope, text(obj)) is not None:
            ref = Ref("member", name, scope)  # a variable whose type is not written (`var x = f()`)
        elif (recv := receiver_text(obj)) is not None and recv.rsplit(".", 1)[-1][:1].isupper():
            ref = Ref("dotted", f"{recv}.{name}", scope)  # a class's static method
        else:
            ref = Ref("member", name, scope)
        self.add_call(scope, ref, node, name_node)

    def value(self, obj, scope: str, cls: str | None) -> tuple | None:
        """What a call's receiver holds, where its type is written (records.Value): a variable,
        parameter or field declared with a type, `this.f`, `new T()`, a call of an own method."""
        if obj.type == "identifier":
            var = self.var_type(scope, text(obj))
            return ("type", var, scope) if var else None
        if obj.type == "field_access" and cls and obj.child_by_field_name("object").type == "this":
            return ("attr", ("self", cls), text(obj.child_by_field_name("field")))
        if obj.type == "object_creation_expression" and (tname := type_name(obj.child_by_field_name("type"))):
            return ("type", tname, scope)
        if obj.type == "method_invocation" and cls and obj.child_by_field_name("object") is None:
            return ("attr", ("self", cls), text(obj.child_by_field_name("name")))
        return None

    def bare(self, ident, scope: str) -> None:
        """A bare name read or written in a method: a field access unless a local or parameter."""
        name = text(ident)
        if self.vars.get(scope, {}).get(name) is None and name[:1].islower() and self.class_of(scope):
            self.g.add(scope, Relation.ACCESSES, Ref("self", name, self.class_of(scope)), ident)


def extract(path: str, data: bytes, unit: str) -> FileGraph:
    tree = parse(LANGUAGE, data)
    root = tree.root_node
    f = _File(path, len(data))
    f.g.error_nodes = count_errors(root)
    caps = captures(QUERY, root)
    pkg_node = (caps.get("package") or [None])[0]
    pkg_name_node = pkg_node.named_children[0] if pkg_node is not None and pkg_node.named_children else None
    pkg = PREFIX + (text(pkg_name_node) if pkg_name_node is not None else "(default)")
    f.entity(pkg, "package", pkg.split(":", 1)[1], pkg_node or root, None, pkg_name_node)
    defs = sorted(caps.get("def", []), key=lambda n: n.start_byte)
    scoped = f.definitions(pkg, defs)
    f.scopes = scope_index(pkg, len(data), scoped)
    primary = next((i for n, i, p in scoped if p is None), pkg)
    f.imports(caps.get("import", []), primary)
    for node in caps.get("local", []):
        if (scope := f.enclosing(node, METHOD)) is not None:
            tname = type_name(node.child_by_field_name("type")) or ""
            for decl in node.children_by_field_name("declarator"):
                init = decl.child_by_field_name("value")
                if tname == "var" and init is not None and init.type == "object_creation_expression":
                    tname = type_name(init.child_by_field_name("type")) or ""  # var x = new T()
                f.vars.setdefault(scope, {})[text(decl.child_by_field_name("name"))] = (
                    "" if tname == "var" else tname
                )
    for node in caps.get("call", []):
        if (scope := f.enclosing(node, METHOD)) is not None:
            f.call(node, scope)
    for node in caps.get("new", []):
        tnode = node.child_by_field_name("type")
        if (scope := f.enclosing(node, METHOD)) is not None and (name := type_name(tnode)):
            f.g.add(scope, Relation.INSTANTIATES, Ref("dotted", name, scope), node, tnode)
    for node in caps.get("throw", []):
        expr = node.named_children[0] if node.named_children else None
        if expr is None or expr.type != "object_creation_expression":
            continue  # a rethrown variable: its type is not written here
        tnode = expr.child_by_field_name("type")
        if (scope := f.enclosing(node, METHOD)) is not None and (name := type_name(tnode)):
            f.g.add(scope, Relation.RAISES, Ref("dotted", name, scope), node, tnode)
    for node in caps.get("catch", []):
        if (scope := f.enclosing(node, METHOD)) is None:
            continue
        param = next((c for c in node.named_children if c.type == "catch_formal_parameter"), None)
        ctype = next((c for c in param.named_children if c.type == "catch_type"), None) if param else None
        for t in ctype.named_children if ctype is not None else []:
            if name := type_name(t):
                f.g.add(scope, Relation.CATCHES, Ref("dotted", name, scope), t)
    for node in caps.get("thisfield", []):
        if (scope := f.enclosing(node, METHOD)) is not None:
            field = node.child_by_field_name("field")
            f.g.add(scope, Relation.ACCESSES, Ref("self", text(field), f.class_of(scope)), node, field)
    for ident in caps.get("bare", []):
        if (scope := f.enclosing(ident, METHOD)) is not None:
            f.bare(ident, scope)
    return f.g
