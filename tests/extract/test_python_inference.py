"""Local type inference for Python call receivers: the Value each binding gives a variable or a
field (records.Value), the Ref each call becomes, and the triples the resolver makes of them."""

import pytest

from graphmer.extract import python
from graphmer.relations import Relation
from tests.extract.helpers import extract_tables

C = "py:m.C"
SELF = ("self", C)


def extract(source: str):
    return python.extract("m.py", source.encode(), "m")


def calls(source: str, head: str) -> set[tuple]:
    """(kind, text, receiver) of each call `head` makes."""
    g = extract(source)
    return {
        (f.ref.kind, f.ref.text, f.ref.receiver)
        for f in g.facts
        if f.relation == Relation.CALLS and f.head == head
    }


def receiver_of(source: str, member: str, head: str = "py:m.f") -> tuple:
    """(kind, receiver) of the one call of `member` that `head` makes."""
    found = [(k, r) for k, t, r in calls(source, head) if t == member or t.endswith("." + member)]
    assert len(found) == 1, found
    return found[0]


# ----------------------------------------------------------------- what a variable holds


@pytest.mark.parametrize(
    "body, value",
    [
        ("x = Foo()", ("type", "Foo", "py:m")),
        ("x = make()", ("type", "make", "py:m")),
        ("x = mod.Foo()", ("type", "mod.Foo", "py:m")),
        ("x: Foo = make()", ("type", "Foo", "py:m")),  # the annotation decides
        ("x: Foo", ("type", "Foo", "py:m")),
        ("x = y = Foo()", ("type", "Foo", "py:m")),
        ("x = await Foo.open()", ("type", "Foo.open", "py:m")),
        ("x = (Foo())", ("type", "Foo", "py:m")),
        ("x = None\n    x = Foo()", ("type", "Foo", "py:m")),  # `= None` adds nothing
        ("x = Foo()\n    x = Foo()", ("type", "Foo", "py:m")),  # the same value twice
        ("x: Foo = None\n    x = Bar()", ("type", "Foo", "py:m")),  # the annotation decides alone
        ("y = Foo()\n    x = y.conn", ("attr", ("type", "Foo", "py:m"), "conn")),
        ("y = Foo()\n    x = y.open()", ("attr", ("type", "Foo", "py:m"), "open")),
        ("y = Foo()\n    x = y", ("type", "Foo", "py:m")),
        ("x = Foo().open()", ("attr", ("type", "Foo", "py:m"), "open")),
    ],
)
def test_local_value(body, value):
    source = f"import mod\n\ndef f():\n    {body}\n    x.get()\n"
    assert receiver_of(source, "get") == ("typed", value)


@pytest.mark.parametrize(
    "annotation", ["Foo", "Optional[Foo]", "typing.Optional[Foo]", '"Foo"', "Foo | None", '"Optional[Foo]"']
)
def test_annotated_parameter(annotation):
    source = f"def f(x: {annotation} = None):\n    x.get()\n"
    assert receiver_of(source, "get") == ("typed", ("type", "Foo", "py:m"))


@pytest.mark.parametrize(
    "params, expected",
    [
        ("*x", ("typed", ("type", "tuple", "py:m"))),
        ("**x", ("typed", ("type", "dict", "py:m"))),
        ("**x: Any", ("typed", ("type", "dict", "py:m"))),  # a dict, whatever its values are
        ("*, x: Any", ("member", ())),
        ("x: typing.Any", ("member", ())),
        ("x", ("member", ())),
    ],
)
def test_parameter_without_a_named_class(params, expected):
    assert receiver_of(f"def f({params}):\n    x.get()\n", "get") == expected


@pytest.mark.parametrize(
    "annotation",
    [
        "Foo | Bar",
        "Foo | Bar | None",
        "Union[Foo, Bar]",
        "typing.Union[Foo, Bar]",
        "Optional[Union[Foo, Bar]]",
        '"Foo | Bar"',
        '"Union[Foo, Bar] | None"',
    ],
)
def test_a_union_parameter_is_unknown(annotation):
    """Which member of a union a value is, is unknown: never the first one."""
    assert receiver_of(f"def f(x: {annotation}):\n    x.get()\n", "get") == ("member", ())
    assert receiver_of(f"def f():\n    x: {annotation} = Foo()\n    x.get()\n", "get") == ("member", ())


