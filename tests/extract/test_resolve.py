"""The resolver on hand-built FileGraphs: receivers whose class is inferred from a described value,
members of unknown receivers, members outside the corpus, module exports, builtin classes."""

import pytest

from graphmer.extract.pipeline import SPECS
from graphmer.extract.records import Entity, Fact, FileGraph, Ref
from graphmer.extract.resolve import Resolver
from graphmer.relations import Relation


def ent(eid: str, kind: str, parent: str | None, file: str = "p/m.py", lang: str = "python") -> Entity:
    name = eid.rsplit(".", 1)[-1].rsplit(":", 1)[-1]
    return Entity(eid, kind, name, lang, file, 1, 1, parent)


def graph(path: str, entities: list[Entity], facts=(), lang: str = "python", **fields) -> FileGraph:
    return FileGraph(path, lang, entities, list(facts), **fields)


CORPUS = [
    graph(
        "p/m.py",
        [
            ent("py:m", "module", None),
            ent("py:m.Client", "class", "py:m"),
            ent("py:m.Client.get", "method", "py:m.Client"),
            ent("py:m.Client.session", "method", "py:m.Client"),
            ent("py:m.Client.pool", "field", "py:m.Client"),
            ent("py:m.Client.transport", "field", "py:m.Client"),
            ent("py:m.Pool", "class", "py:m"),
            ent("py:m.Pool.take", "method", "py:m.Pool"),
            ent("py:m.Sub", "class", "py:m"),
            ent("py:m.make", "function", "py:m"),
            ent("py:m.Case", "class", "py:m"),
            ent("py:m.Case.test", "method", "py:m.Case"),
        ],
        [
            Fact("py:m.Sub", int(Relation.INHERITS), Ref("dotted", "Client", "py:m"), 1),
            Fact("py:m.Case", int(Relation.INHERITS), Ref("dotted", "unittest.TestCase", "py:m"), 1),
            Fact("py:m.make", int(Relation.RETURNS), Ref("dotted", "Client", "py:m.make"), 1),
            Fact("py:m.Client.session", int(Relation.RETURNS), Ref("dotted", "requests.Session", "py:m"), 1),
            Fact("py:m.Client.pool", int(Relation.HAS_TYPE), Ref("dotted", "Pool", "py:m.Client"), 1),
        ],
        imports={"requests": "py:requests", "unittest": "py:unittest"},
        types={"py:m.Client.transport": ("type", "make", "py:m.Client")},
    ),
    graph(
        "p/other.py",
        [
            ent("py:other", "module", None, "p/other.py"),
            ent("py:other.join", "function", "py:other", "p/other.py"),
        ],
    ),
]


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    r = Resolver(CORPUS, SPECS, max_depth=8)
    r.hierarchy(CORPUS)
    return r


def typed(member: str, receiver: tuple, scope: str = "py:m.make") -> Ref:
    return Ref("typed", member, scope, receiver)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        # x = Client(); x.get()
        (typed("get", ("type", "Client", "py:m.make")), ("py:m.Client.get", "inferred")),
        # x = Sub(); x.get(): found in a base
        (typed("get", ("type", "Sub", "py:m.make")), ("py:m.Client.get", "inferred")),
        # x = make(); x.get(): the function's declared return type
        (typed("get", ("type", "make", "py:m.make")), ("py:m.Client.get", "inferred")),
        # self.pool.take(): the field's has_type
        (typed("take", ("attr", ("self", "py:m.Client"), "pool")), ("py:m.Pool.take", "inferred")),
        # self.transport.get(): the field's described value (FileGraph.types), itself a call of make()
        (typed("get", ("attr", ("self", "py:m.Client"), "transport")), ("py:m.Client.get", "inferred")),
        # self.session().get(): a method's return type outside the corpus
        (typed("get", ("attr", ("self", "py:m.Client"), "session")), ("py:requests.Session.get", "inferred")),
        # x = requests.Session(); x.get()
        (typed("get", ("type", "requests.Session", "py:m.make")), ("py:requests.Session.get", "inferred")),
        # a builtin class
        (typed("append", ("type", "list", "py:m.make")), ("py:builtins.list.append", "inferred")),
        # what is not a class gives no class: x = json.loads(s); x.get()
        (typed("get", ("type", "json.loads", "py:m.make")), ("py:?.get", "unresolved")),
        # a corpus class without the member and no base outside the corpus
        (typed("nope", ("type", "Client", "py:m.make")), ("py:?.nope", "unresolved")),
        # a receiver that cannot be described: never by name, though py:other.join is unique
        (Ref("member", "join", "py:m.make"), ("py:?.join", "unresolved")),
        (Ref("dotted", "parts.join", "py:m.make"), ("py:?.join", "unresolved")),
        # a bare name may be found by its one definition
        (Ref("name", "join", "py:m.make"), ("py:other.join", "name")),
        # a global owner name before the dot, then its member exactly
        (Ref("dotted", "Pool.take", "py:other.join"), ("py:m.Pool.take", "name")),
        # self.assertEqual in a unittest.TestCase: the one base outside the corpus
        (Ref("self", "assertEqual", "py:m.Case"), ("py:unittest.TestCase.assertEqual", "hierarchy")),
        (Ref("self", "nope", "py:m.Client"), ("py:?.nope", "unresolved")),
    ],
)
def test_resolve(resolver, ref, expected):
    assert resolver.resolve(ref, "p/m.py", "python") == expected


