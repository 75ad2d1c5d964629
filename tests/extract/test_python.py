"""Exact triples of every relation on a small python project: for each relation, the full
set of (head, tail) pairs that extraction and resolution produce, so a lost or an extra triple fails."""

import pytest

from graphmer.relations import Relation
from tests.extract.helpers import extract_tables, triples

FILES = {
    "pkg/__init__.py": """\
from .base import Base
""",
    "pkg/base.py": """\
from typing import Protocol


class Runner(Protocol):
    def run(self) -> int: ...


class Base:
    limit = 3

    def run(self, n: int) -> int:
        return n
""",
    "pkg/app.py": """\
import os.path as osp
from . import base
from .base import Base, Runner
from pkg import Base as B2


def helper(x):
    return osp.join(x)


@staticmethod
class App(Base, Runner):
    name: str = "app"

    def __init__(self, size: "Size" = None):
        self.size = size

    def run(self, n: int) -> int:
        try:
            helper(self.size)
            return super().run(n) + self.limit
        except (ValueError, base.Oops) as err:
            raise RuntimeError("no") from err

    def make(self) -> "App":
        return App(B2())
""",
    "tests/test_app.py": """\
from pkg.app import App, helper


def test_run():
    assert App().run(1) == 1
    helper(2)
""",
}

