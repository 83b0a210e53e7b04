"""Tests for nb2pipe.infer: one row per construct, then the flow between stages."""

from __future__ import annotations

import pytest

from nb2pipe.infer import (
    CellFacts,
    StageFlow,
    analyze_cell,
    infer_flow,
    needed_definitions,
    transform_ipython,
)


def S(*names: str) -> frozenset[str]:
    return frozenset(names)


# (id, source, expected fields). Only the fields given are checked.
CELL_CASES = [
    # -- binding -------------------------------------------------------------
    ("assign", "x = 1", {"binds": S("x"), "reads": S()}),
    ("assign-reads-value", "y = x + 1", {"binds": S("y"), "reads": S("x")}),
    ("tuple-assign", "a, (b, *c) = t", {"binds": S("a", "b", "c"), "reads": S("t")}),
    ("chained-assign", "a = b = 0", {"binds": S("a", "b")}),
    ("bind-then-read", "x = 1\nprint(x)", {"reads": S(), "binds": S("x")}),
    ("read-then-bind", "print(x)\nx = 1", {"reads": S("x"), "binds": S("x")}),
    ("self-referencing-assign", "x = x + 1", {"reads": S("x"), "binds": S("x")}),
    ("aug-assign", "x += 1", {"reads": S("x"), "binds": S("x"), "mutates": S()}),
    ("annotated-with-value", "n: int = size", {"binds": S("n"), "reads": S("size")}),
    ("annotated-without-value", "n: int", {"binds": S(), "reads": S()}),
    ("annotation-is-read", "n: Shape = 1", {"reads": S("Shape")}),
    ("for-target", "for i in items:\n    total = i", {"binds": S("i", "total"), "reads": S("items")}),
    ("with-target", "with ctx() as f:\n    pass", {"binds": S("f"), "reads": S("ctx")}),
    ("except-target", "try:\n    pass\nexcept ValueError as err:\n    pass", {"binds": S("err"), "reads": S()}),
    ("walrus", "if (n := len(xs)) > 3:\n    pass\nprint(n)", {"binds": S("n"), "reads": S("xs")}),
    ("walrus-in-comprehension", "ys = [y for x in xs if (y := f(x))]",
     {"binds": S("ys", "y"), "reads": S("xs", "f")}),
    ("walrus-in-comprehension-not-definite", "[y for x in xs if (y := x)]\nprint(y)",
     {"binds": S("y"), "reads": S("xs", "y")}),
    ("import", "import os", {"binds": S("os"), "imports": S("os"), "reads": S()}),
    ("import-dotted", "import os.path", {"binds": S("os"), "imports": S("os")}),
    ("import-as", "import numpy as np", {"binds": S("np"), "imports": S("np")}),
    ("from-import-as", "from a.b import c, d as e", {"binds": S("c", "e"), "imports": S("c", "e")}),
    ("future-import", "from __future__ import annotations", {"binds": S(), "warnings": ()}),
    ("def", "def f():\n    pass", {"binds": S("f"), "definitions": S("f"), "imports": S()}),
    ("class", "class A:\n    pass", {"binds": S("A"), "definitions": S("A")}),
    ("global-in-function", "def f():\n    global counter\n    counter = 1",
     {"binds": S("f", "counter"), "definitions": S("f"), "reads": S()}),
    ("global-aug-in-function", "def bump():\n    global n\n    n += 1",
     {"binds": S("bump", "n"), "reads": S("n")}),
    ("del-name", "del x", {"binds": S("x"), "mutates": S()}),
    ("conditional-bind-is-bind", "if flag:\n    x = 1\nprint(x)", {"binds": S("x"), "reads": S("flag", "x")}),
    ("bind-in-both-branches", "if flag:\n    x = 1\nelse:\n    x = 2\nprint(x)", {"reads": S("flag")}),
    ("bind-in-loop-not-definite", "for i in r:\n    last = i\nprint(last)", {"reads": S("r", "last")}),
    ("read-in-loop-before-bind", "for i in r:\n    acc = acc + i", {"reads": S("r", "acc")}),
    ("bind-in-try-not-definite", "try:\n    v = load()\nexcept OSError:\n    pass\nprint(v)",
     {"reads": S("load", "v")}),
    ("with-body-is-straight-line", "with ctx():\n    v = 1\nprint(v)", {"reads": S("ctx")}),
    ("ifexp-bind-in-one-branch", "v = a if c else (z := 2)\nprint(z)", {"reads": S("a", "c", "z")}),
    ("bind-in-handler-not-definite", "try:\n    pass\nexcept E:\n    h = 1\nprint(h)", {"reads": S("E", "h")}),
    ("bind-in-try-and-handler", "try:\n    h = f()\nexcept E:\n    h = 1\nprint(h)", {"reads": S("f", "E")}),
    ("bind-in-one-case", "match v:\n    case 1:\n        w = 1\n    case _:\n        pass\nprint(w)",
     {"reads": S("v", "w")}),
    ("boolop-bind-not-definite", "ok = a and (b := 2)\nprint(b)", {"reads": S("a", "b")}),
    ("match", "match cmd:\n    case Point(x=px, y=0) | {**rest} if px:\n        pass",
     {"reads": S("cmd", "Point"), "binds": S("px", "rest")}),
    # -- mutation ----------------------------------------------------------------
    ("method-call-mutates", "x.append(1)", {"mutates": S("x"), "reads": S("x"), "binds": S()}),
    ("inplace-method", "df.drop(columns=['a'], inplace=True)", {"mutates": S("df"), "reads": S("df")}),
    ("fit-mutates", "model.fit(X, y)", {"mutates": S("model"), "reads": S("model", "X", "y")}),
    ("chained-method", "df.a.b.c()", {"mutates": S("df"), "reads": S("df")}),
    ("subscript-chain-method", "df['a'].fillna(0, inplace=True)", {"mutates": S("df")}),
    ("await-method", "await client.close()", {"mutates": S("client")}),
    ("used-method-result-is-read", "y = x.copy()", {"mutates": S(), "reads": S("x"), "binds": S("y")}),
    ("call-on-call-result", "load().run()", {"mutates": S(), "reads": S("load")}),
    ("function-call-not-mutation", "print(x)", {"mutates": S(), "reads": S("x")}),
    ("subscript-assign", "x[k] = v", {"mutates": S("x"), "reads": S("x", "k", "v"), "binds": S()}),
    ("attribute-assign", "x.a = v", {"mutates": S("x"), "reads": S("x", "v"), "binds": S()}),
    ("nested-target", "x.a[0].b = 1", {"mutates": S("x")}),
    ("subscript-aug-assign", "x[k] += 1", {"mutates": S("x"), "reads": S("x", "k"), "binds": S()}),
    ("attribute-aug-assign", "x.a += 1", {"mutates": S("x"), "reads": S("x"), "binds": S()}),
    ("del-subscript", "del x[k]", {"mutates": S("x"), "binds": S()}),
    ("del-attribute", "del x.a", {"mutates": S("x"), "binds": S()}),
    ("mutation-after-bind-not-read", "x = []\nx.append(1)", {"mutates": S("x"), "reads": S(), "binds": S("x")}),
    ("mutation-in-function-body", "def log(v):\n    results.append(v)",
     {"mutates": S("results"), "reads": S("results")}),
    ("mutation-of-parameter-ignored", "def f(xs):\n    xs.append(1)", {"mutates": S(), "reads": S()}),
    # -- scopes ----------------------------------------------------------------------
    ("comprehension-var-does-not-leak", "ys = [x * k for x in xs]", {"reads": S("xs", "k"), "binds": S("ys")}),
    ("nested-comprehension", "[a + b for a in xs for b in a if b > lim]", {"reads": S("xs", "lim")}),
    ("dict-comprehension", "d = {k: v for k, v in pairs}", {"reads": S("pairs"), "binds": S("d")}),
    ("generator-expression", "total = sum(v for v in vals)", {"reads": S("vals")}),
    ("function-free-variable", "def f(a):\n    return a * scale", {"reads": S("scale"), "binds": S("f")}),
    ("function-local-not-read", "def f():\n    t = 1\n    return t", {"reads": S()}),
    ("function-parameters-not-read", "def f(a, /, b, *c, d, **e):\n    return a, b, c, d, e", {"reads": S()}),
    ("nested-function-free", "def outer():\n    loc = 1\n    def inner():\n        return loc + glob\n    return inner",
     {"reads": S("glob")}),
    ("nonlocal", "def outer():\n    n = 0\n    def inner():\n        nonlocal n\n        n += 1\n    return inner",
     {"reads": S(), "binds": S("outer")}),
    ("recursion-not-read", "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)", {"reads": S()}),
    ("decorator-default-annotation", "@cache(size)\ndef f(a: T = dflt) -> R:\n    pass",
     {"reads": S("cache", "size", "T", "dflt", "R")}),
    ("local-annotation-not-read", "def f():\n    v: Hidden = 1\n    return v", {"reads": S()}),
    ("lambda", "f = lambda a, b=dflt: a + free", {"reads": S("dflt", "free"), "binds": S("f")}),
    ("class-body", "class A(Base, metaclass=Meta):\n    size = default\n    twice = size * 2",
     {"reads": S("Base", "Meta", "default"), "binds": S("A")}),
    ("method-free-variable", "class A:\n    k = 1\n    def m(self):\n        return k + A",
     {"reads": S("k")}),
    ("class-scope-skipped-by-comprehension", "class A:\n    n = 2\n    ys = [n for _ in rng]",
     {"reads": S("rng", "n")}),
    ("builtins-ignored", "print(len(range(3)), open, sorted, __name__, display, get_ipython)", {"reads": S()}),
    # -- IPython ----------------------------------------------------------------------
    ("line-magic-time", "%time y = f(x)", {"reads": S("f", "x"), "binds": S("y"), "understood": True}),
    ("cell-magic-time", "%%time\ny = f(x)\nmodel.fit(y)",  # f is not known: it may change x
     {"reads": S("f", "x", "model"), "binds": S("y"), "mutates": S("model", "x")}),
    ("timeit-does-not-bind", "%timeit -n 10 z = g(w)", {"reads": S("g", "w"), "binds": S()}),
    ("capture-binds-output", "%%capture out\nr = run()", {"binds": S("out", "r"), "reads": S("run")}),
    ("shell", "!ls", {"reads": S(), "binds": S(), "understood": True}),
    ("shell-assign", "files = !ls", {"binds": S("files"), "reads": S()}),
    ("shell-expands-variables", "!cp $src {dst}", {"reads": S("src", "dst")}),
    ("help", "x?", {"reads": S(), "binds": S(), "understood": True, "warnings": ()}),
    ("magic-then-code", "%matplotlib inline\nimport numpy as np", {"imports": S("np")}),
    ("non-python-cell-magic", "%%bash\necho $HOME > x", {"reads": S(), "understood": True}),
    ("unknown-cell-magic", "%%cython\ndef f(): pass", {"understood": False,
     "warnings": ("cell magic %%cython runs code that cannot be followed",)}),
    ("run-magic", "%run other.py", {"understood": False,
     "warnings": ("runs another file with %run; names it brings cannot be followed",)}),
    ("writefile", "%%writefile helper.py\nprint(1)", {"files_written": ("helper.py",)}),
    ("modulo-is-python", "r = 5 % n", {"reads": S("n"), "binds": S("r")}),
    # -- things that cannot be followed --------------------------------------------------
    ("syntax-error", "x = 1\n\ny = (", {
        "understood": False, "reads": S(), "binds": S(), "only_imports_and_definitions": False,
        "warnings": ("syntax error at line 3: '(' was never closed; the cell's variables cannot be followed",),
    }),
    ("syntax-error-invalid", "a b", {
        "understood": False,
        "warnings": ("syntax error at line 1: invalid syntax; the cell's variables cannot be followed",),
    }),
    ("exec", "exec(code)", {"understood": False, "reads": S("code"),
                            "warnings": ("uses exec(); variables it touches cannot be followed",)}),
    ("eval", "v = eval('1')", {"understood": False, "warnings": ("uses eval(); variables it touches cannot be followed",)}),
    ("globals", "globals()['x'] = 1", {"understood": False}),
    ("locals", "print(locals())", {"understood": False}),
    ("vars-without-args", "vars()", {"understood": False}),
    ("vars-with-args-is-fine", "vars(obj)", {"understood": True, "reads": S("obj")}),
    ("star-import", "from numpy import *", {
        "understood": False, "only_imports_and_definitions": True,
        "warnings": ("star import from numpy; names it brings cannot be followed",),
    }),
    # -- setup cells -------------------------------------------------------------------
    ("setup-imports-defs", '"""Setup."""\nimport os\nfrom a import b\n\ndef f():\n    pass\n\nclass C:\n    pass\npass',
     {"only_imports_and_definitions": True}),
    ("setup-with-magic-and-shell", "%load_ext autoreload\n!pip install x\nimport os",
     {"only_imports_and_definitions": True}),
    ("empty-cell", "", {"only_imports_and_definitions": True, "reads": S(), "understood": True}),
    ("not-setup-assignment", "import os\nDATA = 'x'", {"only_imports_and_definitions": False}),
    ("not-setup-call", "import numpy as np\nnp.random.seed(0)", {"only_imports_and_definitions": False}),
    ("not-setup-timed-code", "%%time\nmodel = train()", {"only_imports_and_definitions": False}),
    ("setup-timed-import", "%%time\nimport os", {"only_imports_and_definitions": True}),
    # -- files read ---------------------------------------------------------------------
    ("open-default", "f = open('a.txt')", {"files_read": ("a.txt",), "files_written": ()}),
    ("open-r", "f = open('a.txt', 'r')", {"files_read": ("a.txt",)}),
    ("open-rb", "f = open('a.bin', mode='rb')", {"files_read": ("a.bin",)}),
    ("open-w", "f = open('o.txt', 'w')", {"files_written": ("o.txt",), "files_read": ()}),
    ("open-a", "f = open('o.txt', 'a')", {"files_written": ("o.txt",)}),
    ("open-x", "f = open('o.txt', mode='x')", {"files_written": ("o.txt",)}),
    ("open-plus", "f = open('o.txt', 'r+')", {"files_written": ("o.txt",)}),
    ("open-dynamic-mode-ignored", "f = open('o.txt', mode)", {"files_read": (), "files_written": ()}),
    ("read-csv", "df = pd.read_csv('./data/in.csv', sep=';')", {"files_read": ("data/in.csv",)}),
    ("read-parquet", "df = pd.read_parquet('a.parquet')", {"files_read": ("a.parquet",)}),
    ("read-json", "df = pd.read_json('a.json')", {"files_read": ("a.json",)}),
    ("read-excel", "df = pd.read_excel('a.xlsx')", {"files_read": ("a.xlsx",)}),
    ("read-pickle", "df = pd.read_pickle('a.pkl')", {"files_read": ("a.pkl",)}),
    ("read-feather", "df = pd.read_feather('a.feather')", {"files_read": ("a.feather",)}),
    ("read-table", "df = pd.read_table('a.tsv')", {"files_read": ("a.tsv",)}),
    ("read-hdf", "df = pd.read_hdf('a.h5', 'k')", {"files_read": ("a.h5",)}),
    ("read-keyword-path", "df = pd.read_csv(filepath_or_buffer='k.csv')", {"files_read": ("k.csv",)}),
    ("read-sql-is-a-query", "df = pd.read_sql('SELECT 1', con)", {"files_read": ()}),
    ("read-variable-path-ignored", "df = pd.read_csv(path)", {"files_read": ()}),
    ("read-url-ignored", "df = pd.read_csv('https://x.org/a.csv')", {"files_read": ()}),
    ("fstring-without-placeholders", "df = pd.read_csv(f'a.csv')", {"files_read": ("a.csv",)}),
    ("fstring-with-placeholder-ignored", "df = pd.read_csv(f'{d}/a.csv')", {"files_read": ()}),
    ("pathlib-path", "df = pd.read_csv(Path('data') / 'a.csv')", {"files_read": ("data/a.csv",)}),
    ("pathlib-dotted", "df = pd.read_csv(pathlib.Path('a.csv'))", {"files_read": ("a.csv",)}),
    ("os-path-join", "df = pd.read_csv(os.path.join('data', 'a.csv'))", {"files_read": ("data/a.csv",)}),
    ("np-load", "a = np.load('a.npy')", {"files_read": ("a.npy",)}),
    ("np-loadtxt", "a = np.loadtxt('a.txt')", {"files_read": ("a.txt",)}),
    ("np-genfromtxt", "a = np.genfromtxt('a.csv', delimiter=',')", {"files_read": ("a.csv",)}),
    ("joblib-load", "m = joblib.load('m.joblib')", {"files_read": ("m.joblib",)}),
    ("torch-load", "w = torch.load('w.pt')", {"files_read": ("w.pt",)}),
    ("pickle-load-open", "m = pickle.load(open('m.pkl', 'rb'))", {"files_read": ("m.pkl",)}),
    ("yaml-safe-load-open", "cfg = yaml.safe_load(open('c.yaml'))", {"files_read": ("c.yaml",)}),
    ("yaml-load-string-ignored", "cfg = yaml.load('a: 1', Loader=L)", {"files_read": ()}),
    ("path-read-text", "t = Path('a.txt').read_text()", {"files_read": ("a.txt",)}),
    ("path-read-bytes", "b = Path('a.bin').read_bytes()", {"files_read": ("a.bin",)}),
    ("path-open", "f = Path('a.txt').open()", {"files_read": ("a.txt",)}),
    ("path-open-w", "f = Path('a.txt').open('w')", {"files_written": ("a.txt",)}),
    ("read-text-encoding-not-a-path", "t = p.read_text('utf-8')", {"files_read": ()}),
    # -- files written --------------------------------------------------------------------
    ("to-csv", "df.to_csv('out.csv', index=False)", {"files_written": ("out.csv",), "files_read": ()}),
    ("to-parquet", "df.to_parquet('o.parquet')", {"files_written": ("o.parquet",)}),
    ("to-json", "df.to_json('o.json')", {"files_written": ("o.json",)}),
    ("to-pickle", "df.to_pickle('o.pkl')", {"files_written": ("o.pkl",)}),
    ("to-excel", "df.to_excel('o.xlsx')", {"files_written": ("o.xlsx",)}),
    ("to-feather", "df.to_feather('o.feather')", {"files_written": ("o.feather",)}),
    ("to-hdf", "df.to_hdf('o.h5', key='k')", {"files_written": ("o.h5",)}),
    ("to-dict-is-not-a-file", "d = df.to_dict('records')", {"files_written": ()}),
    ("to-datetime-is-not-a-file", "t = pd.to_datetime('2020-01-01')", {"files_written": ()}),
    ("np-save", "np.save('a.npy', arr)", {"files_written": ("a.npy",)}),
    ("np-savez", "np.savez('a.npz', a=arr)", {"files_written": ("a.npz",)}),
    ("np-savez-compressed", "np.savez_compressed('a.npz', a=arr)", {"files_written": ("a.npz",)}),
    ("np-savetxt", "np.savetxt('a.txt', arr)", {"files_written": ("a.txt",)}),
    ("joblib-dump", "joblib.dump(model, 'm.joblib')", {"files_written": ("m.joblib",)}),
    ("torch-save", "torch.save(net.state_dict(), 'w.pt')", {"files_written": ("w.pt",)}),
    ("path-write-text", "Path('o.txt').write_text(report)", {"files_written": ("o.txt",)}),
    ("path-write-bytes", "Path('o.bin').write_bytes(blob)", {"files_written": ("o.bin",)}),
    ("plt-savefig", "plt.savefig('fig.png', dpi=100)", {"files_written": ("fig.png",)}),
    ("fig-savefig", "fig.savefig('fig.svg')", {"files_written": ("fig.svg",)}),
    ("json-dump-open", "json.dump(d, open('d.json', 'w'))", {"files_written": ("d.json",), "files_read": ()}),
    ("files-in-source-order-deduplicated",
     "a = pd.read_csv('1.csv')\nb = pd.read_csv('2.csv').to_csv('3.csv')\nc = pd.read_csv('1.csv')",
     {"files_read": ("1.csv", "2.csv"), "files_written": ("3.csv",)}),
    ("read-and-write-same-file", "with open('log.txt', 'a') as f:\n    pass\nt = Path('log.txt').read_text()",
     {"files_read": ("log.txt",), "files_written": ("log.txt",)}),
    ("file-inside-function", "def load():\n    return pd.read_csv('lazy.csv')", {"files_read": ("lazy.csv",)}),
    ("file-inside-magic", "%%time\ndf = pd.read_csv('t.csv')", {"files_read": ("t.csv",), "binds": S("df")}),
]


