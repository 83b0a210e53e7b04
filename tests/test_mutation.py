"""Changes made through calls and through aliases reach the stages after them (issue 12, items 2 and 7).

Each case is a small notebook cut into tagged stages; `nb2pipe explain --json` must say which stage
a later stage takes each variable from (the stage that last changed it, however it was changed),
and which stages save nothing because nothing they did could change a value. Real runs of such
notebooks are the trap notebooks under tests/traps/mutation and tests/traps/aliases.
"""

from __future__ import annotations

import json

import pytest

from conftest import code, write_nb
from nb2pipe.infer import analyze_cell, analyze_cells

SETUP = "import copy\nimport heapq\nimport json\nimport pickle\nimport random\n\nimport numpy as np\nimport pandas as pd"


def explain(tmp_path, cli, stages: list[tuple[str, list[str]]], setup: str = SETUP) -> dict[str, dict]:
    cells = [code(setup)]
    for name, sources in stages:
        cells.append(code(sources[0], f"stage:{name}"))
        cells.extend(code(source) for source in sources[1:])
    notebook = write_nb(tmp_path / "nb.ipynb", *cells)
    status, out, err = cli("explain", notebook, "--json")
    assert status == 0, err
    return {stage["name"]: stage for stage in json.loads(out)["stages"]}


def loads_of(stage: dict) -> dict[str, str]:
    return {var["name"]: var["from"] for var in stage["loads"]}


def saves_of(stage: dict) -> list[str]:
    return [var["name"] for var in stage["saves"]]


# (id, the middle stage's cells, the variable the last stage prints): the last stage must take the
# variable from the middle stage, which changed it.
CHANGED_THROUGH_A_CALL = [
    ("own-function-removes", ["def drop_missing(rows):\n    while None in rows:\n        rows.remove(None)", "drop_missing(v)"]),
    ("own-function-sets-a-column", ["def tag(frame, limit=10):\n    frame['big'] = frame['x'] > limit", "tag(v, limit=1)"]),
    ("own-function-by-keyword", ["def tag(frame, limit=10):\n    frame['big'] = frame['x'] > limit", "tag(limit=2, frame=v)"]),
    ("own-function-keyword-only", ["def tag(*, frame):\n    frame.clear()", "tag(frame=v)"]),
    ("own-function-star-args", ["def clear_all(*frames):\n    for f in frames:\n        f.clear()", "clear_all(w, v)"]),
    ("own-function-calls-a-changer", ["def scale(a, k):\n    a *= k\n\ndef norm(a):\n    scale(a, 1 / a.sum())", "norm(v)"]),
    ("own-function-changes-a-view", ["def zero_first(a):\n    head = a[:1]\n    head[:] = 0", "zero_first(v)"]),
    ("unknown-function", ["v_before = len(v)", "undeclared_helper(v)"]),
    ("unknown-module-function", ["import mytools", "mytools.clean(v)"]),
    ("own-method-named-like-a-known-one",
     ["class Inventory:\n    def update(self, stock, item):\n        stock[item] = 1", "inv = Inventory()\ninv.update(v, 'a')"]),
    ("own-method-by-keyword", ["class Box:\n    def fill(self, *, into):\n        into.append(1)", "Box().fill(into=v)"]),
    ("own-static-method", ["class Tools:\n    @staticmethod\n    def wipe(d):\n        d.clear()", "Tools.wipe(v)"]),
    ("own-method-changes-its-object", ["class Counter:\n    def bump(self):\n        self.n += 1\n        return self.n", "n = v.bump()"]),
    ("unknown-method", ["cleaner = make_cleaner()", "cleaner.run(v)"]),
    ("argument-is-a-part", ["def clear(d):\n    d.clear()", "clear(v['k'])"]),
    ("random-shuffle", ["random.shuffle(v)"]),
    ("random-shuffle-imported", ["from random import shuffle", "shuffle(v)"]),
    ("numpy-shuffle", ["np.random.shuffle(v)"]),
    ("generator-shuffle", ["rng = np.random.default_rng(0)\nrng.shuffle(v)"]),
    ("generator-shuffle-chained", ["np.random.default_rng(0).shuffle(v)"]),
    ("heappush", ["heapq.heappush(v, 3)"]),
    ("heappop-result-used", ["first = heapq.heappop(v)"]),
    ("heapify", ["heapq.heapify(v)"]),
    ("copyto", ["np.copyto(v, np.zeros(3))"]),
    ("fill-diagonal", ["np.fill_diagonal(v, 0)"]),
    ("put", ["np.put(v, [0], [5])"]),
    ("ufunc-at", ["np.add.at(v, [0, 0], 1)"]),
    ("out-keyword", ["np.clip(w, 0, 1, out=v)"]),
    ("inplace-result-used", ["result = v.drop(columns=['x'], inplace=True)"]),
    ("pop-result-used", ["column = v.pop('x')"]),
    ("setdefault-result-used", ["bucket = v.setdefault('k', [])"]),
    ("next-moves-an-iterator", ["first = next(v)"]),
    ("generator-draw-moves-its-state", ["draw = v.normal(size=3)"]),
    ("torch-in-place-function", ["import torch", "torch.nn.init.normal_(v)"]),
    ("torch-in-place-method-result-used", ["w2 = v.add_(1)"]),
    ("json-dump-into-an-open-file", ["json.dump({'a': 1}, v)"]),
    ("pickle-dump-into-an-open-file", ["pickle.dump([1], v)"]),
]