EXPECTED = {
    "contains": {
        ("py:pkg.app", "py:pkg.app.App"),
        ("py:pkg.app", "py:pkg.app.helper"),
        ("py:pkg.app.App", "py:pkg.app.App.__init__"),
        ("py:pkg.app.App", "py:pkg.app.App.make"),
        ("py:pkg.app.App", "py:pkg.app.App.run"),
        ("py:pkg.base", "py:pkg.base.Base"),
        ("py:pkg.base", "py:pkg.base.Runner"),
        ("py:pkg.base.Base", "py:pkg.base.Base.run"),
        ("py:pkg.base.Runner", "py:pkg.base.Runner.run"),
        ("py:test_app", "py:test_app.test_run"),
    },
    "imports": {
        ("py:pkg", "py:pkg.base.Base"),
        ("py:pkg.app", "py:os.path"),
        ("py:pkg.app", "py:pkg.base"),
        ("py:pkg.app", "py:pkg.base.Base"),
        ("py:pkg.app", "py:pkg.base.Runner"),
        ("py:pkg.base", "py:typing.Protocol"),
        ("py:test_app", "py:pkg.app.App"),
        ("py:test_app", "py:pkg.app.helper"),
    },
    "calls": {
        ("py:pkg.app.App.run", "py:pkg.app.helper"),
        ("py:pkg.app.App.run", "py:pkg.base.Base.run"),
        ("py:pkg.app.helper", "py:os.path.join"),
        ("py:test_app.test_run", "py:pkg.app.App.run"),
        ("py:test_app.test_run", "py:pkg.app.helper"),
    },
    "instantiates": {
        ("py:pkg.app.App.make", "py:pkg.app.App"),
        ("py:pkg.app.App.run", "py:builtins.RuntimeError"),
        ("py:pkg.app.App.make", "py:pkg.base.Base"),
        ("py:test_app.test_run", "py:pkg.app.App"),
    },
    "inherits": {
        ("py:pkg.app.App", "py:pkg.base.Base"),
    },
    "implements": {
        ("py:pkg.app.App", "py:pkg.base.Runner"),
    },
    "overrides": {
        ("py:pkg.app.App.run", "py:pkg.base.Base.run"),
    },
    "has_parameter": {
        ("py:pkg.app.App.__init__", "py:pkg.app.App.__init__.size"),
        ("py:pkg.app.App.run", "py:pkg.app.App.run.n"),
        ("py:pkg.app.helper", "py:pkg.app.helper.x"),
        ("py:pkg.base.Base.run", "py:pkg.base.Base.run.n"),
    },
    "has_type": {
        ("py:pkg.app.App.__init__.size", "py:?.Size"),
        ("py:pkg.app.App.name", "py:builtins.str"),
        ("py:pkg.app.App.run.n", "py:builtins.int"),
        ("py:pkg.base.Base.run.n", "py:builtins.int"),
    },
    "returns": {
        ("py:pkg.app.App.make", "py:pkg.app.App"),
        ("py:pkg.app.App.run", "py:builtins.int"),
        ("py:pkg.base.Base.run", "py:builtins.int"),
        ("py:pkg.base.Runner.run", "py:builtins.int"),
    },
    "has_field": {
        ("py:pkg.app.App", "py:pkg.app.App.name"),
        ("py:pkg.app.App", "py:pkg.app.App.size"),
        ("py:pkg.base.Base", "py:pkg.base.Base.limit"),
    },
    "accesses": {
        ("py:pkg.app.App.__init__", "py:pkg.app.App.size"),
        ("py:pkg.app.App.run", "py:pkg.app.App.size"),
        ("py:pkg.app.App.run", "py:pkg.base.Base.limit"),
    },
    "decorated_by": {
        ("py:pkg.app.App", "py:builtins.staticmethod"),
    },
    "raises": {
        ("py:pkg.app.App.run", "py:builtins.RuntimeError"),
    },
    "catches": {
        ("py:pkg.app.App.run", "py:?.Oops"),
        ("py:pkg.app.App.run", "py:builtins.ValueError"),
    },
    "tests": {
        ("py:test_app.test_run", "py:pkg.app.App"),
        ("py:test_app.test_run", "py:pkg.app.App.run"),
        ("py:test_app.test_run", "py:pkg.app.helper"),
    },
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return extract_tables(tmp_path_factory.mktemp("python"), FILES)


@pytest.mark.parametrize("relation", list(Relation), ids=lambda r: r.label)
def test_relation(tables, relation):
    assert triples(tables, relation) == EXPECTED[relation.label]


def test_a_called_self_attribute_is_a_call_not_an_access(tmp_path):
    """`self.m()` and `cls.m()` call the method; only the bare reads `self.x` access a field (a
    field called, `self.handler()`, is neither: its target is not known statically), and
    `self.f()` in a plain function (no class: `self` is any parameter) neither calls nor accesses."""
    files = {
        "m.py": """\
class A:
    x = 1
    handler = print

    def m(self):
        return self.x

    @classmethod
    def k(cls):
        return cls.m(cls)

    def run(self):
        self.m()
        self.handler()
        return self.x + A.k()


def plain(self):
    return self.f()
""",
    }
    got = extract_tables(tmp_path, files)
    assert triples(got, Relation.ACCESSES) == {("py:m.A.m", "py:m.A.x"), ("py:m.A.run", "py:m.A.x")}
    assert triples(got, Relation.CALLS) == {
        ("py:m.A.k", "py:m.A.m"),
        ("py:m.A.run", "py:m.A.m"),
        ("py:m.A.run", "py:m.A.k"),
        ("py:m.plain", "py:?.f"),
    }


# ----------------------------------------------------------------- annotations


def typed_triples(tmp_path, source: str) -> dict[str, set[tuple[str, str]]]:
    tables = extract_tables(tmp_path, {"m.py": source})
    return {r.label: triples(tables, r) for r in (Relation.HAS_TYPE, Relation.RETURNS)}


def test_annotations_are_looked_up_where_the_definition_stands(tmp_path):
    """A signature's annotations are evaluated in the scope around the function, a class body's in
    the class body, where the field or method being defined is not bound yet: a parameter, field
    or method of the annotation's name is not its type, a nested class of the class is."""
    source = """\
from datetime import date


class Foo:
    pass


def flatten_to_string_key(dict: dict) -> dict:
    pass


def make(Foo, x: Foo) -> Foo:
    pass


class Order:
    class Status:  # a second `Status`: no lookup by the corpus's only name finds Item's
        pass


class Item:
    class Status:
        pass

    date: date
    status: Status

    def dict(self) -> dict:
        pass

    def set(self, status: Status) -> Status:
        pass
"""
    assert typed_triples(tmp_path, source) == {
        "has_type": {
            ("py:m.flatten_to_string_key.dict", "py:builtins.dict"),
            ("py:m.make.x", "py:m.Foo"),
            ("py:m.Item.date", "py:datetime.date"),
            ("py:m.Item.status", "py:m.Item.Status"),
            ("py:m.Item.set.status", "py:m.Item.Status"),
        },
        "returns": {
            ("py:m.flatten_to_string_key", "py:builtins.dict"),
            ("py:m.make", "py:m.Foo"),
            ("py:m.Item.dict", "py:builtins.dict"),
            ("py:m.Item.set", "py:m.Item.Status"),
        },
    }


def test_decorators_are_looked_up_around_the_definition(tmp_path):
    """A decorator is evaluated where its definition stands: a class body's helper decorates the
    methods below it, and a parameter of the decorated function is not its decorator."""
    source = """import functools


def cache(f):
    return f


class Api:
    def route(f):
        return f

    @route
    def get(self):
        pass

    @functools.wraps
    def put(self, route):
        pass


@cache
def load(cache):
    pass
"""
    assert triples(extract_tables(tmp_path, {"m.py": source}), Relation.DECORATED_BY) == {
        ("py:m.Api.get", "py:m.Api.route"),
        ("py:m.Api.put", "py:functools.wraps"),
        ("py:m.load", "py:m.cache"),
    }


def test_a_union_types_each_of_its_members(tmp_path):
    """One fact per named type of a union, `None` left out; a generic stays its own class."""
    source = """\
import typing
from typing import List, Optional, Union


class Foo:
    pass


class Bar:
    pass


def f(
    a: Foo | Bar,
    b: Union[Foo, Bar],
    c: typing.Union[Foo, Bar, None],
    d: Optional[Union[Foo, Bar]],
    e: "Foo | Bar",
    g: "Optional[Union[Foo, 'Bar']]",
    h: Foo | None,
    i: List[Foo] | None,
    j: Optional["Foo"],
) -> Union[Foo, "Bar"]:
    pass


class C:
    field: Foo | Bar | None
"""
    both = {"py:m.Foo", "py:m.Bar"}
    assert typed_triples(tmp_path, source) == {
        "has_type": {(f"py:m.f.{p}", t) for p in "abcdeg" for t in both}
        | {("py:m.f.h", "py:m.Foo"), ("py:m.f.i", "py:typing.List"), ("py:m.f.j", "py:m.Foo")}
        | {("py:m.C.field", t) for t in both},
        "returns": {("py:m.f", t) for t in both},
    }
