"""Backward passes by numerical differentiation are flagged (autograder.flags.numerical_backward),
whatever names and idioms they use; correct analytic backwards and the course's own cells never
are; and the review of a cell is bounded: one parse per cell, shared by both reviews, a linear
walk, and a cell the parser refuses (too deep, too large) flagged, not crashed.
"""
import nbformat
import pytest

from autograder import flags
from submissions import REPO

# The forward is never named *_forward here: what gives them away is the finite difference.
FORWARD = '''
def step(x, h, Wx, Wh, b):
    return np.tanh(x @ Wx + h @ Wh + b)

def loss(args, dnext_h):
    return np.sum(step(*args) * dnext_h)
'''

NUMERICAL = {
    "central_difference_expression": '''
def rnn_step_backward(dnext_h, cache):
    grads = []
    for a in cache:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            e = np.zeros_like(a)
            e[idx] = 1e-6
            args_p = [c + e if c is a else c for c in cache]
            args_m = [c - e if c is a else c for c in cache]
            g[idx] = (loss(args_p, dnext_h) - loss(args_m, dnext_h)) / 2e-6
        grads.append(g)
    return tuple(grads)
''',
    "nditer_set_evaluate_reset": '''
def rnn_step_backward(dnext_h, cache):
    grads = []
    for a in cache:
        g = np.zeros_like(a)
        it = np.nditer(a, flags=["multi_index"])
        while not it.finished:
            ix = it.multi_index
            old = a[ix]
            a[ix] = old + 1e-5
            up = loss(cache, dnext_h)
            a[ix] = old - 1e-5
            down = loss(cache, dnext_h)
            a[ix] = old
            g[ix] = up / 2e-5 + down / -2e-5
            it.iternext()
        grads.append(g)
    return tuple(grads)
''',
    "itertools_product_over_shapes": '''
import itertools

def rnn_step_backward(dnext_h, cache):
    out = []
    for a in cache:
        g = np.zeros_like(a)
        for idx in itertools.product(*[range(n) for n in a.shape]):
            a[idx] += 1e-5
            fp = loss(cache, dnext_h)
            a[idx] -= 2e-5
            fm = loss(cache, dnext_h)
            a[idx] += 1e-5
            g[idx] = (fp - fm) * 5e4
        out.append(g)
    return tuple(out)
''',
    "flat_one_sided_base_outside": '''
def rnn_step_backward(dnext_h, cache):
    base = loss(cache, dnext_h)
    grads = []
    for a in cache:
        g = np.zeros(a.size)
        for i in range(a.size):
            a.flat[i] += 1e-6
            g[i] = (loss(cache, dnext_h) - base) * 1e6
            a.flat[i] -= 1e-6
        grads.append(g.reshape(a.shape))
    return tuple(grads)
''',
    "add_at_values_differenced_later": '''
def rnn_step_backward(dnext_h, cache):
    grads = []
    for a in cache:
        ups, downs = [], []
        for i in range(a.size):
            idx = np.unravel_index(i, a.shape)
            np.add.at(a, idx, 1e-6)
            ups.append(loss(cache, dnext_h))
            np.add.at(a, idx, -2e-6)
            downs.append(loss(cache, dnext_h))
            np.add.at(a, idx, 1e-6)
        grads.append(((np.array(ups) - np.array(downs)) / 2e-6).reshape(a.shape))
    return tuple(grads)
''',
    "copy_and_edit": '''
def rnn_step_backward(dnext_h, cache):
    x, h, Wx, Wh, b = cache
    def run(Wx2):
        return np.sum(step(x, h, Wx2, Wh, b) * dnext_h)
    vals = []
    for i in range(Wx.size):
        Wp = Wx.copy()
        Wp.flat[i] += 1e-6
        vals.append(run(Wp))
    dWx = (np.array(vals) - run(Wx)).reshape(Wx.shape) / 1e-6
    return None, None, dWx, None, None
''',
    "comprehension_over_basis": '''
def rnn_step_backward(dnext_h, cache):
    x, h, Wx, Wh, b = cache
    f = lambda z: np.sum(step(z, h, Wx, Wh, b) * dnext_h)
    basis = np.eye(x.size).reshape(-1, *x.shape)
    dx = np.array([(f(x + 1e-6 * e) - f(x - 1e-6 * e)) / 2e-6 for e in basis]).reshape(x.shape)
    return dx, None, None, None, None
''',
    "map_lambda": '''
def rnn_step_backward(dnext_h, cache):
    x, h, Wx, Wh, b = cache
    f = lambda z: np.sum(step(x, h, Wx, Wh, z) * dnext_h)
    db = np.array(list(map(lambda e: (f(b + e) - f(b - e)) / 2e-6, 1e-6 * np.eye(b.size))))
    return None, None, None, None, db
''',
    "helper_does_it": '''
def slope(f, a, h=1e-6):
    g = np.zeros_like(a)
    for i in range(a.size):
        keep = a.flat[i]
        a.flat[i] = keep + h
        hi = f()
        a.flat[i] = keep - h
        lo = f()
        a.flat[i] = keep
        g.flat[i] = (hi - lo) / (2 * h)
    return g

def rnn_step_backward(dnext_h, cache):
    return tuple(slope(lambda: loss(cache, dnext_h), a) for a in cache)
''',
    "bound_by_assignment": '''
def slope(f, a, h=1e-6):
    g = np.zeros_like(a)
    for i in range(a.size):
        keep = a.flat[i]
        a.flat[i] = keep + h
        hi = f()
        a.flat[i] = keep - h
        g.flat[i] = (hi - f()) / (2 * h)
        a.flat[i] = keep
    return g

rnn_step_backward = lambda dnext_h, cache: tuple(slope(lambda: loss(cache, dnext_h), a) for a in cache)
''',
    "while_with_index": '''
def rnn_step_backward(dnext_h, cache):
    grads = []
    for a in cache:
        g = np.zeros_like(a).ravel()
        flat = a.reshape(-1)
        i = 0
        while i < flat.size:
            flat[i] += 1e-6
            plus = loss(cache, dnext_h)
            flat[i] -= 2e-6
            minus = loss(cache, dnext_h)
            flat[i] += 1e-6
            g[i] = (plus - minus) / 2e-6
            i += 1
        grads.append(g.reshape(a.shape))
    return tuple(grads)
''',
}