def test_a_value_that_names_itself_ends(resolver):
    """A field described by its own value: inference stops at the depth bound."""
    loop = graph(
        "p/l.py",
        [
            ent("py:l", "module", None, "p/l.py"),
            ent("py:l.C", "class", "py:l", "p/l.py"),
            ent("py:l.C.x", "field", "py:l.C", "p/l.py"),
        ],
        types={"py:l.C.x": ("attr", ("self", "py:l.C"), "x")},
    )
    r = Resolver([loop], SPECS, max_depth=8)
    r.hierarchy([loop])
    assert r.resolve(typed("m", ("attr", ("self", "py:l.C"), "x"), "py:l.C"), "p/l.py", "python") == (
        "py:?.m",
        "unresolved",
    )


def test_a_dynamic_class_and_its_subclasses_have_no_member_outside_the_corpus():
    """FileGraph.dynamic: members made at run time are no member of the class's one base outside
    the corpus, for the class or a corpus class below it."""
    g = graph(
        "p/d.py",
        [
            ent("py:d", "module", None, "p/d.py"),
            ent("py:d.J", "class", "py:d", "p/d.py"),
            ent("py:d.Sub", "class", "py:d", "p/d.py"),
        ],
        [
            Fact("py:d.J", int(Relation.INHERITS), Ref("dotted", "ext.Base", "py:d"), 1),
            Fact("py:d.Sub", int(Relation.INHERITS), Ref("dotted", "J", "py:d"), 1),
        ],
        imports={"ext": "py:ext"},
        dynamic=["py:d.J"],
    )
    r = Resolver([g], SPECS, max_depth=8)
    r.hierarchy([g])
    for cls in ("py:d.J", "py:d.Sub"):
        assert r.resolve(Ref("self", "m", cls), "p/d.py", "python") == ("py:?.m", "unresolved")
        assert r.resolve(typed("m", ("self", cls), "py:d"), "p/d.py", "python") == ("py:?.m", "unresolved")


def test_calling_a_builtin_class_instantiates_it(resolver):
    assert (
        resolver.relabel("py:m.make", Relation.CALLS, "py:builtins.ValueError", "python")
        == Relation.INSTANTIATES
    )
    assert resolver.relabel("py:m.make", Relation.CALLS, "py:builtins.len", "python") == Relation.CALLS
    assert resolver.relabel("py:m.make", Relation.CALLS, "py:requests.Session", "python") == Relation.CALLS


JS = [
    graph(
        "p/a.js",
        [
            ent("js:a.js", "module", None, "p/a.js", "javascript"),
            ent("js:a.js:A", "class", "js:a.js", "p/a.js", "javascript"),
        ],
        lang="javascript",
        imports={"default": "js:a.js:A"},
    ),
    graph(
        "p/index.js",
        [ent("js:index.js", "module", None, "p/index.js", "javascript")],
        lang="javascript",
        star_imports=["js:a"],
    ),
    graph(
        "p/u.js",
        [
            ent("js:u.js", "module", None, "p/u.js", "javascript"),
            ent("js:u.js:helper", "function", "js:u.js", "p/u.js", "javascript"),
        ],
        lang="javascript",
    ),
]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("js:a.js:default", ("js:a.js:A", "import")),  # export default
        ("js:index:A", ("js:a.js:A", "import")),  # export * from './a'
        ("js:index.js:default", ("js:index.js", "import")),  # no default export: the module itself
        ("js:u.js:default.helper", ("js:u.js:helper", "import")),  # require('./u').helper
        ("js:index.js:B", None),
    ],
)
def test_module_exports(target, expected):
    r = Resolver(JS, SPECS, max_depth=8)
    r.hierarchy(JS)
    assert r.path(target) == expected