@pytest.mark.parametrize(
    ("source", "expected"), [case[1:] for case in CELL_CASES], ids=[case[0] for case in CELL_CASES]
)
def test_analyze_cell(source, expected):
    facts = analyze_cell(source)
    actual = {field: getattr(facts, field) for field in expected}
    assert actual == expected


def test_imports_and_definitions_are_subsets_of_binds():
    facts = analyze_cell("import os\nfrom a import b as c\ndef f(): pass\nclass K: pass\nx = 1")
    assert facts.imports == S("os", "c")
    assert facts.definitions == S("f", "K")
    assert facts.binds == S("os", "c", "f", "K", "x")


def test_definition_reads_and_changes():
    facts = analyze_cell(
        "limit = 3\n"
        "def keep(v):\n"
        "    results.append(v)\n"
        "    return np.clip(v, 0, limit)\n"
        "class Box(Base):\n"
        "    def m(self):\n"
        "        return helper(self)\n"
    )
    assert dict(facts.definition_reads) == {
        "keep": S("results", "np", "limit"),
        "Box": S("Base", "helper"),
    }
    assert dict(facts.definition_changes) == {"keep": S("results")}
    assert "limit" not in facts.reads  # bound earlier in the cell


@pytest.mark.parametrize(
    "source",
    ["", "\n\n", "\x00", "def", "(" * 300, "%%", "%%time\n)(", "x = !", "/", ", a", "?", "In [1]: x",
     "\t\tx = 1\n y", "'''", "\ufeffx = 1", "x = 1" * 0 + "1+" * 5000 + "1", "lambda: (yield)"],
)
def test_never_raises(source):
    facts = analyze_cell(source)
    assert isinstance(facts, CellFacts)
    assert isinstance(transform_ipython(source), str)


