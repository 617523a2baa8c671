"""The stand-ins of rnnkit.standins and the second run of a layer with them (issue 21, item 2).

A layer that calls another student function (its step, or the pasted rnn_forward) is run
once more per case with that function's name bound to a public stand-in; a unit is right
if either run is. Here: the stand-ins themselves (shapes, bounded values, every chaining
mistake changes a layer built on them), the binding (always restored), the grader's
references built on them, and check()'s verdicts and messages in each situation.
"""
import functools

import numpy as np
import pytest

from autograder import verify
from public_check import namespace, public_check
from rnnkit import standins
from rnnkit.compare import STANDIN, case_key, error_ratio
from rnnkit.probe import collect
from rnnkit.standins import STANDINS
from rnnkit.tasks import TASKS, copy_inputs, sequence_inputs

LAYERS = [name for name in sorted(TASKS) if TASKS[name].standins]


def sequence(kind, T=4, upstream=True, N=2, D=3, H=4):
    return sequence_inputs(kind, upstream)({"N": N, "T": T, "D": D, "H": H, "seed": 5})


def standin_layer(layer):
    """The reference loop of ``layer`` over the stand-in of what it calls."""
    return functools.partial(verify.LOOPS[layer], *(STANDINS[n] for n in TASKS[layer].standins))


# ---------------------------------------------------------------- the stand-ins

@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_stand_in_steps_have_the_documented_shapes_and_stay_bounded(kind):
    """Forward and backward over 60 steps: the documented shapes, finite, O(1) values."""
    inputs = sequence(kind, T=60)
    params = [inputs[k] for k in (("Wx", "Wh", "bx", "bh") if kind == "gru" else ("Wx", "Wh", "b"))]
    N, T, D = inputs["x"].shape
    H = inputs["h0"].shape[1]
    if kind == "lstm":
        h, c, cache = verify.lstm.unroll_lstm_forward(standins.lstm_step_forward, inputs["x"], inputs["h0"],
                                                      inputs["c0"], *params)
        grads = verify.lstm.unroll_lstm_backward(standins.lstm_step_backward, inputs["dh"], cache)
        states = (h, c)
    else:
        step = STANDINS[f"{kind}_step_forward"]
        h, cache = verify.unroll_forward(step, inputs["x"], inputs["h0"], *params)
        grads = verify.unroll_backward(STANDINS[f"{kind}_step_backward"], inputs["dh"], cache)
        states = (h,)
    shapes = [(N, T, D), (N, H)] + ([(N, H)] if kind == "lstm" else []) + [p.shape for p in params]
    assert [g.shape for g in grads] == shapes
    for s in states:
        assert s.shape == (N, T, H) and s.dtype == np.float64
    for a in (*states, *grads):
        assert np.all(np.isfinite(a))
    assert max(np.abs(s).max() for s in states) < 10
    assert max(np.abs(g).max() for g in grads[:2]) < 10   # per-step gradients (parameters sum T of them)
    for step_cache in cache:
        assert all(e.shape[0] in (N, D, H) for e in step_cache)


def test_stand_ins_are_not_the_cells():
    """A stand-in reveals nothing: it differs from the reference cell on the same inputs."""
    for name, stand_in in STANDINS.items():
        task = TASKS[name]
        inputs = verify.reference_inputs(task, task.public[0])
        mine = task.run({**verify.REFERENCES, name: stand_in}, copy_inputs(inputs))
        ref = task.run(verify.REFERENCES, copy_inputs(inputs))
        assert all(error_ratio(np.asarray(a), np.asarray(b)) > 1 for a, b in zip(mine, ref)), name


def test_the_reference_layers_are_their_loops_over_the_reference_functions():
    """verify.LOOPS[layer](reference function) is the reference layer: one loop, two uses."""
    for name in LAYERS:
        task = TASKS[name]
        loop = functools.partial(verify.LOOPS[task.needs[0]], *(verify.REFERENCES[n] for n in task.standins))
        for case in task.public:
            inputs = verify.reference_inputs(task, case)
            mine = task.run({**verify.REFERENCES, task.needs[0]: loop}, copy_inputs(inputs))
            for a, b in zip(mine, task.run(verify.REFERENCES, copy_inputs(inputs))):
                assert np.array_equal(a, b), name


def _unroll(step, x, h0, *params, xs=None, keep_prev=False, order=None):
    h, prev = [], h0
    for t in (order or range(x.shape[1])):
        nxt, _ = step(x[:, t if xs is None else xs], prev, *params)
        h.append(prev if keep_prev else nxt)
        prev = nxt
    return np.stack(h, axis=1)


