"""JavaScript module exports (ES default, re-exports, CommonJS) and inferred receivers: first the
FileGraph the extractor hands the resolver, then the exact triples, with how each tail was found."""

from graphmer.extract import javascript
from graphmer.relations import Relation
from tests.extract.helpers import extract_tables


def graph(source: str, unit: str = "lib/m.js"):
    return javascript.extract(unit, source.encode(), unit)


def calls(g, head: str) -> list[tuple]:
    """(kind, text, receiver) of the calls from `head`, in source order."""
    return [
        (f.ref.kind, f.ref.text, f.ref.receiver)
        for f in g.facts
        if f.head == head and f.relation == Relation.CALLS
    ]


def rows(tables, relation: Relation, file: str) -> set[tuple[str, str, str]]:
    """(head, tail, resolution) of the `relation` triples read in `file`."""
    t = tables["triples"]
    t = t[(t["relation"] == int(relation)) & (t["file"] == f"proj/{file}")]
    return set(zip(t["head"], t["tail"], t["resolution"]))


# ----------------------------------------------------------------- the FileGraph


def test_es_exports_name_what_they_export():
    g = graph(
        """\
import Base from './base.js';
import * as ns from './ns';
import { helper as h } from './helpers';
export default class A extends Base {}
function build() {}
const plain = 1;
export { build as make, build, h as help, ns as space, plain as flat };
export { x as y, default as Z } from './m2';
export * from './star';
export * as all from './all';
"""
    )
    assert g.imports == {
        "Base": "js:lib/base.js:default",
        "ns": "js:lib/ns",
        "h": "js:lib/helpers:helper",
        "default": "js:lib/m.js:A",
        "make": "js:lib/m.js:build",
        "help": "js:lib/helpers:helper",
        "space": "js:lib/ns",
        "y": "js:lib/m2:x",
        "Z": "js:lib/m2:default",
        "all": "js:lib/all",
    }  # no `build` (the module's own child) nor `flat` (a variable: no entity)
    assert g.star_imports == ["js:lib/star"]


def test_export_default_of_a_name_a_function_and_an_anonymous_value():
    assert graph("class C {}\nexport default C;\n").imports == {"default": "js:lib/m.js:C"}
    assert graph("export default function f() {}\n").imports == {"default": "js:lib/m.js:f"}
    assert graph("import X from './x';\nexport default X;\n").imports == {
        "X": "js:lib/x:default",
        "default": "js:lib/x:default",
    }
    assert graph("export default new Thing();\n").imports == {}
    anonymous = graph("export default function () { go(); }\n")
    assert [(e.id, e.kind, e.name) for e in anonymous.entities] == [
        ("js:lib/m.js", "module", "m.js"),
        ("js:lib/m.js:default", "function", "default"),
    ]
    assert anonymous.imports == {}  # the module's child `default` is found first
    assert calls(anonymous, "js:lib/m.js:default") == [("name", "go", ())]


def test_an_exported_name_does_not_replace_an_import_of_that_name():
    g = graph("import b from './b';\nfunction a() {}\nexport { a as b };\n")
    assert g.imports == {"b": "js:lib/b:default"}


def test_commonjs_exports():
    g = graph(
        """\
const { A, B: C } = require('./ab');
class Foo {}
function bar() {}
module.exports = Foo;
module.exports = { A, bar, baz: C, qux: function () {}, meth() {} };
exports.k = bar;
exports.f = function () {};
module.exports.g = A;
exports.H = class {};
"""
    )
    assert g.imports == {
        "A": "js:lib/ab:A",
        "C": "js:lib/ab:B",
        "default": "js:lib/m.js:Foo",
        "baz": "js:lib/ab:B",
        "k": "js:lib/m.js:bar",
        "g": "js:lib/ab:A",
    }  # bar, qux, meth, f, H: the module's own children
    kinds = {e.id: e.kind for e in g.entities}
    assert kinds["js:lib/m.js:f"] == "function"
    assert kinds["js:lib/m.js:H"] == "class"


