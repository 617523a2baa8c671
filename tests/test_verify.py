"""The verifier on its own: wire format, comparisons, diagnosis, parsing of test cells."""
import nbformat
import numpy as np
import pytest
import scipy.special
from nbformat.v4 import new_output

from rnnkit import wire
from rnnkit.probe import case_key, collect
from rnnkit.tasks import TASKS

from autograder.preprocessors import BadTestCell, emitted_results, expected_checks, score, verdict, verified_outputs
from autograder.reference import lstm, rnn
from autograder import verify
from autograder.verify import REFERENCES, grade_check, reference_inputs

TASK_NAMES = sorted(TASKS)


def run(task_name, functions, cases=None):
    task = TASKS[task_name]
    cases = list(task.public) if cases is None else cases
    return grade_check(task_name, cases, collect(task, cases, functions, lambda case: reference_inputs(task, case)))


# ------------------------------------------------------------------ wire

@pytest.mark.parametrize("value", [np.arange(6.0).reshape(2, 3), np.float32(2.5) * np.ones((2, 1, 3), np.float32),
                                   3.25, np.array(7), [[1, 2], [3, 4]], np.arange(4, dtype=np.longdouble) / 3,
                                   np.arange(3, dtype=np.float16), np.arange(4.0).astype(">f8")])
def test_wire_round_trip(value):
    """Any real float dtype travels (longdouble and float16 as float64), as do integers."""
    assert np.array_equal(wire.decode(wire.encode(value)), np.asarray(value, dtype=np.float64))
    assert wire.decode(wire.encode(value)).shape == np.shape(value)


@pytest.mark.parametrize("value, words", [(np.array(["a"]), "dtype"), (np.array([1 + 2j]), "dtype"),
                                          ({"a": 1}, "dtype object"), (None, "dtype object")])
def test_wire_refuses_non_float_outputs(value, words):
    encoded = wire.encode(value)
    assert isinstance(encoded, str) and words in encoded
    with pytest.raises(wire.WireError):
        wire.decode(encoded)


@pytest.mark.parametrize("payload", [
    {"dtype": "|O", "shape": [1], "data": ""},
    {"dtype": "<f8", "shape": [10 ** 9], "data": ""},
    {"dtype": "<f8", "shape": [2], "data": "AAAAAAAADEA="},
    {"dtype": "<f8", "shape": [-1], "data": ""},
    {"dtype": "<f8", "shape": [1], "data": "not base64!"},
    {"dtype": "<f8", "shape": [1], "data": "AAAAAAAADEA=", "extra": 1},
    ["not", "a", "dict"],
])
def test_wire_rejects_forged_payloads(payload):
    with pytest.raises(wire.WireError):
        wire.decode(payload)


def test_array_subclass_that_always_compares_equal_is_graded_on_its_data():
    class Liar(np.ndarray):
        def __eq__(self, other):
            return np.ones(np.shape(self), bool)
        __array_priority__ = 1000

    def rnn_step_forward(x, prev_h, Wx, Wh, b):
        return np.zeros((x.shape[0], Wh.shape[0])).view(Liar), None

    report = run("rnn_step_forward", {"rnn_step_forward": rnn_step_forward})
    assert report.passed == 0 and report.total == 2 and len(report.failures) == 2


# ------------------------------------------------------------------ comparisons

@pytest.mark.parametrize("task_name", TASK_NAMES)
def test_references_pass_their_own_checks(task_name):
    report = run(task_name, REFERENCES)
    assert report.passed == report.total and not report.failures


def float32_functions():
    """Every reference, computing in float32 internally: a correct implementation in single precision."""
    def cast(fn):
        def wrapped(*args):
            args = [a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else
                    tuple(g.astype(np.float32) for g in a) if isinstance(a, tuple) and all(isinstance(g, np.ndarray) for g in a)
                    else a for a in args]
            return fn(*args)
        return wrapped
    return {name: cast(fn) for name, fn in REFERENCES.items()}