# Aliases and views: a name sharing an object with `v`, written through in the middle stage.
CHANGED_THROUGH_AN_ALIAS = [
    ("reshape-view", ["g2 = v.reshape(2, 3)\ng2[0, 0] = 99"]),
    ("column-of-a-frame", ["s = v['x']\ns[0] = 1"]),
    ("slice-augmented", ["tail = v[1:]\ntail += 1"]),
    ("row-of-rows", ["row = v[0]\nrow.append(1)"]),
    ("plain-alias", ["b = v\nb.append(4)"]),
    ("alias-of-an-alias", ["b = v\nc = b\nc.append(4)"]),
    ("loop-over-elements", ["for record in v:\n    record['seen'] = True"]),
    ("comprehension-over-elements", ["_ = [row.append(0) for row in v]"]),
    ("loop-over-a-list-of-them", ["for m in [w, v]:\n    m.append(1)"]),
    ("kept-in-a-list", ["pair = [w, v]\npair[1].append(1)"]),
    ("kept-in-a-dict", ["groups = {'a': v}\ngroups['a'].append(1)"]),
    ("loop-over-items", ["for key, value in v.items():\n    value.append(key)"]),
    ("loop-over-enumerate", ["for i, row in enumerate(v):\n    row.append(i)"]),
    ("walrus", ["if (part := v[1:]) is not None:\n    part[0] = 0"]),
    ("tuple-assignment", ["first, second = v[0], v[1]\nfirst.append(0)"]),
    ("attribute-view", ["flat = v.T\nflat[0] = 1"]),
    ("numpy-view-function", ["flat = np.ravel(v)\nflat[0] = 1"]),
    ("alias-set-in-an-earlier-cell", ["cfg = v['model']", "cfg['depth'] = 5"]),
    ("alias-passed-to-a-changer", ["part = v[1:]\nrandom.shuffle(part)"]),
    ("alias-in-a-function", ["def touch(frame):\n    col = frame['x']\n    col[0] = 1", "touch(v)"]),
    ("returned-by-own-function", ["def first(t):\n    return t[0]", "top = first(v)\ntop.append(1)"]),
    ("returned-through-a-local-alias", ["def tail(t):\n    rest = t[1:]\n    return rest", "r = tail(v)\nr += 1"]),
    ("returned-by-keyword", ["def pick(*, t):\n    return t", "p = pick(t=v)\np.clear()"]),
]