def _unroll_back(step_backward, dh, caches, carry=True, summed=True, slot=None, order=None):
    N, T, H = dh.shape
    dx, dprev, grads = np.zeros((N, T, caches[0][0].shape[1])), np.zeros((N, H)), None
    for t in (order or reversed(range(T))):
        dx_t, d, *g = step_backward(dh[:, t] + (dprev if carry else 0), caches[t])
        dx[:, t if slot is None else slot(t, T)] = dx_t
        dprev = d
        grads = g if grads is None or not summed else [a + b for a, b in zip(grads, g)]
    return (dx, dprev, *grads)


def test_every_forward_chaining_mistake_changes_the_stand_in_layer():
    inputs = sequence("rnn", upstream=False)
    args = [inputs[k] for k in ("x", "h0", "Wx", "Wh", "b")]
    right = standin_layer("rnn_forward")(*args)[0]
    step = standins.rnn_step_forward
    mistakes = {
        "h0 at every step": np.stack([step(args[0][:, t], args[1], *args[2:])[0] for t in range(4)], 1),
        "x_0 at every step": _unroll(step, *args, xs=0),
        "h_{t-1} stored at t": _unroll(step, *args, keep_prev=True),
        "time reversed": _unroll(step, *args, order=range(3, -1, -1)),
    }
    assert np.allclose(_unroll(step, *args), right)
    for what, wrong in mistakes.items():
        assert error_ratio(wrong, right) > 100, what


def test_every_backward_chaining_mistake_changes_the_stand_in_layer():
    inputs = sequence("rnn")
    _, caches = verify.rnn.rnn_forward(*(inputs[k] for k in ("x", "h0", "Wx", "Wh", "b")))
    right = standin_layer("rnn_backward")(inputs["dh"], caches)
    back = standins.rnn_step_backward
    mistakes = {
        "no carried gradient": _unroll_back(back, inputs["dh"], caches, carry=False),
        "parameter gradients not summed": _unroll_back(back, inputs["dh"], caches, summed=False),
        "dx in the wrong slot": _unroll_back(back, inputs["dh"], caches, slot=lambda t, T: T - 1 - t),
        "forward in time": _unroll_back(back, inputs["dh"], caches, order=range(4)),
    }
    for a, b in zip(_unroll_back(back, inputs["dh"], caches), right):
        assert np.allclose(a, b)
    for what, wrong in mistakes.items():
        assert any(error_ratio(a, b) > 100 for a, b in zip(wrong, right)), what


def test_the_stand_in_layers_are_not_loops_over_the_stand_in_steps_and_use_every_argument():
    """A stand-in rnn_forward / rnn_backward is no solution of the layer in disguise: it differs
    from the stand-in step unrolled, and changing any one argument (or the order of time)
    changes its result."""
    inputs = sequence("rnn")
    args = [inputs[k] for k in ("x", "h0", "Wx", "Wh", "b")]
    h, caches = standins.rnn_forward(*args)
    assert error_ratio(h, standin_layer("rnn_forward")(*args)[0]) > 100
    back = standins.rnn_backward(inputs["dh"], caches)
    unrolled = standin_layer("rnn_backward")(inputs["dh"], caches)
    assert all(error_ratio(a, b) > 100 for a, b in zip(back, unrolled))
    for i in range(len(args)):
        changed = [a + 0.5 if j == i else a for j, a in enumerate(args)]
        assert error_ratio(standins.rnn_forward(*changed)[0], h) > 100, i
    assert error_ratio(standins.rnn_forward(args[0][:, ::-1], *args[1:])[0][:, ::-1], h) > 100
    for dh in (inputs["dh"] + 0.5, inputs["dh"][:, ::-1]):
        assert all(error_ratio(a, b) > 100 for a, b in zip(standins.rnn_backward(dh, caches), back))
    assert all(error_ratio(a, b) > 100 for a, b in zip(standins.rnn_backward(inputs["dh"], caches[::-1]), back))


def test_the_bidirectional_layer_must_put_the_backward_direction_back_in_time_order():
    task = TASKS["birnn_forward"]
    inputs = verify.reference_inputs(task, task.public[0])
    layer = standin_layer("birnn_forward")
    p = [inputs[k] for k in ("x", "Wx_f", "Wh_f", "b_f", "Wx_b", "Wh_b", "b_b")]
    right = layer(*p)[0]
    H = p[2].shape[0]
    h0 = np.zeros((p[0].shape[0], H))
    h_b = standins.rnn_forward(p[0][:, ::-1], h0, *p[4:])[0]
    assert error_ratio(np.concatenate([right[..., :H], h_b], axis=-1), right) > 100
    grads = standin_layer("birnn_backward")(inputs["dh"], layer(*p)[1])
    dx_b = standins.rnn_backward(inputs["dh"][:, ::-1, H:], layer(*p)[1][1])[0]
    assert error_ratio(grads[0] - dx_b[:, ::-1] + dx_b, grads[0]) > 100