def test_export_star_binds_no_name_in_its_own_module():
    files = [
        *JS,
        graph(
            "p/idx.js",
            [
                ent("js:idx.js", "module", None, "p/idx.js", "javascript"),
                ent("js:idx.js:g", "function", "js:idx.js", "p/idx.js", "javascript"),
            ],
            lang="javascript",
            star_imports=["js:a.js"],
        ),
    ]
    r = Resolver(files, SPECS, max_depth=8)
    r.hierarchy(files)
    assert r.resolve(Ref("name", "A", "js:idx.js:g"), "p/idx.js", "javascript") == ("js:a.js:A", "name")
    assert r.path("js:idx.js:A") == ("js:a.js:A", "import")


def test_an_instance_of_an_external_default_import():
    g = graph(
        "p/e.js",
        [ent("js:e.js", "module", None, "p/e.js", "javascript")],
        lang="javascript",
        imports={"Ext": "js:ext:default", "ext": "js:ext2:default"},
    )
    r = Resolver([g], SPECS, max_depth=8)
    r.hierarchy([g])
    assert r.resolve(typed("go", ("type", "Ext", "js:e.js"), "js:e.js"), "p/e.js", "javascript") == (
        "js:ext:default.go",
        "inferred",
    )
    assert r.resolve(typed("go", ("type", "ext", "js:e.js"), "js:e.js"), "p/e.js", "javascript") == (
        "js:?.go",
        "unresolved",
    )


def test_what_is_not_a_class_gives_no_members():
    """`-> Any` (typing's forms are no classes), a type alias of a corpus module (the corpus would
    define a class), and `-> Self`, which is the method's own class."""
    g = graph(
        "p/t.py",
        [
            ent("py:t", "module", None, "p/t.py"),
            ent("py:t.C", "class", "py:t", "p/t.py"),
            ent("py:t.C.me", "method", "py:t.C", "p/t.py"),
            ent("py:t.C.any", "method", "py:t.C", "p/t.py"),
            ent("py:t.C.alias", "method", "py:t.C", "p/t.py"),
        ],
        [
            Fact("py:t.C.me", int(Relation.RETURNS), Ref("dotted", "Self", "py:t.C.me"), 1),
            Fact("py:t.C.any", int(Relation.RETURNS), Ref("dotted", "Any", "py:t.C.any"), 1),
            Fact("py:t.C.alias", int(Relation.RETURNS), Ref("dotted", "DataDict", "py:t.C.alias"), 1),
        ],
        imports={"Self": "py:typing_extensions.Self", "Any": "py:typing.Any", "DataDict": "py:t.DataDict"},
    )
    r = Resolver([g], SPECS, max_depth=8)
    r.hierarchy([g])

    def call(method: str) -> tuple[str, str]:
        return r.resolve(typed("me", ("attr", ("self", "py:t.C"), method), "py:t.C.me"), "p/t.py", "python")

    assert call("me") == ("py:t.C.me", "inferred")
    assert call("any") == ("py:?.me", "unresolved")
    assert call("alias") == ("py:?.me", "unresolved")


def test_a_bare_name_is_never_a_method_and_a_lost_chain_keeps_the_called_name(resolver):
    assert resolver.resolve(Ref("name", "take", "py:other.join"), "p/other.py", "python") == (
        "py:?.take",
        "unresolved",
    )
    assert resolver.resolve(Ref("dotted", "Pool.nope.take", "py:other.join"), "p/other.py", "python") == (
        "py:?.take",
        "unresolved",
    )


def test_a_corpus_extension_of_a_builtin_class_and_builtins_called_without_new():
    ext = graph(
        "p/ext.js",
        [
            ent("js:ext.js", "module", None, "p/ext.js", "javascript"),
            ent("js:ext.js:Date.twoDigit", "method", "js:ext.js", "p/ext.js", "javascript"),
        ],
        lang="javascript",
    )
    r = Resolver([ext], SPECS, max_depth=8)
    r.hierarchy([ext])
    date = ("type", "Date", "js:ext.js")
    assert r.resolve(typed("twoDigit", date, "js:ext.js"), "p/ext.js", "javascript") == (
        "js:ext.js:Date.twoDigit",
        "inferred",
    )
    assert r.resolve(typed("getDay", date, "js:ext.js"), "p/ext.js", "javascript") == (
        "js:Date.getDay",
        "inferred",
    )
    assert r.relabel("js:ext.js", Relation.CALLS, "js:Error", "javascript") == Relation.INSTANTIATES
    assert r.relabel("js:ext.js", Relation.CALLS, "js:String", "javascript") == Relation.CALLS