def test_an_annotation_is_looked_up_around_the_function():
    """`x: Foo` names what `Foo` is where `f` is defined, not its parameter `Foo`."""
    assert receiver_of("def f(x: Foo, Foo=None):\n    x.get()\n", "get") == ("typed", ("type", "Foo", "py:m"))


def test_optional_annotation_types_the_parameter():
    g = extract("def f(x: Optional[Foo]):\n    pass\n")
    assert [(f.head, f.ref.text) for f in g.facts if f.relation == Relation.HAS_TYPE] == [("py:m.f.x", "Foo")]


def test_with_target():
    assert receiver_of("def f():\n    with Foo() as x:\n        x.get()\n", "get") == (
        "typed",
        ("type", "Foo", "py:m"),
    )


def test_self_values():
    source = """\
class C:
    def f(self):
        a = self.conn
        b = self.make()
        a.get()
        b.put()
        self.conn.close()
        self.conn.pool.drain()
"""
    assert calls(source, "py:m.C.f") == {
        ("self", "make", ()),
        ("typed", "get", ("attr", SELF, "conn")),
        ("typed", "put", ("attr", SELF, "make")),
        ("typed", "close", ("attr", SELF, "conn")),
        ("typed", "drain", ("attr", ("attr", SELF, "conn"), "pool")),
    }


def test_receivers_made_by_a_call():
    source = """\
import mod


def f():
    Foo().a()
    make().b()
    mod.Foo().c()
    x = Foo()
    x.conn.d()
"""
    assert calls(source, "py:m.f") == {
        ("name", "Foo", ()),
        ("name", "make", ()),
        ("dotted", "mod.Foo", ()),
        ("typed", "a", ("type", "Foo", "py:m")),
        ("typed", "b", ("type", "make", "py:m")),
        ("typed", "c", ("type", "mod.Foo", "py:m")),
        ("typed", "d", ("attr", ("type", "Foo", "py:m"), "conn")),
    }


def test_module_variable():
    source = (
        "app = Flask(__name__)\n\ndef f():\n    app.route()\n\ndef g():\n    app = other()\n    app.run()\n"
    )
    assert receiver_of(source, "route") == ("typed", ("type", "Flask", "py:m"))
    assert receiver_of(source, "run", "py:m.g") == ("typed", ("type", "other", "py:m"))


def test_enclosing_function_variable():
    source = "def f():\n    x = Foo()\n    def g():\n        x.get()\n        self.y()\n"
    assert calls(source, "py:m.f.g") == {("typed", "get", ("type", "Foo", "py:m")), ("dotted", "self.y", ())}


def test_self_inside_a_nested_function():
    source = (
        "class C:\n    def f(self):\n        def g():\n            self.m()\n            self.conn.get()\n"
    )
    assert calls(source, "py:m.C.f.g") == {("typed", "m", SELF), ("typed", "get", ("attr", SELF, "conn"))}


def test_local_class_is_looked_up_from_its_function():
    source = "def f():\n    class Local:\n        pass\n    x = Local()\n    x.get()\n"
    assert receiver_of(source, "get") == ("typed", ("type", "Local", "py:m.f"))


@pytest.mark.parametrize(
    "body",
    [
        "x = Foo()\n    x = Bar()",  # two values
        "x = Foo()\n    for x in y: pass",
        "x = Foo()\n    x, z = y",
        "x = Foo()\n    [z, *x] = y",
        "x = Foo()\n    x += y",
        "x = Foo()\n    [x for x in y]",
        "x = Foo()\n    (x := y)",
        "x = Foo()\n    g = lambda x: x",
        "x = Foo()\n    try: pass\n    except E as x: pass",
        "x = Foo()\n    with y as x: pass\n    with Foo() as x: pass",
        "x = Foo()\n    global x",
        "x = compute()[0]",
        "x = []",
        "x = Foo",  # the class itself, not an instance
        "x = y.z",  # `y` is no variable here: a module's attribute
        "x = p()",  # a call of a parameter
        "x = p.make()",
        "a = b.f()\n    b = a.g()\n    x = a",  # each depends on the other
    ],
)
def test_unknown_local_is_a_member(body):
    source = f"def f(p):\n    {body}\n    x.get()\n"
    assert receiver_of(source, "get") == ("member", ())