@pytest.mark.parametrize(
    "middle", [c[1] for c in CHANGED_THROUGH_A_CALL + CHANGED_THROUGH_AN_ALIAS],
    ids=[c[0] for c in CHANGED_THROUGH_A_CALL + CHANGED_THROUGH_AN_ALIAS],
)
def test_a_value_changed_in_place_is_handed_on_by_the_stage_that_changed_it(tmp_path, cli, middle):
    stages = explain(tmp_path, cli, [("make", ["v = build()\nw = build()"]), ("change", middle), ("use", ["print(v)"])])
    assert loads_of(stages["use"])["v"] == "change"
    assert "v" in saves_of(stages["change"])
    assert loads_of(stages["change"])["v"] == "make"  # it changes what it was given


# (id, the middle stage's cells): nothing there can change `v`, so the last stage takes `v` from the
# first stage and the middle one saves nothing.
CHANGES_NOTHING = [
    ("builtins", ["print(len(v), sum(v), str(v), sorted(v), max(v))"]),
    ("numpy-and-pandas-functions", ["m = np.mean(v)\nboth = pd.concat([v, v])\ns = np.sum(v, axis=0)"]),
    ("head-displayed", ["v.head()"]),
    ("describe-displayed", ["v.describe()"]),
    ("dot-discarded", ["v.dot(w)"]),
    ("methods-with-results", ["top = v.head(3)\nsummary = v.describe()\nd = w.dot(v)"]),
    ("fit-leaves-its-data", ["model = make_model()\nmodel.fit(v, w)\nprint(model.score(v, w))"]),
    ("logging", ["import logging\nlogging.info('rows: %s', v)\nlog = logging.getLogger('nb')\nlog.info(v)"]),
    ("keras-style-evaluate", ["model = make_model()\nloss = model.evaluate(v, w)\nmodel.summary()"]),
    ("plotly", ["import plotly.graph_objects as go\nfig = go.Figure(go.Scatter(x=v, y=w))"]),
    ("plots", ["import matplotlib.pyplot as plt\nplt.plot(v)\nplt.hist(v)"]),
    ("own-function-that-only-reads", ["def report(frame):\n    print(frame.head())\n    return len(frame)", "n = report(v)"]),
    ("copy-method-breaks-the-alias", ["c = v.copy()\nc[0] = 1"]),
    ("np-array-breaks-the-alias", ["c = np.array(v)\nc[0] = 1"]),
    ("list-breaks-the-alias", ["c = list(v)\nc.append(1)"]),
    ("deepcopy-breaks-the-alias", ["c = copy.deepcopy(v)\nc[0].append(1)"]),
    ("reduction-is-new", ["total = v.sum()\ntotal += 1"]),
    ("rebinding-ends-the-alias", ["b = v\nb = [1]\nb.append(2)"]),
    ("shuffle-of-a-copy", ["c = list(v)\nrandom.shuffle(c)"]),
    ("own-method-that-only-reads", ["class Report:\n    def show(self, rows):\n        print(len(rows))", "Report().show(v)"]),
    ("own-function-returns-a-copy", ["def fresh(t):\n    return list(t)", "c = fresh(v)\nc.append(1)"]),
    ("own-function-returns-another-argument", ["def second(a, b):\n    return b", "c = second(v, w)\nc.append(1)"]),
    ("what-describes-it", ["model = make_model(units=v.shape[1], kind=v.dtype)"]),
    ("an-iterator-over-it", ["it = iter(v)\nfirst = next(it)\nsecond = it.__next__()"]),
]


@pytest.mark.parametrize("middle", [c[1] for c in CHANGES_NOTHING], ids=[c[0] for c in CHANGES_NOTHING])
def test_calls_known_to_change_nothing_cause_no_save(tmp_path, cli, middle):
    stages = explain(tmp_path, cli, [("make", ["v = build()\nw = build()"]), ("look", middle), ("use", ["print(v)"])])
    assert loads_of(stages["use"])["v"] == "make"
    assert "v" not in saves_of(stages["look"])