def test_module_exports_of_a_function_written_in_place_or_of_another_module():
    assert graph("module.exports = function () {};\n").imports == {"default": "js:lib/m.js:exports"}
    assert graph("module.exports = require('./impl');\n").imports == {"default": "js:lib/impl:default"}
    g = graph("module.exports = { a: require('./a'), b: require('./b').b2, c: make() };\n")
    assert g.imports == {"a": "js:lib/a:default", "b": "js:lib/b:b2"}
    assert graph("exports.x = require('./x').y;\n").imports == {"x": "js:lib/x:y"}


def test_require_binds_the_modules_default_or_its_members():
    g = graph(
        """\
const X = require('./x');
const y = require('./y').inner;
const { a, b: c } = require('./ab');
function f() { const lazy = require('../lazy'); }
"""
    )
    assert g.imports == {
        "X": "js:lib/x:default",
        "y": "js:lib/y:inner",
        "a": "js:lib/ab:a",
        "c": "js:lib/ab:b",
        "lazy": "js:lazy:default",
    }


def test_receivers_described_by_this_file():
    g = graph(
        """\
const shared = new Pool();
/** @returns {Conn} */
function connect() {}
/**
 * @param {Req} req
 * @param {number} n
 */
function f(req, n, other) {
  const a = new A();
  a.run();
  const alias = a;
  alias.run();
  a.inner.deep();
  let c;
  c = connect();
  c.send();
  /** @type {T} */
  const t = load();
  t.use();
  const v = await a.load();
  v.read();
  new D().e();
  connect().send();
  req.send();
  shared.take();
  Widgets.make().init();
}
"""
    )
    s = "js:lib/m.js:f"
    a = ("type", "A", s)
    assert calls(g, s) == [
        ("typed", "run", a),
        ("typed", "run", a),
        ("typed", "deep", ("attr", a, "inner")),
        ("name", "connect", ()),
        ("typed", "send", ("type", "connect", s)),
        ("name", "load", ()),
        ("typed", "use", ("type", "T", s)),
        ("typed", "load", a),
        ("typed", "read", ("attr", a, "load")),
        ("typed", "e", ("type", "D", s)),
        ("typed", "send", ("type", "connect", s)),
        ("name", "connect", ()),
        ("typed", "send", ("type", "Req", s)),
        ("typed", "take", ("type", "Pool", "js:lib/m.js")),
        ("typed", "init", ("type", "Widgets.make", s)),
        ("dotted", "Widgets.make", ()),
    ]


def test_receivers_this_file_does_not_describe_are_members_of_an_unknown_value():
    g = graph(
        """\
/** @param {number} n */
function f(n, other, xs) {
  other.go();
  n.toFixed();
  let b = new B();
  b = new B2();
  b.go();
  const made = factory;
  made.go();
  xs.forEach(x => x.go());
  for (const item of xs) item.go();
  const { d } = other;
  d.go();
  try {} catch (e) { e.go(); }
  const m = require('./m');
  m.go();
  util.go();
  go = wrap(go);
  go.call();
}
function go() {}
"""
    )
    s = "js:lib/m.js:f"
    member = ("member", "go", ())
    assert calls(g, s) == [
        member,
        ("member", "toFixed", ()),
        member,
        member,
        ("member", "forEach", ()),
        member,
        member,
        member,
        member,
        ("name", "require", ()),
        ("dotted", "m.go", ()),  # an import
        ("dotted", "util.go", ()),  # a global
        ("name", "wrap", ()),
        ("dotted", "go.call", ()),  # a definition, reassigned or not
    ]


def test_field_values():
    g = graph(
        """\
class Service {
  /** @type {Conn} */
  typed = make();
  pool = new Pool();
  constructor(opts) {
    this.conn = null;
    this.opts = opts;
    this.twice = new A();
    this.self = this;
  }
  open() {
    this.conn = connect();
    this.twice = new B();
    this.conn.send();
    this.pool.take();
  }
}
"""
    )
    cls = "js:lib/m.js:Service"
    assert g.types == {
        f"{cls}.pool": ("type", "Pool", cls),
        f"{cls}.conn": ("type", "connect", f"{cls}.open"),
        f"{cls}.self": ("self", cls),
    }  # typed: its has_type fact says; opts: a parameter of no type; twice: two values
    me = ("self", cls)
    assert calls(g, f"{cls}.open") == [
        ("name", "connect", ()),
        ("typed", "send", ("attr", me, "conn")),
        ("typed", "take", ("attr", me, "pool")),
    ]