def test_global_from_another_function_makes_the_module_variable_unknown():
    source = "x = Foo()\n\ndef f():\n    x.get()\n\ndef g():\n    global x\n    x = Bar()\n"
    assert receiver_of(source, "get") == ("member", ())


def test_nonlocal_makes_the_outer_variable_unknown():
    source = "def f():\n    x = Foo()\n    def g():\n        nonlocal x\n        x = Bar()\n    x.get()\n"
    assert receiver_of(source, "get") == ("member", ())


def test_unknown_variable_shadows_an_import():
    source = "import json\n\ndef f(json):\n    json.dumps()\n\ndef g():\n    json.loads()\n"
    assert receiver_of(source, "dumps") == ("member", ())
    assert receiver_of(source, "loads", "py:m.g") == ("dotted", ())


def test_unknown_module_variable_is_a_member():
    assert receiver_of("x = 3\n\ndef f():\n    x.get()\n", "get") == ("member", ())


def test_calls_kept_as_they_were():
    source = """\
import os
from lib import thing


def helper():
    pass


class C(B):
    def f(self):
        self.m()
        super().m()
        helper()
        helper.cache_clear()
        os.path.join()
        thing.run()
        b"".join([])
        items[0].m()
"""
    assert calls(source, "py:m.C.f") == {
        ("self", "m", ()),
        ("super", "m", ()),
        ("name", "helper", ()),
        ("dotted", "helper.cache_clear", ()),
        ("dotted", "os.path.join", ()),
        ("dotted", "thing.run", ()),
        ("member", "join", ()),
        ("member", "m", ()),
    }


@pytest.mark.parametrize("link", [".f()", ".a"])
def test_long_variable_chain(link):
    lines = ["x0 = Foo()"] + [f"x{i + 1} = x{i}{link}" for i in range(100)]
    source = "def f():\n    " + "\n    ".join(lines) + "\n    x100.last()\n    x2.early()\n"
    assert receiver_of(source, "last") == ("member", ())  # a Value 100 steps long is none
    step = link.strip(".()")
    assert receiver_of(source, "early") == ("typed", ("attr", ("attr", ("type", "Foo", "py:m"), step), step))


def test_long_call_chain_is_not_described():
    g = extract("def f(x):\n    y = Foo()\n    y" + ".f()" * 1000 + "\n")
    refs = [f.ref for f in g.facts if f.relation == Relation.CALLS and f.ref.text == "f"]
    assert len(refs) == 1000  # outermost first: the innermost `y.f()` is last
    assert refs[-1].receiver == ("type", "Foo", "py:m")
    assert refs[0].kind == "member"


# ----------------------------------------------------------------- what a field holds


def test_field_types():
    source = """\
class C:
    declared: Foo

    def __init__(self, conn: Conn, raw):
        self.conn = conn
        self.pool = Pool()
        self.raw = raw
        self.declared = Bar()
        self.items = []
        self.total = 0
        self.pair_a, self.pair_b = 1, 2

    def reset(self):
        pool = Pool()
        self.pool = pool
        self.later = self.make()
        self.total += 1
        self.changed = Foo()
        self.pair_a = Foo()

    def other(self):
        self.changed = Bar()
        self.opt = None
        self.opt = Foo()
"""
    assert extract(source).types == {
        "py:m.C.conn": ("type", "Conn", "py:m"),
        "py:m.C.pool": ("type", "Pool", "py:m"),  # equal from two methods
        "py:m.C.later": ("attr", SELF, "make"),
        "py:m.C.opt": ("type", "Foo", "py:m"),
    }


# ----------------------------------------------------------------- resolved end to end