@pytest.mark.parametrize("task_name", TASK_NAMES)
def test_float32_implementations_get_full_marks(task_name):
    task = TASKS[task_name]
    big = [dict(c, seed=c["seed"] + 100, **{k: 2 * c[k] for k in ("N", "D", "H") if k in c}) for c in task.public]
    report = run(task_name, float32_functions(), list(task.public) + big)
    assert report.passed == report.total, report.text()


def test_expit_lstm_gets_full_marks(monkeypatch):
    monkeypatch.setattr(lstm, "sigmoid", scipy.special.expit)
    report = run("lstm_step_forward", {"lstm_step_forward": lstm.lstm_step_forward})
    assert report.passed == report.total


def test_wrong_gate_block_is_named():
    def lstm_step_backward(dnext_h, dnext_c, cache):
        dx, dh, dc, dWx, dWh, db = lstm.lstm_step_backward(dnext_h, dnext_c, cache)
        H = dh.shape[1]
        dWx = dWx.copy()
        dWx[:, H:2 * H] *= 1.5
        return dx, dh, dc, dWx, dWh, db
    report = run("lstm_step_backward", {**REFERENCES, "lstm_step_backward": lstm_step_backward})
    assert report.passed == report.total - 2
    assert all("dWx: wrong in the forget gate (f) block" in m for _, m in report.failures), report.text()


def test_wrong_time_step_is_located():
    def rnn_forward(x, h0, Wx, Wh, b):
        h, cache = rnn.rnn_forward(x, h0, Wx, Wh, b)
        if h.shape[1] > 2:
            h = h.copy()
            h[:, 2:] = 0
        return h, cache
    report = run("rnn_forward", {"rnn_forward": rnn_forward}, [{"N": 2, "T": 5, "D": 3, "H": 4, "seed": 9}])
    assert report.failures == [("N=2, T=5, D=3, H=4", report.failures[0][1])]
    assert "h: wrong at t=2..4, right at t=0..1" in report.failures[0][1]


def test_in_place_modification_is_said_not_scored():
    def rnn_step_forward(x, prev_h, Wx, Wh, b):
        out = rnn.rnn_step_forward(x, prev_h, Wx, Wh, b)
        b += 1.0
        return out
    report = run("rnn_step_forward", {"rnn_step_forward": rnn_step_forward})
    assert report.passed == report.total and not report.failures   # not scored: the kernel says so ...
    assert all("modified its inputs in place: b" in m and "not scored" in m for _, m in report.notes)  # ... said


def test_missing_function_and_exceptions_are_reported():
    report = run("gru_step_forward", {})
    assert report.passed == 0 and "gru_step_forward is not defined" in report.failures[0][1]

    def gru_step_forward(*args):
        raise ValueError("shapes do not align")
    report = run("gru_step_forward", {"gru_step_forward": gru_step_forward})
    assert report.passed == 0 and "raised ValueError: shapes do not align" in report.failures[0][1]


def test_wrong_return_form_is_explained():
    report = run("rnn_step_forward", {"rnn_step_forward": lambda *a: rnn.rnn_step_forward(*a)[0]})
    assert "must return a tuple of 2 values, got ndarray" in report.failures[0][1]


# ------------------------------------------------------------------ test cells and emitted results

CELL = 'check("rnn_forward")\n### BEGIN HIDDEN TESTS\ncheck("rnn_forward", cases=[{"N": 1, "T": 2, "D": 1, "H": 1, "seed": 5}])\n### END HIDDEN TESTS'


def test_expected_checks_come_from_the_cell_source():
    (t1, public), (t2, hidden) = expected_checks(CELL)
    assert t1 == t2 == "rnn_forward" and public == list(TASKS["rnn_forward"].public)
    assert hidden == [{"N": 1, "T": 2, "D": 1, "H": 1, "seed": 5}]
    for bad in ("assert True", 'check("no_such_task")', 'check("rnn_forward", cases=make())'):
        with pytest.raises((BadTestCell, ValueError)):
            expected_checks(bad)


def emit(task, results):
    return new_output("display_data", data={wire.MIME: {"task": task, "results": results}, "text/plain": ""})