# ---------------------------------------------------------------- the binding

def test_the_binding_is_restored_when_the_layer_raises_or_rebinds_or_the_name_was_absent():
    mine = object()
    names = {"rnn_step_forward": mine}
    with pytest.raises(ZeroDivisionError):
        with standins.bound(names, ("rnn_step_forward",)):
            assert names["rnn_step_forward"] is standins.rnn_step_forward
            1 / 0
    assert names["rnn_step_forward"] is mine
    with standins.bound(names, ("rnn_step_forward",)):
        names["rnn_step_forward"] = "rebound by the layer"
    assert names["rnn_step_forward"] is mine
    empty = {}
    with standins.bound(empty, ("rnn_step_forward",)):
        assert empty["rnn_step_forward"] is standins.rnn_step_forward
    assert empty == {}


LAYER_RAISES = '''
def rnn_forward(x, h0, Wx, Wh, b):
    raise RuntimeError("no")
'''
LAYER_REBINDS = '''
def rnn_forward(x, h0, Wx, Wh, b):
    global rnn_step_forward
    if rnn_step_forward.__module__ == "rnnkit.standins":   # rebinds the stand-in only
        rnn_step_forward = None
    return np.zeros((x.shape[0], x.shape[1], h0.shape[1])), []
'''
DEFAULT_ARGUMENT = '''
def rnn_forward(x, h0, Wx, Wh, b, step=rnn_step_forward):
    h, caches, prev_h = [], [], h0
    for t in range(x.shape[1]):
        prev_h, c = step(x[:, t], prev_h, Wx, Wh, b)
        h.append(prev_h)
        caches.append(c)
    return np.stack(h, axis=1), caches
'''


@pytest.mark.parametrize("layer", [LAYER_RAISES, LAYER_REBINDS], ids=["raises", "rebinds"])
def test_a_check_leaves_the_notebook_s_step_as_it_was(layer):
    names = namespace("01_rnn", {"rnn_forward": layer})
    step = names["rnn_step_forward"]
    passed, _ = public_check("rnn_forward", names)
    assert not passed and names["rnn_step_forward"] is step


def test_a_step_never_defined_stays_undefined_and_a_right_layer_passes():
    names = namespace("01_rnn")
    del names["rnn_step_forward"]
    passed, text = public_check("rnn_forward", names)
    assert passed, text
    assert "rnn_step_forward" not in names


def test_a_layer_that_captured_its_step_is_judged_by_its_own_run():
    step = "def rnn_step_forward(x, prev_h, Wx, Wh, b):\n    " \
           "next_h = np.tanh(x @ Wx + prev_h @ Wh)\n    return next_h, (x, prev_h, Wx, Wh, next_h)\n"
    names = namespace("01_rnn", {"rnn_step_forward": step, "rnn_forward": DEFAULT_ARGUMENT})
    passed, text = public_check("rnn_forward", names)
    assert not passed and "h: wrong" in text, text
    passed, text = public_check("rnn_forward", namespace("01_rnn", {"rnn_forward": DEFAULT_ARGUMENT}))
    assert passed, text


# ---------------------------------------------------------------- verdicts and messages

SOMETIMES_WRONG_STEP = '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b) + (x.shape[0] == 3)
    return next_h, (x, prev_h, Wx, Wh, next_h)
'''
INLINED_LAYER = '''
def rnn_forward(x, h0, Wx, Wh, b):
    h, caches, prev_h = [], [], h0
    for t in range(x.shape[1]):
        nxt = np.tanh(x[:, t] @ Wx + prev_h @ Wh + b)
        caches.append((x[:, t], prev_h, Wx, Wh, nxt))
        h.append(nxt)
        prev_h = nxt
    return np.stack(h, axis=1), caches
'''
NO_BIAS_STEP = '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh)
    return next_h, (x, prev_h, Wx, Wh, next_h)
'''


def said(names, task):
    passed, text = public_check(task, names)
    return passed, " ".join(text.split())