FILES = {
    "pkg/__init__.py": "",
    "pkg/models.py": """\
class Base:
    def save(self) -> None:
        pass


class User(Base):
    def name(self) -> str:
        return ""

    def friend(self) -> "User":
        return self


def load() -> User:
    return User()
""",
    "pkg/util.py": """\
def fetch():
    pass


class URL:
    def join(self, other):
        return other
""",
    "pkg/service.py": """\
from typing import Optional

import requests

from pkg import models
from pkg.models import User, load

session = requests.Session()


class Service:
    def __init__(self, user: Optional[User]):
        self.user = user
        self.http = requests.Session()

    def current(self) -> User:
        return self.user

    def run(self, client):
        u = User()
        u.save()
        v = load()
        v.name()
        w = models.User()
        w.friend().name()
        self.user.name()
        self.current().save()
        self.http.get()
        session.post()
        d = dict()
        d.items()
        client.fetch()
        x = User()
        x = Service(None)
        x.name()
        b"".join([])
        u.missing()

    def connect(self):
        self.conn = load()

    def use(self):
        self.conn.friend()
        with models.User() as user:
            user.save()
""",
}

RUN = "py:pkg.service.Service.run"


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return extract_tables(tmp_path_factory.mktemp("inference"), FILES)


def resolved(tables, head: str, relation: Relation) -> set[tuple[str, str]]:
    t = tables["triples"]
    t = t[(t["head"] == head) & (t["relation"] == int(relation))]
    return set(zip(t["tail"], t["resolution"]))


def test_inferred_calls(tables):
    assert resolved(tables, RUN, Relation.CALLS) == {
        ("py:pkg.models.Base.save", "inferred"),  # u.save(), self.current().save()
        ("py:pkg.service.Service.current", "exact"),
        ("py:pkg.models.load", "import"),
        ("py:pkg.models.User.name", "inferred"),  # v, w.friend(), self.user; not x (two types)
        ("py:pkg.models.User.friend", "inferred"),
        ("py:requests.Session.get", "inferred"),
        ("py:requests.Session.post", "inferred"),
        ("py:builtins.dict.items", "inferred"),
        ("py:?.fetch", "unresolved"),  # not the corpus's only `fetch`
        ("py:?.name", "unresolved"),
        ("py:?.join", "unresolved"),  # not URL.join
        ("py:?.missing", "unresolved"),
    }


def test_field_set_in_another_method(tables):
    assert resolved(tables, "py:pkg.service.Service.use", Relation.CALLS) == {
        ("py:pkg.models.User.friend", "inferred"),
        ("py:pkg.models.Base.save", "inferred"),
    }


def test_instantiations_unchanged(tables):
    assert resolved(tables, RUN, Relation.INSTANTIATES) == {
        ("py:pkg.models.User", "import"),
        ("py:pkg.service.Service", "exact"),
        ("py:builtins.dict", "exact"),
    }


def test_optional_parameter_type(tables):
    assert resolved(tables, "py:pkg.service.Service.__init__.user", Relation.HAS_TYPE) == {
        ("py:pkg.models.User", "import")
    }


def test_a_called_variable_is_what_it_was_given_or_unknown(tmp_path):
    """`_check_access = logic.check_access` at module level is that function; a variable given
    anything else (a call's result, a loop's items) is not the corpus's one function of its name;
    a parameter's call names no target at all; an annotated variable is not an alias."""
    from graphmer.relations import Relation
    from tests.extract.helpers import extract_tables

    files = {
        "pkg/__init__.py": "",
        "pkg/logic.py": "def check_access(x):\n    pass\n\n\nclass Fmt:\n    def c(self):\n        pass\n",
        "pkg/other.py": "def _check_access():\n    pass\n\n\ndef c():\n    pass\n\n\ndef hook():\n    pass\n",
        "pkg/views.py": (
            "from pkg import logic\n\n"
            "_check_access = logic.check_access\n\n\n"
            "def index(backend, callback):\n"
            '    _check_access("x")\n'
            '    c = get_validator("x")\n'
            "    c(19)\n"
            "    for context_processor in backend.processors:\n"
            "        context_processor(2)\n"
            "    hook: Callable = get()\n"
            "    hook()\n"
            "    callback()\n"
        ),
    }
    t = extract_tables(tmp_path, files)["triples"]
    calls = t[(t["relation"] == int(Relation.CALLS)) & (t["head"] == "py:pkg.views.index")]
    assert {(r.tail, r.resolution) for r in calls.itertuples()} == {
        ("py:pkg.logic.check_access", "import"),
        ("py:?.get_validator", "unresolved"),
        ("py:?.c", "unresolved"),
        ("py:?.context_processor", "unresolved"),
        ("py:?.get", "unresolved"),
        ("py:?.hook", "unresolved"),
    }


