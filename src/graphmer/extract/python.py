"""Python grammar knowledge: tree-sitter-python syntax -> a FileGraph of definitions and facts.

Definitions come from one query (run in C); their parameters, types, bases
and decorators are read off each definition node. References (calls, raises,
excepts, `self.x`) come from the same query and are attached to the innermost
enclosing definition by byte offset, so no Python-level walk over every node.
What a node sits in (a decorated definition, a call, an assignment) is captured
by the query too: tree-sitter finds `node.parent` by walking down from the root,
so asking it once per node costs depth squared on deeply nested files.

A call's receiver is described as a Value (records.py) when the file says what
it holds: per function, flow-insensitive, a variable keeps the one value all its
bindings agree on (an annotation decides alone; `= None` adds nothing); a loop
target, an unpacking, `+=`, `global` or any other binding makes it unknown, and
a call on an unknown variable is a `member` Ref, never looked up by its name.

Annotations and decorators are looked up where Python evaluates them: around the definition (so
`def f(dict: dict)` types the parameter as the builtin, not as itself; a class body's annotations
see its nested classes), past a class body for the definition's own name, which is bound only
once its annotations are evaluated (`date: date`, `def dict(self) -> dict`). A union
(`Foo | Bar`, `Union[...]`, `Optional[...]`, in a string too) gives one `has_type`/`returns` fact
per named type, `None` left out; a value of two or more types describes no receiver (which one it
is, is unknown), so `Foo | None` is Foo and `Foo | Bar` is neither.
"""

from __future__ import annotations

import builtins

import tree_sitter_python
from tree_sitter import Language, Parser, Query