def test_a_step_that_passes_its_check_but_not_in_the_layer_is_said_as_observed():
    passed, text = said(namespace("01_rnn", {"rnn_step_forward": SOMETIMES_WRONG_STEP}), "rnn_forward")
    assert passed, text
    assert ("rnn_forward is right with a stand-in rnn_step_forward, wrong with yours although it passes "
            "its own check: look at what your rnn_step_forward does with these inputs") in text, text


def test_an_inlined_layer_is_judged_by_its_own_run():
    passed, text = said(namespace("01_rnn", {"rnn_step_forward": NO_BIAS_STEP, "rnn_forward": INLINED_LAYER}),
                        "rnn_forward")
    assert passed and "your rnn_forward is right; rnn_step_forward fails its own check" in text, text
    wrong = INLINED_LAYER.replace("prev_h @ Wh + b", "prev_h @ Wh")
    passed, text = said(namespace("01_rnn", {"rnn_forward": wrong}), "rnn_forward")
    assert not passed and "h: wrong" in text and "stand-in" not in text, text


def test_a_wrong_chaining_over_a_wrong_step_blames_the_layer_and_says_both():
    layer = DEFAULT_ARGUMENT.replace(", step=rnn_step_forward", "").replace("step(x[:, t], prev_h",
                                                                            "rnn_step_forward(x[:, t], h0")
    passed, text = said(namespace("01_rnn", {"rnn_step_forward": NO_BIAS_STEP, "rnn_forward": layer}),
                        "rnn_forward")
    assert not passed and "h: wrong" in text
    assert "wrong with a stand-in rnn_step_forward too, so rnn_forward itself is wrong; " \
           "rnn_step_forward also fails its own check" in text, text
    assert "fix rnn_step_forward first" not in text


@pytest.mark.parametrize("layer", LAYERS)
def test_the_kit_ships_the_grader_s_stand_in_expectations(layer):
    """check() on a student's machine and the grader compare the stand-in run with the same values."""
    from rnnkit.expected import ShippedData
    data, task = ShippedData(), TASKS[layer]
    for case in task.public:
        shipped = data.expected(task, case)[1]()[STANDIN]
        graded = verify.reference_expected(task, case)[1]()[STANDIN]
        assert len(shipped) == len(graded) == len(task.outputs)
        for a, b in zip(shipped, graded):
            assert np.allclose(a, b, rtol=1e-12, atol=1e-12), layer


def test_hidden_cases_score_the_stand_in_run_in_the_grader_s_words():
    names = namespace("01_rnn", {"rnn_step_forward": NO_BIAS_STEP})
    task = TASKS["rnn_forward"]
    cases = [{"N": 3, "T": 4, "D": 2, "H": 3, "seed": 123}, {"N": 1, "T": 2, "D": 3, "H": 2, "seed": 9}]
    made = {case_key(c): verify.reference_inputs(task, c) for c in cases}
    results = collect(task, cases, names, lambda c: made[case_key(c)], probes=False)
    assert set(results) == {case_key(c) for c in cases} | {f"{case_key(c)}|{STANDIN}" for c in cases}
    report = verify.grade_check("rnn_forward", cases, results, hidden=True)
    assert report.passed == report.total == 2 and not report.failures
    assert report.notes == [("hidden case 1", "rnn_forward is right with a stand-in rnn_step_forward, wrong "
                             "with yours: look at what your rnn_step_forward does with these inputs")]
    del results[f"{case_key(cases[0])}|{STANDIN}"]   # without its stand-in run, a case is its own run
    report = verify.grade_check("rnn_forward", cases, results, hidden=True)
    assert report.passed == 1 and report.failures[0][0] == "hidden case 1"


HANDS_OVER = {
    "rnn_forward": "def rnn_forward(x, h0, Wx, Wh, b):\n"
                   "    from rnnkit import standins\n    return standins.rnn_forward(x, h0, Wx, Wh, b)\n",
    "rnn_backward": "def rnn_backward(dh, cache):\n"
                    "    from rnnkit import standins\n    return standins.rnn_backward(dh, cache)\n",
}


@pytest.mark.parametrize("layer", sorted(HANDS_OVER))
def test_a_layer_that_hands_its_work_to_the_kit_s_stand_in_layer_earns_nothing(layer):
    """The attack: a layer without a loop that returns the kit's public stand-in layer,
    hoping its stand-in run equals the stand-in steps unrolled. The stand-in layers are
    not that unrolling, so both runs are wrong."""
    passed, text = said(namespace("01_rnn", {layer: HANDS_OVER[layer]}), layer)
    assert not passed and "right with a stand-in" not in text, text