def test_a_union_gives_no_receiver_class(tmp_path):
    """A call on a union's value (a parameter, a return, a field) is resolved as on none of its
    classes: both define each method, so neither the first member nor the last may be taken."""
    source = """\
class Foo:
    def a(self): ...
    def b(self): ...
    def c(self): ...


class Bar(Foo):
    def a(self): ...
    def b(self): ...
    def c(self): ...


def make() -> Foo | Bar:
    pass


class C:
    v: "Optional[Union[Foo, Bar]]"

    def g(self, x: Foo | Bar):
        x.a()
        make().b()
        self.v.c()
"""
    tables = extract_tables(tmp_path, {"m.py": source})
    assert resolved(tables, "py:m.C.g", Relation.CALLS) == {
        ("py:m.make", "exact"),
        ("py:?.a", "unresolved"),
        ("py:?.b", "unresolved"),
        ("py:?.c", "unresolved"),
    }


def test_a_dynamic_class_invents_no_member_of_its_base(tmp_path):
    """A class with a metaclass or its own `__getattribute__` (or a corpus base that has one) makes
    members at run time: a member it lacks is not its one outside base's. `__getattr__` runs only
    once the bases lack the member, and ABCMeta makes none: those classes' members stay the base's."""
    source = """\
import _jpype
import abc
import ext


class Meta(type):
    pass


class JClass(_jpype._JClass, metaclass=Meta):
    def own(self):
        pass


class Sub(JClass):
    def f(self):
        self.forName()
        self.own()


class Lazy(ext.Base):
    def __getattr__(self, name):
        pass

    def f(self):
        self.anything()


class Proxy(ext.Base):
    @staticmethod
    def __getattribute__(self, name):
        pass

    def f(self):
        self.anything()


class Plain(ext.Base):
    def f(self):
        self.save()


class Abstract(ext.Base, metaclass=abc.ABCMeta):
    def f(self):
        self.save()


def use(j: JClass, p: Plain, s: Sub):
    j.forName()
    s.own()
    p.save()
"""
    tables = extract_tables(tmp_path, {"m.py": source})
    assert resolved(tables, "py:m.Sub.f", Relation.CALLS) == {
        ("py:?.forName", "unresolved"),
        ("py:m.JClass.own", "hierarchy"),
    }
    assert resolved(tables, "py:m.Lazy.f", Relation.CALLS) == {("py:ext.Base.anything", "hierarchy")}
    assert resolved(tables, "py:m.Proxy.f", Relation.CALLS) == {("py:?.anything", "unresolved")}
    assert resolved(tables, "py:m.Plain.f", Relation.CALLS) == {("py:ext.Base.save", "hierarchy")}
    assert resolved(tables, "py:m.Abstract.f", Relation.CALLS) == {("py:ext.Base.save", "hierarchy")}
    assert resolved(tables, "py:m.use", Relation.CALLS) == {
        ("py:?.forName", "unresolved"),
        ("py:m.JClass.own", "inferred"),
        ("py:ext.Base.save", "inferred"),
    }


def test_a_parameter_typed_by_a_nested_class_is_its_instance(tmp_path):
    """A method's annotations are evaluated in its class body, so a nested class of the class
    types a parameter, and calls on the parameter go through that class (two `Status` classes:
    no lookup by the corpus's only name could find it)."""
    source = """\
class Order:
    class Status:
        def ok(self):
            pass


class Item:
    class Status:
        def ok(self):
            pass

    def check(self, s: Status, t: "Status"):
        s.ok()
        t.ok()
"""
    tables = extract_tables(tmp_path, {"m.py": source})
    assert resolved(tables, "py:m.Item.check", Relation.CALLS) == {("py:m.Item.Status.ok", "inferred")}