from graphmer.extract.records import (
    CLASSES,
    FUNCTIONS,
    FileGraph,
    FileState,
    Ref,
    Value,
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
(assignment left: (identifier)) @assign
(raise_statement) @raise
(except_clause) @except
(decorated_definition) @decorated
(attribute object: (identifier) @obj (#any-of? @obj "self" "cls")) @selfattr
(assignment left: (attribute object: (identifier) @obj (#any-of? @obj "self" "cls")) @selfset) @assign
(augmented_assignment
  left: (attribute object: (identifier) @obj (#any-of? @obj "self" "cls")) @selfset @fieldrebind)
[(pattern_list (attribute object: (identifier) @obj (#any-of? @obj "self" "cls")) @fieldrebind)
 (tuple_pattern (attribute object: (identifier) @obj (#any-of? @obj "self" "cls")) @fieldrebind)
 (list_pattern (attribute object: (identifier) @obj (#any-of? @obj "self" "cls")) @fieldrebind)]
(augmented_assignment left: (identifier) @rebind)
(for_statement left: (identifier) @rebind)
(for_in_clause left: (identifier) @rebind)
(named_expression name: (identifier) @rebind)
[(pattern_list (identifier) @rebind) (tuple_pattern (identifier) @rebind)
 (list_pattern (identifier) @rebind) (list_splat_pattern (identifier) @rebind)
 (dictionary_splat_pattern (identifier) @rebind) (splat_pattern (identifier) @rebind)
 (lambda_parameters (identifier) @rebind)]
(lambda_parameters (default_parameter name: (identifier) @rebind))
(case_pattern (dotted_name . (identifier) @rebind .))
(as_pattern (case_pattern) . (identifier) @rebind)
(as_pattern_target (identifier) @rebind)
(with_item value: (as_pattern) @withas)
[(global_statement (identifier) @global) (nonlocal_statement (identifier) @global)]
""",
)
STRING_PARSER = Parser(LANGUAGE)  # string annotations, parsed on their own
UNIONS = ("Optional", "Union")  # typing's forms whose arguments are the types a value may have
ATTRIBUTE_HOOK = "__getattribute__"  # a class defining it decides every member lookup itself
PLAIN_METACLASSES = ("ABCMeta",)  # metaclasses that make no members (abc.ABCMeta)
BUILTINS = frozenset(dir(builtins))
PACKED = {"list_splat_pattern": "tuple", "dictionary_splat_pattern": "dict"}  # `*args`, `**kwargs`
PREFIX = "py:"
MAX_VALUE_DEPTH = 10
"""Steps one expression's description, and `attr` steps one Value, may take: a longer chain is
not described, so a 1,000-link `x.f().f()...` (or as many variables, each one link longer)
costs no deep recursion and no deep Value."""
MAX_VARIABLE_CHAIN = 16
"""Variables one description may read through each other (`b = a.f(); c = b.g(); c.h()`)."""


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


def type_refs(node, scope: str) -> list[tuple[Ref, object]]:
    """The named types of an annotation, each once, in order, as Refs looked up from `scope`, each
    with the node its fact mentions (its name, or the string it is read from): `Foo` -> Foo,
    `List[Foo]` -> List; a union (`Foo | Bar`, `Union[Foo, Bar]`, `Optional[Foo]`) -> each of its
    members but `None`; a string (`"Foo | None"`) -> those of the annotation it holds.
    A worklist, not recursion: a union of thousands of members must not overflow the stack."""
    found: dict[str, object] = {}
    todo = [(node, None)]  # (node, the string of the file it was parsed from, if any)
    while todo:
        node, string = todo.pop()
        if node.type in ("type", "parenthesized_expression"):
            inner = node.named_children[:1]
        elif node.type in ("subscript", "generic_type"):
            inner = _subscripted(node)
        elif node.type in ("binary_operator", "union_type"):  # `Foo | Bar`, `List[Foo] | None`
            inner = node.named_children
        elif node.type == "string":
            inner, string = [parsed_annotation(node)], string or node
        else:
            if (name := dotted(node)) and name not in found:
                found[name] = string or node
            continue
        todo += [(n, string) for n in reversed(inner) if n is not None]
    return [(Ref("dotted", name, scope), span) for name, span in found.items()]


def declared_type(refs: list[tuple[Ref, object]]) -> Ref | None:
    """The one type `type_refs` found, else None: which member of a union a value is, is unknown."""
    return refs[0][0] if len(refs) == 1 else None


def _subscripted(node) -> list:
    """`List[Foo]` -> [List]; a union's members: `Union[Foo, Bar]` (or `typing.Union[Foo, Bar]`)
    -> [Foo, Bar], `Optional[Foo]` -> [Foo]."""
    if node.type == "subscript":  # `typing.Union[Foo, Bar]`: an expression
        head, args = node.child_by_field_name("value"), node.children_by_field_name("subscript")
    else:  # `Union[Foo, Bar]`: a generic_type, the name then a type_parameter of types
        head = node.named_children[0] if node.named_children else None
        args = node.named_children[1].named_children if node.named_children[1:] else []
    if head is None:
        return []
    return args if args and text(head).rsplit(".", 1)[-1] in UNIONS else [head]


def parsed_annotation(node):
    """The expression a string annotation holds (`"Foo | None"` -> `Foo | None`), parsed on its
    own; None for an f-string, a prefixed string, or text that is not one expression."""
    parts = node.named_children
    if len(parts) != 3 or parts[1].type != "string_content" or text(parts[0]).strip("'\""):
        return None
    root = STRING_PARSER.parse(parts[1].text).root_node
    stmt = root.named_children[0] if len(root.named_children) == 1 and not root.has_error else None
    if stmt is None or stmt.type != "expression_statement" or len(stmt.named_children) != 1:
        return None
    return stmt.named_children[0]


def member_value(obj: Value | None, name_node) -> Value | None:
    """("attr", obj, name), or None when `obj` is unknown or already MAX_VALUE_DEPTH steps long."""
    if obj is None:
        return None
    root, steps = obj, 0
    while root[0] == "attr":
        root, steps = root[1], steps + 1
    return ("attr", obj, text(name_node)) if steps < MAX_VALUE_DEPTH else None


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
        self.self_called: set[int] = set()  # filled by `call`, before `self_attr` reads it
        self.self_set = {n.id for n in caps.get("selfset", [])}
        # What each variable (scope id -> name) and each field (id) is bound to, as (scope, binding)
        # pairs: a Ref (an annotation, which decides alone), a Value (`self`), a syntax node (an
        # assigned expression, described when first asked), or None (a binding not described).
        self.variables: dict[str, dict[str, list]] = {}
        self.pending: dict[str, list] = {}  # name -> (node, binding) not yet placed in a scope
        self.field_values: dict[str, list] = {}
        self.annotated: set[str] = set()  # fields with a `has_type` fact
        self.values: dict[tuple[str, str], Value | None] = {}  # (scope, name) -> settled value
        self.settling = 0  # variables being settled, each reading the next

    def class_of(self, scope: str) -> str | None:
        return self.parent.get(scope) if self.kind.get(scope) == "method" else None

    def annotation_scope(self, ref: Ref, around: str, own: str) -> Ref:
        """`ref`, a name in an annotation of the definition `own` made in `around`, looked up where
        Python evaluates it: from `around` (a signature's around its function, so no parameter is
        its own type; a class body's names, nested classes among them, are seen), but past class
        bodies when it names `own` itself, bound in the class only once the annotation is
        evaluated (`date: date`, `def dict(self) -> dict`: the builtin, not the field or method)."""
        scope = around
        if ref.text.split(".", 1)[0] == own:
            while self.kind[scope] in CLASSES:
                scope = self.parent[scope]
        return ref._replace(scope=scope)

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
                kind = "method" if pkind in CLASSES else "function"
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
                if name:  # evaluated around the definition, as its annotations are
                    self.g.add(eid, Relation.DECORATED_BY, Ref("dotted", name, self.parent[eid]), dec, expr)

    def _class(self, node, eid: str) -> None:
        bases = node.child_by_field_name("superclasses")
        for base in bases.named_children if bases is not None else []:
            name = dotted(base_expr(base))
            if name and name.rsplit(".", 1)[-1] not in ("object", "Protocol"):
                self.g.add(eid, Relation.INHERITS, Ref("dotted", name, self.parent[eid]), base)
        if self._is_dynamic(node):
            self.g.dynamic.append(eid)
        body = node.child_by_field_name("body")
        for stmt in body.named_children if body is not None else []:
            if stmt.type == "expression_statement" and stmt.named_children:
                assign = stmt.named_children[0]
                left = assign.child_by_field_name("left") if assign.type == "assignment" else None
                if left is not None and left.type == "identifier":
                    self._field(eid, left, assign.child_by_field_name("type"))

    @staticmethod
    def _is_dynamic(node) -> bool:
        """A class whose members may be made at run time: declared with a `metaclass=` other than
        ABCMeta, or defining `__getattribute__` in its body. Not `__getattr__`: Python calls it
        only once the class and its bases lack the member, so the bases' members stay theirs."""
        bases = node.child_by_field_name("superclasses")
        for arg in bases.named_children if bases is not None else []:
            if arg.type == "keyword_argument" and text(arg.child_by_field_name("name")) == "metaclass":
                meta = dotted(arg.child_by_field_name("value")) or ""
                if meta.rsplit(".", 1)[-1] not in PLAIN_METACLASSES:
                    return True
        body = node.child_by_field_name("body")
        for stmt in body.named_children if body is not None else []:
            if stmt.type == "decorated_definition":
                stmt = stmt.child_by_field_name("definition") or stmt
            name = stmt.child_by_field_name("name") if stmt.type == "function_definition" else None
            if name is not None and text(name) == ATTRIBUTE_HOOK:
                return True
        return False

    def _field(self, cls: str, name_node, type_node=None) -> None:
        fid = self.field(cls, name_node, name_node)
        if type_node is not None and self._typed(fid, Relation.HAS_TYPE, type_node, cls, text(name_node)):
            self.annotated.add(fid)

    def _typed(
        self, head: str, relation: Relation, type_node, around: str, own: str
    ) -> list[tuple[Ref, object]]:
        """`head`'s has_type (or returns) facts: one per named type of the annotation `type_node`
        of the definition `own` made in `around` (`type_refs`, each looked up as
        `annotation_scope` says); a union's head is listed in FileGraph.unions."""
        refs = [(self.annotation_scope(ref, around, own), span) for ref, span in type_refs(type_node, around)]
        for ref, span in refs:
            self.g.add(head, relation, ref, type_node, span)
        if len(refs) > 1:
            self.g.unions.append(head)
        return refs

    def _function(self, node, eid: str, kind: str) -> None:
        around, own = self.parent[eid], eid.rsplit(".", 1)[-1]
        params = node.child_by_field_name("parameters")
        for i, param in enumerate(params.named_children if params is not None else []):
            name_node, type_node = self._param(param)
            if name_node is None:
                continue
            if i == 0 and kind == "method" and text(name_node) in ("self", "cls"):
                self.bind(eid, text(name_node), ("self", self.parent[eid]))
                continue
            pid = self.parameter(eid, name_node, param)
            refs = [] if type_node is None else self._typed(pid, Relation.HAS_TYPE, type_node, around, own)
            splat = param.named_children[0] if param.type == "typed_parameter" else param
            packed = PACKED.get(splat.type)  # `**kwargs: int` holds a dict, whatever its annotation
            self.bind(eid, text(name_node), Ref("dotted", packed, eid) if packed else declared_type(refs))
        ret = node.child_by_field_name("return_type")
        if ret is not None:
            self._typed(eid, Relation.RETURNS, ret, around, own)

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

    # ----------------------------------------------------------------- variables

    def bind(self, scope: str, name: str, binding) -> None:
        self.variables.setdefault(scope, {}).setdefault(name, []).append((scope, binding))

    def bindings(self, caps: dict[str, list]) -> None:
        """Every binding of a `self` field, and of a variable by name: most names are never asked
        about, so a variable's bindings are placed in their scopes when its name first is."""
        with_targets = set()
        for node in caps.get("withas", []):  # `with Foo() as x`: x holds what Foo() gives
            alias = node.child_by_field_name("alias")
            target = alias.named_children[0] if alias is not None and alias.named_children else None
            if target is not None and target.type == "identifier" and node.named_children:
                with_targets.add(target.id)
                self.pending.setdefault(text(target), []).append((target, node.named_children[0]))
        for node in caps.get("assign", []):
            left = node.child_by_field_name("left")
            if left.type == "identifier":  # the assignment stands for what it binds, read when placed
                self.pending.setdefault(text(left), []).append((node, node))
            else:
                self._field_binding(left, self._assigned(node, self.scopes.at(node.start_byte)[0]))
        for node in caps.get("rebind", []):
            if node.id not in with_targets:
                self.pending.setdefault(text(node), []).append((node, None))
        for node in caps.get("fieldrebind", []):
            self._field_binding(node, None)
        for node in caps.get("global", []):  # the name is the module's (or an outer function's)
            scope, _ = self.scopes.at(node.start_byte)
            for s in self._chain(scope):
                self.bind(s, text(node), None)

    def _field_binding(self, target, binding) -> None:
        """`self.x = ...` (target `self.x`) in a method binds the field `x` of its class."""
        scope, _ = self.scopes.at(target.start_byte)
        if (cls := self.class_of(scope)) is not None:
            fid = f"{cls}.{text(target.child_by_field_name('attribute'))}"
            self.field_values.setdefault(fid, []).append((scope, binding))

    @staticmethod
    def _assigned(node, scope: str):
        """What `x = ...` or `x: T = ...` binds: the annotation's Ref, else the assigned expression
        (the last of a chain `a = b = ...`)."""
        type_node = node.child_by_field_name("type")
        if type_node is not None:
            return declared_type(type_refs(type_node, scope))
        right = node.child_by_field_name("right")
        while right is not None and right.type == "assignment":
            right = right.child_by_field_name("right")
        return right

    def _place(self, name: str) -> None:
        for node, binding in self.pending.pop(name):
            scope, _ = self.scopes.at(node.start_byte)
            if self.kind[scope] in CLASSES:  # a class body binds no variable
                continue
            if binding is not None and binding.type == "assignment":
                binding = self._assigned(binding, scope)
            self.bind(scope, name, binding)

    def _chain(self, scope: str) -> list[str]:
        """`scope` and the functions around it, out to the module (classes hold no variables)."""
        chain = []
        while scope in self.parent:
            if self.kind[scope] in FUNCTIONS:
                chain.append(scope)
            scope = self.parent[scope]
        return [*chain, scope]

    def variable(self, scope: str, name: str) -> str | None:
        """The scope whose variable `name` is, seen from `scope`; None when the name is no variable
        there (an import, a definition, a builtin: looked up by name as before)."""
        if name in self.pending:
            self._place(name)
        while scope in self.parent:
            if name in self.variables.get(scope, ()):
                return scope
            scope = self.parent[scope]
        module = self.variables.get(scope, {})
        if name in module and name not in self.g.imports and f"{scope}.{name}" not in self.kind:
            return scope
        return None

    def home(self, scope: str, name: str) -> str:
        """Where the resolver's lookup of `name` (no variable) from `scope` ends: the nearest function
        defining it (or the class `scope` itself, an annotation's in a class body), else the module.
        Same lookup, and equal types compare equal across methods."""
        if self.kind.get(scope) in CLASSES and f"{scope}.{name}" in self.kind:
            return scope
        while scope in self.parent:
            if self.kind[scope] in FUNCTIONS and f"{scope}.{name}" in self.kind:
                return scope
            scope = self.parent[scope]
        return scope

    def value_of(self, scope: str, name: str) -> Value | None:
        """The settled value of the variable `name` of `scope`, the same wherever it is read: None
        while it is being settled (`a = b.f(); b = a.g()` describes neither), and None, not
        remembered, past MAX_VARIABLE_CHAIN (a read from a shorter chain settles it)."""
        key = (scope, name)
        if key in self.values:
            return self.values[key]
        if self.settling >= MAX_VARIABLE_CHAIN:
            return None
        self.values[key] = None
        self.settling += 1
        self.values[key] = self.settle(self.variables[scope][name])
        self.settling -= 1
        return self.values[key]

    def settle(self, bindings: list) -> Value | None:
        """The one value all bindings agree on: the annotations' if any, else the assigned values'
        (`= None` adds nothing); None when they disagree or one is not described."""
        declared = {self.declared(b) for _, b in bindings if isinstance(b, tuple)}
        if declared:
            return declared.pop() if len(declared) == 1 else None
        if any(b is None for _, b in bindings):
            return None
        values = {self.describe(b, scope) for scope, b in bindings if b.type != "none"}
        return values.pop() if len(values) == 1 else None

    def declared(self, binding: tuple) -> Value | None:
        """The Value an annotation's Ref (or a ready Value: `self`) declares."""
        if not isinstance(binding, Ref):
            return binding
        if binding.text.rsplit(".", 1)[-1] == "Any":  # `x: Any` says nothing of x
            return None
        return ("type", binding.text, self.home(binding.scope, binding.text.split(".", 1)[0]))

    def describe(self, node, scope: str, depth: int = 0) -> Value | None:
        """The Value of an expression read in `scope`, or None: a variable, `self`, `a.b` of a
        described `a`, a call of a class or function by name, `a.m()` of a described `a`."""
        if depth > MAX_VALUE_DEPTH:
            return None
        kind = node.type
        if kind == "identifier":
            name = text(node)
            home = self.variable(scope, name)
            return self.value_of(home, name) if home is not None else None
        if kind == "attribute":
            obj = self.describe(node.child_by_field_name("object"), scope, depth + 1)
            return member_value(obj, node.child_by_field_name("attribute"))
        if kind == "call":
            return self._call_value(node.child_by_field_name("function"), scope, depth + 1)
        if kind in ("await", "parenthesized_expression") and node.named_children:
            return self.describe(node.named_children[0], scope, depth + 1)
        return None

    def _call_value(self, fn, scope: str, depth: int) -> Value | None:
        """What calling `fn` gives: `Foo()`, `mod.make()` -> ("type", ...); `x.m()` -> ("attr", ...)."""
        if fn.type == "attribute":
            obj = self.describe(fn.child_by_field_name("object"), scope, depth)
            if (value := member_value(obj, fn.child_by_field_name("attribute"))) is not None:
                return value
        name = dotted(fn)
        first = name.split(".", 1)[0] if name else None
        if first is None or first == "super" or self.variable(scope, first) is not None:
            return None
        return ("type", name, self.home(scope, first))

    def field_types(self) -> None:
        """FileGraph.types: each field without an annotation whose `self.x = ...` agree."""
        for fid, bindings in self.field_values.items():
            if self.kind.get(fid) != "field" or fid in self.annotated:
                continue
            if (value := self.settle(bindings)) is not None:
                self.g.types[fid] = value

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
            return (self._bare_ref(text(callee), scope), callee) if text(callee) != "super" else (None, None)
        if callee.type != "attribute":
            return None, None
        obj, attr = callee.child_by_field_name("object"), callee.child_by_field_name("attribute")
        if obj is None or attr is None:
            return None, None
        name = text(attr)
        cls = self.class_of(scope)
        if obj.type == "identifier" and text(obj) in ("self", "cls"):
            self.self_called.add(callee.id)
            if cls:
                return Ref("self", name, cls), attr
        fn = obj.child_by_field_name("function") if obj.type == "call" else None
        if fn is not None and fn.type == "identifier" and text(fn) == "super" and cls:
            return Ref("super", name, cls), attr
        chain = dotted(callee)
        if chain and self.variable(scope, chain.split(".", 1)[0]) is None:  # `mod.f()`: no variable
            return Ref("dotted", chain, scope), attr
        if (value := self.describe(obj, scope)) is not None:
            return Ref("typed", name, scope, value), attr
        return Ref("member", name, scope), attr

    def _bare_ref(self, name: str, scope: str) -> Ref:
        """A call of a bare name: a definition or import by its name; a variable (not a parameter,
        whose entity the name finds) by what it was given when that is a name (`check =
        logic.check_access` at module level), else a `member` Ref: never the corpus's one `check`."""
        home = self.variable(scope, name)
        if home is None or f"{home}.{name}" in self.kind:
            return Ref("name", name, scope)
        bindings = self.variables[home][name]
        given = bindings[0][1] if len(bindings) == 1 else None  # a node, an annotation's Ref, None
        alias = dotted(given) if given is not None and not isinstance(given, tuple) else None
        first = alias.split(".", 1)[0] if alias else None
        if first and first != name and self.variable(home, first) is None:
            return Ref("dotted", alias, home)
        return Ref("member", name, scope)

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
    f.bindings(caps)
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
    f.field_types()
    return f.g


def builtin_id(name: str) -> str | None:
    return f"{PREFIX}builtins.{name}" if name in BUILTINS else None


TYPING = (PREFIX + "typing.", PREFIX + "typing_extensions.")


def not_class(tail: str) -> bool:
    """Whether an id outside the corpus names no class whose members a value has: the typing
    module's forms (`Any`, `Optional`, `Dict`, aliases of builtins); `Self` is the resolver's."""
    return tail.startswith(TYPING)


def builtin_class(tail: str) -> bool:
    """Whether an id outside the corpus is a builtin class (`py:builtins.dict`, not `py:builtins.len`)."""
    prefix = PREFIX + "builtins."
    return tail.startswith(prefix) and isinstance(getattr(builtins, tail[len(prefix) :], None), type)