CORRECT = {
    "loops": '''
def sigmoid(z):
    return 1 / (1 + np.exp(-z))

def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for d in range(x.shape[1]):
            dx[n, d] = sum(da[n, k] * Wx[d, k] for k in range(Wx.shape[1]))
    return dx, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)

def rnn_backward(dh, cache):
    dh = dh.copy()
    N, T, H = dh.shape
    dprev = np.zeros((N, H))
    grads = None
    dx = []
    for t in reversed(range(T)):
        dh[:, t] += dprev
        dx_t, dprev, dWx, dWh, db = rnn_step_backward(dh[:, t], cache[t])
        dx.append(dx_t)
        if grads is None:
            grads = [dWx, dWh, db]
        else:
            grads = [g + d for g, d in zip(grads, (dWx, dWh, db))]
    return (np.stack(dx[::-1], axis=1), dprev, *grads)
''',
    "einsum": '''
def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = np.einsum("nh,nh->nh", dnext_h, 1 - next_h ** 2)
    return (np.einsum("nh,dh->nd", da, Wx), np.einsum("nh,kh->nk", da, Wh),
            np.einsum("nd,nh->dh", x, da), np.einsum("nk,nh->kh", prev_h, da), np.einsum("nh->h", da))
''',
    "softmax_loss_in_a_loop": '''
def softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

def one_hot(y, V):
    return np.eye(V)[y]

def temporal_softmax_backward(scores, y):
    N, T, V = scores.shape
    dscores = np.zeros_like(scores)
    for t in range(T):
        dscores[:, t] = (softmax(scores[:, t]) - one_hot(y[:, t], V)) / N
    return dscores
''',
    "grads_dict_updated_per_step": '''
def lstm_step_backward(dnext_h, dnext_c, cache):
    return dnext_h, dnext_c, dnext_h, dnext_h, dnext_h

def lstm_backward(dh, cache):
    grads = {"Wx": 0, "Wh": 0, "b": 0}
    dprev_h = dprev_c = 0
    for t in reversed(range(dh.shape[1])):
        dx_t, dprev_h, dprev_c, dWx, dWh = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])
        grads["Wx"] += dWx
        grads["Wh"] += dWh
    return grads
''',
}


def notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


@pytest.mark.parametrize("name", sorted(NUMERICAL))
def test_numerical_differentiation_is_flagged_whatever_the_idiom(name):
    found = flags.numerical_backward(notebook("import numpy as np", FORWARD, NUMERICAL[name]))
    assert [f.split(":")[0] for f in found] == ["backward pass by numerical differentiation"], found
    assert found[0].startswith("backward pass by numerical differentiation: rnn_step_backward "), found


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_analytic_backwards_are_not_flagged(name):
    assert flags.numerical_backward(notebook("import numpy as np", FORWARD, CORRECT[name])) == []