def test_only_emitted_results_count_and_duplicates_fail():
    (_, public), (_, hidden) = expected_checks(CELL)
    cases = public + hidden
    results = collect(TASKS["rnn_forward"], cases, REFERENCES, TASKS["rnn_forward"].make_inputs)
    reports = verdict(CELL, [emit("rnn_forward", results)])
    assert score(reports, 2.0) == 2.0
    forged = new_output("execute_result", data={"text/plain": "2.0"}, execution_count=1)
    assert score(verdict(CELL, [forged]), 2.0) == 0.0
    key = case_key(hidden[0])
    twice = [emit("rnn_forward", results), emit("rnn_forward", {key: results[key]})]
    reports = verdict(CELL, twice)
    assert 0 < score(reports, 2.0) < 2.0
    assert any("sent more than once" in m for r in reports for _, m in r.failures)
    assert emitted_results([emit("rnn_forward", {key: "junk"})]) == {}


def test_differently_written_lstm_and_gru_get_full_marks():
    """Split per-gate weights, einsum and scipy's expit: as correct as the reference."""
    from scipy.special import expit

    def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
        H = prev_h.shape[1]
        blocks = {g: slice(k * H, (k + 1) * H) for k, g in enumerate("ifgo")}
        pre = {g: np.einsum("nd,dh->nh", x, Wx[:, s]) + np.einsum("nk,kh->nh", prev_h, Wh[:, s]) + b[s]
               for g, s in blocks.items()}
        c = expit(pre["f"]) * prev_c + expit(pre["i"]) * np.tanh(pre["g"])
        return expit(pre["o"]) * np.tanh(c), c, None

    def gru_step_forward(x, prev_h, Wx, Wh, bx, bh):
        H = prev_h.shape[1]
        r, z, n = (slice(k * H, (k + 1) * H) for k in range(3))
        reset = expit(x @ Wx[:, r] + bx[r] + prev_h @ Wh[:, r] + bh[r])
        update = expit(x @ Wx[:, z] + bx[z] + prev_h @ Wh[:, z] + bh[z])
        cand = np.tanh(x @ Wx[:, n] + bx[n] + reset * (prev_h @ Wh[:, n] + bh[n]))
        return update * prev_h + (1 - update) * cand, None

    for task, fn in (("lstm_step_forward", lstm_step_forward), ("gru_step_forward", gru_step_forward)):
        report = run(task, {task: fn})
        assert report.passed == report.total, report.text()


def test_a_test_cells_outputs_are_what_nbformat_makes_and_valid():
    made = verified_outputs("2 of 3 passed\n", 6.6667)
    assert made == [new_output("stream", name="stdout", text="2 of 3 passed\n"),
                    new_output("execute_result", data={"text/plain": "6.6667"}, execution_count=None)]
    for output in made:
        nbformat.validator.validate(output, "output", version=4)


def test_references_are_computed_once_per_case_and_cannot_be_changed(monkeypatch):
    task, case = TASKS["rnn_step_forward"], dict(TASKS["rnn_step_forward"].public[0])
    runs = []
    real = verify.reference_outputs
    monkeypatch.setattr(verify, "reference_outputs", lambda t, inputs: runs.append(t.name) or real(t, inputs))
    monkeypatch.setattr(verify, "_KEPT", {})
    first, _ = verify.reference_expected(task, case)
    again, probes = verify.reference_expected(task, dict(reversed(list(case.items()))))   # same case
    other, _ = verify.reference_expected(task, {**case, "seed": case["seed"] + 1})
    assert runs == ["rnn_step_forward", "rnn_step_forward"] and again is first and other is not first
    with pytest.raises(ValueError, match="read-only"):
        first[0][0, 0] = 1.0
    diagnosis = probes()   # the probes' inputs are made from the kept inputs, as copies
    assert diagnosis and runs == ["rnn_step_forward"] * (2 + len(diagnosis))
    # asked again (a stand-in run's expected outputs, a second wrong submission): kept too
    assert verify.reference_expected(task, case)[1]() is diagnosis
    assert runs == ["rnn_step_forward"] * (2 + len(diagnosis))
    with pytest.raises(ValueError, match="read-only"):
        next(iter(diagnosis.values()))[0][0, 0] = 1.0
