"""Exact triples of every relation on a small java project: for each relation, the full
set of (head, tail) pairs that extraction and resolution produce, so a lost or an extra triple fails."""

import pytest

from graphmer.relations import Relation
from tests.extract.helpers import extract_tables, triples

FILES = {
    "org/x/Base.java": """\
package org.x;

public abstract class Base implements Runnable {
    protected int count;

    public void run() { count++; }

    public abstract String name(int n) throws java.io.IOException;
}
""",
    "org/x/Shape.java": """\
package org.x;

public interface Shape extends Comparable<Shape> {
    double area();
}
""",
    "org/x/App.java": """\
package org.x;

import java.util.List;
import org.y.Util;

@Deprecated
public class App extends Base implements Shape {
    private List<String> names;

    public App(List<String> names) { this.names = names; }

    @Override
    public String name(int n) throws IllegalStateException {
        try {
            names.add("x");
            helper(n);
            Util.log(count);
            super.run();
        } catch (IllegalArgumentException | java.io.IOException e) {
            throw new IllegalStateException(e);
        }
        return new String("a");
    }

    public double area() { return 0; }

    private void helper(int n) { }
}
""",
    "org/x/AppTest.java": """\
package org.x;

import org.junit.Test;

public class AppTest {
    @Test
    public void testArea() {
        App app = new App(null);
        app.area();
    }
}
""",
}

EXPECTED = {
    "contains": {
        ("java:org.x", "java:org.x.App"),
        ("java:org.x", "java:org.x.AppTest"),
        ("java:org.x", "java:org.x.Base"),
        ("java:org.x", "java:org.x.Shape"),
        ("java:org.x.App", "java:org.x.App.<init>"),
        ("java:org.x.App", "java:org.x.App.area"),
        ("java:org.x.App", "java:org.x.App.helper"),
        ("java:org.x.App", "java:org.x.App.name"),
        ("java:org.x.AppTest", "java:org.x.AppTest.testArea"),
        ("java:org.x.Base", "java:org.x.Base.name"),
        ("java:org.x.Base", "java:org.x.Base.run"),
        ("java:org.x.Shape", "java:org.x.Shape.area"),
    },
    "imports": {
        ("java:org.x.App", "java:java.util.List"),
        ("java:org.x.App", "java:org.y.Util"),
        ("java:org.x.AppTest", "java:org.junit.Test"),
    },
    "calls": {
        ("java:org.x.App.name", "java:java.util.List.add"),
        ("java:org.x.App.name", "java:org.x.App.helper"),
        ("java:org.x.App.name", "java:org.x.Base.run"),
        ("java:org.x.App.name", "java:org.y.Util.log"),
        ("java:org.x.AppTest.testArea", "java:org.x.App.area"),
    },
    "instantiates": {
        ("java:org.x.App.name", "java:java.lang.IllegalStateException"),
        ("java:org.x.App.name", "java:java.lang.String"),
        ("java:org.x.AppTest.testArea", "java:org.x.App"),
    },
    "inherits": {
        ("java:org.x.App", "java:org.x.Base"),
        ("java:org.x.Shape", "java:java.lang.Comparable"),
    },
    "implements": {
        ("java:org.x.App", "java:org.x.Shape"),
        ("java:org.x.Base", "java:java.lang.Runnable"),
    },
    "overrides": {
        ("java:org.x.App.area", "java:org.x.Shape.area"),
        ("java:org.x.App.name", "java:org.x.Base.name"),
    },
    "has_parameter": {
        ("java:org.x.App.<init>", "java:org.x.App.<init>.names"),
        ("java:org.x.App.helper", "java:org.x.App.helper.n"),
        ("java:org.x.App.name", "java:org.x.App.name.n"),
        ("java:org.x.Base.name", "java:org.x.Base.name.n"),
    },
    "has_type": {
        ("java:org.x.App.<init>.names", "java:java.util.List"),
        ("java:org.x.App.helper.n", "java:int"),
        ("java:org.x.App.name.n", "java:int"),
        ("java:org.x.App.names", "java:java.util.List"),
        ("java:org.x.Base.count", "java:int"),
        ("java:org.x.Base.name.n", "java:int"),
    },
    "returns": {
        ("java:org.x.App.area", "java:double"),
        ("java:org.x.App.name", "java:java.lang.String"),
        ("java:org.x.Base.name", "java:java.lang.String"),
        ("java:org.x.Shape.area", "java:double"),
    },
    "has_field": {
        ("java:org.x.App", "java:org.x.App.names"),
        ("java:org.x.Base", "java:org.x.Base.count"),
    },
    "accesses": {
        ("java:org.x.App.<init>", "java:org.x.App.names"),
        ("java:org.x.App.name", "java:org.x.App.names"),
        ("java:org.x.Base.run", "java:org.x.Base.count"),
    },
    "decorated_by": {
        ("java:org.x.App", "java:java.lang.Deprecated"),
        ("java:org.x.App.name", "java:java.lang.Override"),
        ("java:org.x.AppTest.testArea", "java:org.junit.Test"),
    },
    "raises": {
        ("java:org.x.App.name", "java:java.lang.IllegalStateException"),
        ("java:org.x.Base.name", "java:java.io.IOException"),
    },
    "catches": {
        ("java:org.x.App.name", "java:java.io.IOException"),
        ("java:org.x.App.name", "java:java.lang.IllegalArgumentException"),
    },
    "tests": {
        ("java:org.x.AppTest.testArea", "java:org.x.App.area"),
    },
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return extract_tables(tmp_path_factory.mktemp("java"), FILES)


@pytest.mark.parametrize("relation", list(Relation), ids=lambda r: r.label)
def test_relation(tables, relation):
    assert triples(tables, relation) == EXPECTED[relation.label]


INFERRED = """\
package p;

class Pool { Conn take() { return null; } }

class Conn { void close() {} }

class Svc {
  private Pool pool;

  Pool getPool() { return pool; }

  void run(Pool p) {
    Conn c = p.take();
    c.close();
    this.pool.take();
    getPool().take();
    new Pool().take();
    var q = new Pool();
    q.take();
    var r = make();
    r.close();
    String s = "x";
    s.length();
  }
}
"""


def test_calls_on_declared_receivers_are_inferred(tmp_path):
    """A parameter, local, `var x = new T()`, `this.field`, `new T()` and an own method's result
    name their class; a `var` of an unwritten type does not (not by name: `close` is unique)."""
    t = extract_tables(tmp_path, {"p/Svc.java": INFERRED})["triples"]
    calls = t[(t["relation"] == int(Relation.CALLS)) & (t["head"] == "java:p.Svc.run")]
    got = {(r.tail, r.resolution) for r in calls.itertuples()}
    assert got == {
        ("java:p.Pool.take", "inferred"),
        ("java:p.Conn.close", "inferred"),
        ("java:p.Svc.getPool", "exact"),
        ("java:?.make", "unresolved"),
        ("java:?.close", "unresolved"),
        ("java:java.lang.String.length", "inferred"),
    }


def test_an_inner_class_calls_its_outer_class_methods(tmp_path):
    src = """\
package p;

class Outer {
  static int helper() { return 1; }

  static class Inner {
    int run() { return helper(); }
  }
}
"""
    t = extract_tables(tmp_path, {"p/Outer.java": src})["triples"]
    calls = t[t["relation"] == int(Relation.CALLS)]
    assert {(r.head, r.tail, r.resolution) for r in calls.itertuples()} == {
        ("java:p.Outer.Inner.run", "java:p.Outer.helper", "exact")
    }