@pytest.mark.parametrize("assignment", sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir()))
def test_the_course_solutions_and_helper_cells_are_not_flagged(assignment):
    nb = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    # every cell read as the student's, the instructors' gradient checks included
    assert flags.numerical_backward(nb, ()) == []
    instructors = [c.source for c in nb.cells if not c.metadata.get("nbgrader", {}).get("solution")]
    assert flags.numerical_backward(nb, instructors) == []


def test_each_cell_is_parsed_once_for_both_reviews(monkeypatch):
    parsed = []
    real = flags.ast.parse
    monkeypatch.setattr(flags.ast, "parse", lambda source, *a, **k: parsed.append(source) or real(source, *a, **k))
    source_nb = notebook("import numpy as np")
    source_nb.cells[0].metadata["nbgrader"] = {"grade_id": "setup", "locked": True}
    nb = notebook("import numpy as np", FORWARD, NUMERICAL["helper_does_it"])
    nb.cells[0].metadata["nbgrader"] = {"grade_id": "setup", "locked": True}
    found = flags.review(nb, source_nb)
    assert any(f.startswith("backward pass by numerical differentiation") for f in found), found
    assert sorted(parsed) == sorted([FORWARD, NUMERICAL["helper_does_it"]])


@pytest.mark.parametrize("source", [
    "x = " + "-" * 100_000 + "1",                           # the parser's recursion
    "x = " + "(" * 100_000 + "1" + ")" * 100_000,           # its nesting limit
    "def f_backward(x):\n    return " + "+".join(["x"] * 100_000),
    "x = [" + "[" * 100_000,
])
def test_a_cell_the_parser_refuses_is_flagged_not_crashed(source):
    nb = notebook(source)
    found = flags.suspicious_source(nb)
    assert len(found) == 1 and found[0].startswith("suspicious code in added cell 0: "), found
    assert "could not be parsed" in found[0] or "is not plain Python" in found[0]
    assert flags.numerical_backward(nb) == []


def test_deep_but_parsable_code_is_walked_without_recursion():
    # as deep as the parser takes: every walk here is iterative (ast.walk, no unparse)
    chain = "+".join(["f(x)"] * 2000)
    nb = notebook(f"def g_backward(x):\n    for i in range(3):\n"
                  f"        x[i] = {chain}\n        y = f(x)\n        x[i] = {chain}\n")
    assert flags.numerical_backward(nb) == [
        "backward pass by numerical differentiation: g_backward perturbs its inputs in a loop"]
    assert flags.suspicious_source(nb) == []
    # a chain of calls f(x)(x)...: each key of a node is made in O(1), not from its text
    calls = "f" + "(x)" * 1000
    nb = notebook(f"def g_backward(x):\n    for i in range(3):\n        y = {calls} - {calls}\n")
    assert flags.numerical_backward(nb) == []
    # many findings of one kind: each quoted from the cell's lines, split once
    assert len(flags.suspicious_code("import numpy as np\n" + "np.save('a', 1)\n" * 5000)) == 5000


def test_ten_thousand_functions_are_bounded():
    # a chain of backwards, each calling the next, the last one perturbing: one search, no recursion;
    # functions past MAX_FUNCTIONS are not read at all
    n = 10_000
    cells = [f"def f{i}_backward(x):\n    return f{i + 1}_backward(x)\n" for i in range(n)]
    cells[flags.MAX_FUNCTIONS - 1] = (f"def f{flags.MAX_FUNCTIONS - 1}_backward(x):\n    for i in range(3):\n"
                                      "        x[i] += 1\n        y = g(x)\n        x[i] -= 1\n    return y\n")
    found = flags.numerical_backward(notebook("\n".join(cells)))
    assert len(found) == flags.MAX_FUNCTIONS + 1, len(found)
    # padding with functions cannot hide a backward: what is past the bound is flagged
    assert found[-1] == (f"backward passes not reviewed: {n - flags.MAX_FUNCTIONS} functions "
                         f"past the first {flags.MAX_FUNCTIONS}")
    assert found[0] == ("backward pass by numerical differentiation: f0_backward calls "
                        f"f{flags.MAX_FUNCTIONS - 1}_backward, which perturbs its inputs in a loop")