def test_non_string_sources_do_not_raise():
    assert analyze_cell(["x = 1\n", "y = x\n"]).binds == S("x", "y")
    assert analyze_cell(None).understood


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("%time y = f(x)", "get_ipython().run_line_magic('time', 'y = f(x)')\n"),
        ("%%time\ny = 1\n", "get_ipython().run_cell_magic('time', '', 'y = 1\\n')\n"),
        ("!ls", "get_ipython().system('ls')\n"),
        ("files = !ls", "files = get_ipython().getoutput('ls')\n"),
        ("x?", "get_ipython().run_line_magic('pinfo', 'x')\n"),
        ("/f x", "f(x)\n"),
        (">>> x = 1", "x = 1\n"),
        ("  x = 1\n  y = 2\n", "x = 1\ny = 2\n"),
        ("x = 1 if a != b else 2\n", "x = 1 if a != b else 2\n"),
    ],
    ids=["line-magic", "cell-magic", "shell", "shell-assign", "help", "autocall", "prompt", "indented", "plain"],
)
def test_transform_ipython(source, expected):
    assert transform_ipython(source) == expected


def test_escapes_without_percent_bang_or_question_mark_are_still_transformed():
    # The fast path must not skip IPython's other escapes and pasted prompts.
    assert analyze_cell(",show a b").reads == S("show")
    assert analyze_cell(">>> y = f(x)").reads == S("f", "x")
    assert analyze_cell("    y = f(x)\n    z = y").binds == S("y", "z")


