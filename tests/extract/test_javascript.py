"""Exact triples of every relation on a small javascript project: for each relation, the full
set of (head, tail) pairs that extraction and resolution produce, so a lost or an extra triple fails."""

import pytest

from graphmer.relations import Relation
from tests.extract.helpers import extract_tables, triples

FILES = {
    "lib/shapes.js": """\
import { Base } from "./base";
const util = require("./util");

/**
 * A square.
 */
export class Square extends Base {
  /** @type {number} */
  side = 1;

  constructor(side) {
    super();
    this.side = side;
  }

  /**
   * @param {number} k scale factor
   * @returns {Square}
   */
  scale(k) {
    if (k < 0) {
      throw new RangeError("negative");
    }
    return new Square(this.side * util.times(k));
  }

  area() {
    return this.describe() + super.area();
  }
}
""",
    "lib/base.js": """\
export class Base {
  area() { return 0; }
  describe() { return "base"; }
}
""",
    "lib/util.js": """\
function times(k) { return k * 2; }
module.exports = { times };
""",
    "lib/widgets.js": """\
const Widgets = {
  init: function(root) {
    Widgets.render(root);
  },
  render(root) { return root; }
};

function sealed(cls) { return cls; }

@sealed
class Panel {}
""",
    "js_tests/shapes.test.js": """\
QUnit.test("scale", function(assert) {
  const s = new Square(1);
  assert.equal(times(2), 4);
  Widgets.init(null);
});
""",
}

EXPECTED = {
    "contains": {
        ("js:js_tests/shapes.test.js", "js:js_tests/shapes.test.js:test(scale)"),
        ("js:lib/base.js", "js:lib/base.js:Base"),
        ("js:lib/base.js:Base", "js:lib/base.js:Base.area"),
        ("js:lib/base.js:Base", "js:lib/base.js:Base.describe"),
        ("js:lib/shapes.js", "js:lib/shapes.js:Square"),
        ("js:lib/shapes.js:Square", "js:lib/shapes.js:Square.area"),
        ("js:lib/shapes.js:Square", "js:lib/shapes.js:Square.constructor"),
        ("js:lib/shapes.js:Square", "js:lib/shapes.js:Square.scale"),
        ("js:lib/util.js", "js:lib/util.js:times"),
        ("js:lib/widgets.js", "js:lib/widgets.js:Panel"),
        ("js:lib/widgets.js", "js:lib/widgets.js:Widgets"),
        ("js:lib/widgets.js", "js:lib/widgets.js:sealed"),
        ("js:lib/widgets.js:Widgets", "js:lib/widgets.js:Widgets.init"),
        ("js:lib/widgets.js:Widgets", "js:lib/widgets.js:Widgets.render"),
    },
    "imports": {
        ("js:lib/shapes.js", "js:lib/base.js"),
        ("js:lib/shapes.js", "js:lib/base.js:Base"),
        ("js:lib/shapes.js", "js:lib/util.js"),
    },
    "calls": {
        ("js:js_tests/shapes.test.js:test(scale)", "js:?.equal"),
        ("js:js_tests/shapes.test.js:test(scale)", "js:lib/util.js:times"),
        ("js:js_tests/shapes.test.js:test(scale)", "js:lib/widgets.js:Widgets.init"),
        ("js:lib/shapes.js:Square.area", "js:lib/base.js:Base.area"),
        ("js:lib/shapes.js:Square.area", "js:lib/base.js:Base.describe"),
        ("js:lib/shapes.js:Square.scale", "js:lib/util.js:times"),
        ("js:lib/widgets.js:Widgets.init", "js:lib/widgets.js:Widgets.render"),
    },
    "instantiates": {
        ("js:js_tests/shapes.test.js:test(scale)", "js:lib/shapes.js:Square"),
        ("js:lib/shapes.js:Square.scale", "js:RangeError"),
        ("js:lib/shapes.js:Square.scale", "js:lib/shapes.js:Square"),
    },
    "inherits": {
        ("js:lib/shapes.js:Square", "js:lib/base.js:Base"),
    },
    "implements": set(),
    "overrides": {
        ("js:lib/shapes.js:Square.area", "js:lib/base.js:Base.area"),
    },
    "has_parameter": {
        ("js:lib/shapes.js:Square.constructor", "js:lib/shapes.js:Square.constructor.side"),
        ("js:lib/shapes.js:Square.scale", "js:lib/shapes.js:Square.scale.k"),
        ("js:lib/util.js:times", "js:lib/util.js:times.k"),
        ("js:lib/widgets.js:Widgets.init", "js:lib/widgets.js:Widgets.init.root"),
        ("js:lib/widgets.js:Widgets.render", "js:lib/widgets.js:Widgets.render.root"),
        ("js:lib/widgets.js:sealed", "js:lib/widgets.js:sealed.cls"),
    },
    "has_type": {
        ("js:lib/shapes.js:Square.scale.k", "js:number"),
        ("js:lib/shapes.js:Square.side", "js:number"),
    },
    "returns": {
        ("js:lib/shapes.js:Square.scale", "js:lib/shapes.js:Square"),
    },
    "has_field": {
        ("js:lib/shapes.js:Square", "js:lib/shapes.js:Square.side"),
    },
    "accesses": {
        ("js:lib/shapes.js:Square.constructor", "js:lib/shapes.js:Square.side"),
        ("js:lib/shapes.js:Square.scale", "js:lib/shapes.js:Square.side"),
    },
    "decorated_by": {
        ("js:lib/widgets.js:Panel", "js:lib/widgets.js:sealed"),
    },
    "raises": {
        ("js:lib/shapes.js:Square.scale", "js:RangeError"),
    },
    "catches": set(),
    "tests": {
        ("js:js_tests/shapes.test.js:test(scale)", "js:lib/util.js:times"),
        ("js:js_tests/shapes.test.js:test(scale)", "js:lib/widgets.js:Widgets.init"),
    },
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return extract_tables(tmp_path_factory.mktemp("javascript"), FILES)


@pytest.mark.parametrize("relation", list(Relation), ids=lambda r: r.label)
def test_relation(tables, relation):
    assert triples(tables, relation) == EXPECTED[relation.label]


def test_prototype_methods_and_their_jsdoc(tmp_path):
    t = extract_tables(
        tmp_path,
        {
            "lib/outlayer.js": """\
function Outlayer(el) {}

/**
 * @param {Element} el the root
 * @returns {String} the layout name
 */
Outlayer.prototype.layout = function(el) {
  return render(el);
};

exports.render = function(el) { return el; };
"""
        },
    )
    m = "js:lib/outlayer.js:"
    assert triples(t, Relation.CONTAINS) == {
        ("js:lib/outlayer.js", m + "Outlayer"),
        ("js:lib/outlayer.js", m + "Outlayer.layout"),
        ("js:lib/outlayer.js", m + "render"),
    }
    assert triples(t, Relation.HAS_TYPE) == {(m + "Outlayer.layout.el", "js:?.Element")}
    assert triples(t, Relation.RETURNS) == {(m + "Outlayer.layout", "js:String")}
    assert triples(t, Relation.CALLS) == {(m + "Outlayer.layout", m + "render")}