def test_a_chain_of_aliases_is_described_a_few_links_deep():
    links = "".join(f"  const a{i + 1} = a{i};\n" for i in range(2000))
    g = graph(f"function f() {{\n  const a0 = new A();\n{links}  a2000.run();\n  a3.run();\n}}\n")
    assert calls(g, "js:lib/m.js:f") == [
        ("member", "run", ()),
        ("typed", "run", ("type", "A", "js:lib/m.js:f")),
    ]


# ----------------------------------------------------------------- resolved triples

EXPORTS = {
    "lib/core/AxiosError.js": "export default class AxiosError {\n  toJSON() { return {}; }\n}\n",
    "lib/core/settle.js": "export default function settle(resolve) { return resolve; }\n",
    "lib/core/Canceled.js": "class CanceledError {}\nexport default CanceledError;\n",
    "lib/core/again.js": "import AxiosError from './AxiosError.js';\nexport default AxiosError;\n",
    "lib/core/anon.js": "export default function () {}\n",
    "lib/core/names.js": "function build() {}\nexport { build as make };\n",
    "lib/core/all.js": "export function every() {}\n",
    "lib/core/index.js": (
        "export { make as create } from './names.js';\n"
        "export { default as Settle } from './settle.js';\n"
        "export * from './all';\n"
    ),
    "lib/cjs/Client.js": "class Client {\n  get() {}\n}\nmodule.exports = Client;\n",
    "lib/cjs/tools.js": "function one() {}\nfunction two() {}\nmodule.exports = { one, second: two };\n",
    "lib/cjs/exported.js": "function impl() {}\nexports.run = impl;\nexports.direct = function () {};\n",
    "lib/cjs/index.js": "module.exports = require('./Client.js');\n",
    "lib/app.js": """\
import AxiosError from './core/AxiosError.js';
import settle from './core/settle.js';
import CanceledError from './core/Canceled.js';
import Again from './core/again.js';
import anon from './core/anon.js';
import { make } from './core/names.js';
import { create, Settle, every } from './core/index.js';
const Client = require('./cjs/Client.js');
const tools = require('./cjs/tools');
const { run, direct } = require('./cjs/exported');
const exported = require('./cjs/exported');
const Indexed = require('./cjs');

function esDefaultClass() { new AxiosError(); }
function esDefaultFunction() { settle(); }
function esDefaultName() { new CanceledError(); }
function esDefaultImport() { new Again(); }
function esDefaultAnonymous() { anon(); }
function esAlias() { make(); }
function esReexport() { create(); Settle(); }
function esStar() { every(); }
function cjsDefault() { new Client(); }
function cjsReexport() { new Indexed(); }
function cjsObject() { tools.one(); tools.second(); }
function cjsExports() { run(); direct(); exported.run(); }
""",
}


def test_every_export_form_resolves_to_the_defining_entity(tmp_path):
    t = extract_tables(tmp_path, EXPORTS)
    app, core, cjs = "js:lib/app.js:", "js:lib/core/", "js:lib/cjs/"
    assert rows(t, Relation.INSTANTIATES, "lib/app.js") == {
        (app + "esDefaultClass", core + "AxiosError.js:AxiosError", "import"),
        (app + "esDefaultName", core + "Canceled.js:CanceledError", "import"),
        (app + "esDefaultImport", core + "AxiosError.js:AxiosError", "import"),
        (app + "cjsDefault", cjs + "Client.js:Client", "import"),
        (app + "cjsReexport", cjs + "Client.js:Client", "import"),
    }
    assert rows(t, Relation.CALLS, "lib/app.js") == {
        (app + "esDefaultFunction", core + "settle.js:settle", "import"),
        (app + "esDefaultAnonymous", core + "anon.js:default", "import"),
        (app + "esAlias", core + "names.js:build", "import"),
        (app + "esReexport", core + "names.js:build", "import"),
        (app + "esReexport", core + "settle.js:settle", "import"),
        (app + "esStar", core + "all.js:every", "import"),
        (app + "cjsObject", cjs + "tools.js:one", "import"),
        (app + "cjsObject", cjs + "tools.js:two", "import"),
        (app + "cjsExports", cjs + "exported.js:impl", "import"),
        (app + "cjsExports", cjs + "exported.js:direct", "import"),
    }