# ---------------------------------------------------------------------------
# Flow between stages
# ---------------------------------------------------------------------------


def stages_of(*stages: tuple[str, list[str]]) -> list[tuple[str, list[CellFacts]]]:
    return [(name, [analyze_cell(source) for source in sources]) for name, sources in stages]


def flow_table(flows: tuple[StageFlow, ...]) -> dict[str, tuple[dict[str, str], list[str]]]:
    return {flow.stage: (dict(flow.inputs), list(flow.outputs)) for flow in flows}


FLOW_CASES = [
    (
        "straight-chain",
        [("a", ["raw = load()"]), ("b", ["clean = tidy(raw)"]), ("c", ["report(clean)"])],
        (),
        {"a": ({}, ["raw"]), "b": ({"raw": "a"}, ["clean"]), "c": ({"clean": "b"}, [])},
    ),
    (
        "read-skipping-a-stage",
        [("a", ["raw = load()"]), ("b", ["other = 1"]), ("c", ["report(raw, other)"])],
        (),
        {"a": ({}, ["raw"]), "b": ({}, ["other"]), "c": ({"raw": "a", "other": "b"}, [])},
    ),
    (
        "redefinition-later-provider-wins",
        [("a", ["df = load()"]), ("b", ["df = df.dropna()"]), ("c", ["show(df)"])],
        (),
        {"a": ({}, ["df"]), "b": ({"df": "a"}, ["df"]), "c": ({"df": "b"}, [])},
    ),
    (
        "mutation-in-middle-stage",
        [("a", ["items = []"]), ("b", ["items.append(1)"]), ("c", ["print(items)"])],
        (),
        {"a": ({}, ["items"]), "b": ({"items": "a"}, ["items"]), "c": ({"items": "b"}, [])},
    ),
    (
        "augmented-assignment-across-stages",
        [("a", ["n = 0"]), ("b", ["n += 1"]), ("c", ["print(n)"])],
        (),
        {"a": ({}, ["n"]), "b": ({"n": "a"}, ["n"]), "c": ({"n": "b"}, [])},
    ),
    (
        "bound-earlier-in-same-stage-is-not-input",
        [("a", ["x = 1"]), ("b", ["x = 2", "print(x)"]), ("c", ["print(x)"])],
        (),
        {"a": ({}, []), "b": ({}, ["x"]), "c": ({"x": "b"}, [])},
    ),
    (
        "read-before-rebind-in-stage-is-input",
        [("a", ["x = 1"]), ("b", ["print(x)", "x = 2"])],
        (),
        {"a": ({}, ["x"]), "b": ({"x": "a"}, [])},
    ),
    (
        "function-reads-global-of-its-stage",
        [("a", ["threshold = 0.5", "def keep(v):\n    return v > threshold"]),
         ("b", ["data = [1, 2]"]),
         ("c", ["kept = [v for v in data if keep(v)]"])],
        (),
        {"a": ({}, ["threshold"]), "b": ({}, ["data"]), "c": ({"data": "b", "threshold": "a"}, [])},
    ),
    (
        "function-mutating-a-global-makes-caller-provider",
        [("a", ["log = []", "def note(v):\n    log.append(v)"]), ("b", ["note(1)"]), ("c", ["print(log)"])],
        (),
        {"a": ({}, ["log"]), "b": ({"log": "a"}, ["log"]), "c": ({"log": "b"}, [])},
    ),
    (
        "imports-are-not-marshalled",
        [("a", ["import numpy as np"]), ("b", ["x = 1"]), ("c", ["y = 2"]), ("d", ["z = np.zeros(x)"])],
        (),
        {"a": ({}, []), "b": ({}, ["x"]), "c": ({}, []), "d": ({"x": "b"}, [])},
    ),
    (
        "excluded-names",
        [("a", ["lr = 0.1", "data = load()"]), ("b", ["model = fit(data, lr)"]), ("c", ["lr += 1"])],
        ("lr",),
        {"a": ({}, ["data"]), "b": ({"data": "a"}, []), "c": ({}, [])},
    ),
    (
        "mutating-an-import-keeps-it-a-definition",
        [("a", ["import matplotlib.pyplot as plt"]), ("b", ["plt.plot(x)"]), ("c", ["plt.show()"])],
        (),
        {"a": ({}, []), "b": ({}, []), "c": ({}, [])},
    ),
]