def test_a_function_defined_in_an_earlier_stage_is_known_in_a_later_one(tmp_path, cli):
    stages = explain(
        tmp_path, cli,
        [("make", ["v = [1, None]", "def drop_missing(rows):\n    rows.remove(None)"]),
         ("clean", ["drop_missing(v)"]),
         ("use", ["print(v)"])],
    )
    assert loads_of(stages["use"])["v"] == "clean"


def test_a_function_that_changes_nothing_stays_cheap_across_stages(tmp_path, cli):
    stages = explain(
        tmp_path, cli,
        [("make", ["v = [1, 2]", "def show(rows):\n    print(len(rows))"]), ("look", ["show(v)"]), ("use", ["print(v)"])],
    )
    assert loads_of(stages["use"])["v"] == "make"
    assert saves_of(stages["look"]) == []


def test_a_name_rebound_to_a_value_is_no_longer_the_function(tmp_path, cli):
    stages = explain(
        tmp_path, cli,
        [("make", ["v = [1, 2]", "def show(rows):\n    print(len(rows))"]),
         ("swap", ["show = pick_a_printer()"]),
         ("look", ["show(v)"]),
         ("use", ["print(v)"])],
    )
    assert loads_of(stages["use"])["v"] == "look"  # whatever `show` is now may change v


def test_an_alias_does_not_outlive_its_stage():
    """Each stage loads its own copies, so a name aliased in one stage is not the other's object."""
    (_, first, second) = analyze_cells([[], ["g2 = g.reshape(2, 3)"], ["g2[0, 0] = 1"]])
    assert first[0].aliases == (("g2", frozenset({"g"})),)
    assert second[0].mutates == frozenset({"g2"})


def test_the_same_cell_alone_assumes_the_worst_of_an_unknown_callee():
    assert analyze_cell("clean(rows)").mutates == frozenset({"rows"})
    ((_, facts),) = analyze_cells([["def clean(rows):\n    return sorted(rows)", "clean(rows)"]])
    assert facts.mutates == frozenset()


@pytest.mark.parametrize(
    ("middle", "how"),
    [
        (["def drop_missing(rows):\n    rows.remove(None)", "drop_missing(v)"], "passed to drop_missing(), which changes it"),
        (["random.shuffle(v)"], "passed to random.shuffle(), which changes it"),
        (["helper(v)"], "passed to helper(), which nb2pipe does not know: it may change it"),
        (["g2 = v.reshape(2, 3)\ng2[0, 0] = 99"], "changed through g2, which shares its object"),
        (["first = v.pop()"], "v.pop() changes it"),
        (["np.clip(w, 0, 1, out=v)"], "given as out= to np.clip()"),
    ],
    ids=["own-function", "library", "unknown", "alias", "method", "out"],
)
def test_explain_says_how_a_stage_changes_what_it_was_given(tmp_path, cli, middle, how):
    stages = explain(tmp_path, cli, [("make", ["v = build()\nw = build()"]), ("change", middle), ("use", ["print(v)"])])
    cell = 2 + len(middle)  # cells count from 1: the setup cell, the first stage's, then the middle stage's
    assert stages["change"]["changes"] == [{"name": "v", "cell": cell, "how": how}]
    assert stages["make"]["changes"] == stages["use"]["changes"] == []
    status, out, err = cli("explain", tmp_path / "nb.ipynb")
    assert status == 0, err
    assert f"  changes v  in cell {cell}: {how}\n" in out


def test_explain_does_not_list_changes_to_what_the_stage_made_itself(tmp_path, cli):
    stages = explain(tmp_path, cli, [("make", ["v = build()"]), ("change", ["mine = []\nhelper(mine)\nrandom.shuffle(mine)"])])
    assert stages["change"]["changes"] == []