def test_a_reexport_imports_its_source(tmp_path):
    t = extract_tables(tmp_path, EXPORTS)
    core = "js:lib/core/"
    assert rows(t, Relation.IMPORTS, "lib/core/index.js") == {
        (core + "index.js", core + "names.js", "exact"),
        (core + "index.js", core + "names.js:build", "import"),
        (core + "index.js", core + "settle.js", "exact"),
        (core + "index.js", core + "settle.js:settle", "import"),
        (core + "index.js", core + "all.js", "import"),
    }


RECEIVERS = {
    "lib/conn.js": """\
export class Conn {
  send() {}
}
export class Other {
  send() {}
}
/** @returns {Conn} */
export function connect() { return new Conn(); }
""",
    "lib/service.js": """\
import { Conn, Other, connect } from './conn.js';

const shared = new Conn();

export class Service {
  constructor() {
    this.conn = null;
    this.pool = new Conn();
  }
  open() { this.conn = connect(); }
  local() { const c = new Conn(); c.send(); }
  field() { this.pool.send(); }
  assigned() { this.conn.send(); }
  fresh() { new Conn().send(); }
  returned() { connect().send(); }
  method() { this.helper().send(); }
  module() { shared.send(); }
  /** @param {Conn} conn */
  param(conn) { conn.send(); }
  /** @returns {Conn} */
  helper() { return this.pool; }
  unknown(other) { other.send(); }
  twoValues() { let d = new Conn(); d = new Other(); d.send(); }
  callback(xs) { xs.forEach((x) => x.send()); }
}
""",
}


def test_receivers_are_inferred(tmp_path):
    t = extract_tables(tmp_path, RECEIVERS)
    s, send = "js:lib/service.js:Service.", "js:lib/conn.js:Conn.send"
    got = rows(t, Relation.CALLS, "lib/service.js")
    inferred = {(s + m, send, "inferred") for m in ("local", "field", "assigned", "fresh", "returned")}
    inferred |= {(s + m, send, "inferred") for m in ("method", "module", "param")}
    unknown = {(s + m, "js:?.send", "unresolved") for m in ("unknown", "twoValues", "callback")}
    assert got == inferred | unknown | {
        (s + "open", "js:lib/conn.js:connect", "import"),
        (s + "returned", "js:lib/conn.js:connect", "import"),
        (s + "method", s + "helper", "exact"),
        (s + "callback", "js:?.forEach", "unresolved"),
    }


def test_this_in_an_object_literal_or_a_prototype_function(tmp_path):
    """`this.m()` in a method of an object literal, and in `proto.m = function` (its id is
    `<module>:proto.m`): the sibling method of the same file; not by name otherwise."""
    src = """\
const Widgets = {
  init: function () { this.render(); },
  render() { return 1; }
};
var proto = Layout.prototype;
proto.layout = function () { this.reset(); this.missing(); };
proto.reset = function () {};
function loose() { this.render(); }
"""
    t = extract_tables(tmp_path, {"w.js": src, "other.js": "function missing() {}\n"})["triples"]
    calls = t[t["relation"] == int(Relation.CALLS)]
    assert {(r.head, r.tail, r.resolution) for r in calls.itertuples()} == {
        ("js:w.js:Widgets.init", "js:w.js:Widgets.render", "exact"),
        ("js:w.js:proto.layout", "js:w.js:proto.reset", "exact"),
        ("js:w.js:proto.layout", "js:?.missing", "unresolved"),
        ("js:w.js:loose", "js:?.render", "unresolved"),
    }