@pytest.mark.parametrize(
    ("stages", "exclude", "expected"), [case[1:] for case in FLOW_CASES], ids=[case[0] for case in FLOW_CASES]
)
def test_infer_flow(stages, exclude, expected):
    flows = infer_flow(stages_of(*stages), exclude=exclude)
    assert [flow.stage for flow in flows] == [name for name, _ in stages]
    assert flow_table(flows) == expected


def test_flow_inputs_and_outputs_are_sorted():
    flows = infer_flow(stages_of(("a", ["b = 1\na = 2\nc = 3"]), ("b", ["print(c, a, b)"])))
    assert flows[0].outputs == ("a", "b", "c")
    assert flows[1].inputs == (("a", "a"), ("b", "a"), ("c", "a"))


NEEDED_CASES = [
    (
        "import-alias-used-three-stages-later",
        [("a", ["import numpy as np"]), ("b", ["x = 1"]), ("c", ["y = 2"]), ("d", ["z = np.zeros(x)"])],
        (),
        {"a": (), "b": (), "c": (), "d": (("np", "a"),)},
    ),
    (
        "function-pulls-in-what-it-uses",
        [("a", ["import numpy as np", "def helper(v):\n    return np.sqrt(v)"]),
         ("b", ["def score(v):\n    return helper(v) + 1"]),
         ("c", ["s = score(4)"])],
        (),
        {"a": (), "b": (("helper", "a"), ("np", "a")), "c": (("helper", "a"), ("np", "a"), ("score", "b"))},
    ),
    (
        "nearest-definition-wins",
        [("a", ["def f():\n    return 1"]), ("b", ["def f():\n    return 2"]), ("c", ["f()"])],
        (),
        {"a": (), "b": (), "c": (("f", "b"),)},
    ),
    (
        "class-from-earlier-stage",
        [("a", ["from sklearn.base import BaseEstimator", "class M(BaseEstimator):\n    pass"]),
         ("b", ["m = M()"])],
        (),
        {"a": (), "b": (("BaseEstimator", "a"), ("M", "a"))},
    ),
    (
        "excluded-definitions",
        [("a", ["import pandas as pd"]), ("b", ["df = pd.DataFrame()"])],
        ("pd",),
        {"a": (), "b": ()},
    ),
]


@pytest.mark.parametrize(
    ("stages", "exclude", "expected"), [case[1:] for case in NEEDED_CASES], ids=[case[0] for case in NEEDED_CASES]
)
def test_needed_definitions(stages, exclude, expected):
    assert needed_definitions(stages_of(*stages), exclude=exclude) == expected
