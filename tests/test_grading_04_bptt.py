"""Exercise 04 graded end to end: one mistake, one penalty (issue 21, item 2).

Every backward of exercise 4 is graded on the cache the conventions fix
(rnnkit.conventions.CACHES), built by the grader from the reference forward; the
forwards the student pastes are graded on their own, outputs and cache element by
element (test_*_forward_cache). A wrong forward costs those checks only, and the right
backward's feedback points at it.
"""
import ast
import re

import numpy as np
import pytest

from autograder import verdicts
from autograder.reference import lstm as ref_lstm
from page_text import visible_text
from points import cell_points, total_points
from public_check import assert_cache_layout_errors, namespace
from rnnkit.conventions import CACHE_PARTS, CACHES
from rnnkit.tasks import TASKS, sequence_inputs
from submissions import REPO, grade_students, mutate, solution_cells, student_notebook

pytestmark = pytest.mark.xdist_group("grading")
A = "04_bptt"
SOL = solution_cells(A)
FORWARD_CELLS = ("test_lstm_step_forward_cache", "test_lstm_forward_cache",
                 "test_gru_step_forward_cache", "test_gru_forward_cache")
BACKWARD_CELLS = ("test_lstm_step_backward", "test_lstm_backward", "test_lstm_truncated_backward",
                  "test_gru_step_backward", "test_gru_backward")

#: The LSTM forward with c_t = f * (c_{t-1} + i * g): next_c and tanh(c_t) are wrong.
WRONG_LSTM = mutate(SOL["forward"], "next_c = f * prev_c + i * g", "next_c = f * (prev_c + i * g)")
#: The GRU forward caching h_{t-1} @ Wh_n without bh_n: only its cache is wrong.
WRONG_GRU = mutate(SOL["gru_forward"], "ah_n = ah[:, 2 * H:]", "ah_n = (prev_h @ Wh)[:, 2 * H:]")
#: A right step backward written another way: split weights, einsum, float32 inside.
SPLIT_FLOAT32 = '''
def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c = (np.asarray(a, np.float32) for a in cache)
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    parts = [dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dc * i * (1 - g ** 2),
             dnext_h * tanh_c * o * (1 - o)]
    H = prev_h.shape[1]
    dx = sum(np.einsum("nh,dh->nd", p, Wx[:, k * H:(k + 1) * H]) for k, p in enumerate(parts))
    dprev_h = sum(np.einsum("nh,jh->nj", p, Wh[:, k * H:(k + 1) * H]) for k, p in enumerate(parts))
    dWx = np.concatenate([np.einsum("nd,nh->dh", x, p) for p in parts], axis=1)
    dWh = np.concatenate([np.einsum("nj,nh->jh", prev_h, p) for p in parts], axis=1)
    db = np.concatenate([p.sum(axis=0) for p in parts])
    return dx, dprev_h, dc * f, dWx, dWh, db
'''
#: A wrong step backward (dc_{t-1} without the forget gate), on top of the wrong forward.
WRONG_BACKWARD = mutate(SOL["lstm_step_backward"], "dprev_c = dc * f", "dprev_c = dc")
#: Wrong GRU steps (z and 1 - z swapped; dx without the candidate's path): the layers chain them right.
WRONG_GRU_STEP = mutate(SOL["gru_forward"], "next_h = (1 - z) * n + z * prev_h", "next_h = z * n + (1 - z) * prev_h")
WRONG_GRU_BACKWARD = mutate(SOL["gru_step_backward"], "dprev_h = dnext_h * z + dah @ Wh.T", "dprev_h = dah @ Wh.T")
#: Wrong chainings: every step started from h0; dc_t not carried to the step before.
LSTM_H0_EVERY_STEP = mutate(SOL["forward"], "lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)",
                            "lstm_step_forward(x[:, t], h0, prev_c, Wx, Wh, b)")
LSTM_NO_CARRIED_DC = mutate(SOL["lstm_backward"], "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])",
                            "lstm_step_backward(dh[:, t] + dprev_h, np.zeros((N, H)), cache[t])")

STUDENTS = {
    "solution": student_notebook(A),
    "wrong_lstm_forward": student_notebook(A, {"forward": WRONG_LSTM}),
    "wrong_gru_cache": student_notebook(A, {"gru_forward": WRONG_GRU}),
    "split_float32": student_notebook(A, {"lstm_step_backward": SPLIT_FLOAT32}),
    "both_wrong": student_notebook(A, {"forward": WRONG_LSTM, "lstm_step_backward": WRONG_BACKWARD}),
    "wrong_lstm_step_backward": student_notebook(A, {"lstm_step_backward": WRONG_BACKWARD}),
    "wrong_gru_steps": student_notebook(A, {"gru_forward": WRONG_GRU_STEP, "gru_step_backward": WRONG_GRU_BACKWARD}),
    "wrong_lstm_chaining": student_notebook(A, {"forward": LSTM_H0_EVERY_STEP, "lstm_backward": LSTM_NO_CARRIED_DC}),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course, outcomes, rows = grade_students(tmp_path_factory.mktemp("grading04"), A, STUDENTS)
    assert all(o.ok for o in outcomes.values()), outcomes
    return course, rows


def feedback(course, student):
    return " ".join(visible_text((course / "feedback" / student / A / f"{A}.html").read_text()).split())


def test_solution_and_a_right_variant_get_full_marks(graded):
    course, rows = graded
    assert set(FORWARD_CELLS + BACKWARD_CELLS) <= set(cell_points(A))
    for student in ("solution", "split_float32"):
        assert rows[student]["score"] == rows[student]["max_score"] == total_points(A), \
            verdicts.failures(course, student, A)


def test_a_wrong_forward_costs_its_own_points_only(graded):
    course, rows = graded
    points, cells = cell_points(A), rows["wrong_lstm_forward"]["cells"]
    assert cells["test_lstm_step_forward_cache"] < points["test_lstm_step_forward_cache"]
    for cell in BACKWARD_CELLS + ("test_lstm_forward_cache", "test_gru_step_forward_cache", "test_gru_forward_cache"):
        assert cells[cell] == points[cell], (cell, cells)   # the layer chains the wrong step right
    assert rows["wrong_lstm_forward"]["score"] == total_points(A) - (
        points["test_lstm_step_forward_cache"] - cells["test_lstm_step_forward_cache"])
    messages = verdicts.failures(course, "wrong_lstm_forward", A)
    assert any(m.startswith("lstm_step_forward_cache:") and "cache.tanh_c: cache[9] (tanh_c" in m
               for m in messages), messages
    assert not any(m.startswith(("lstm_step_backward:", "lstm_backward:", "lstm_truncated")) for m in messages)
    page = feedback(course, "wrong_lstm_forward")
    assert ("your lstm_step_backward is right; lstm_step_forward_cache fails its own check: fix it "
            "first (its cache[9] (tanh_c: tanh(c_t), of the new cell state) differs)") in page
    assert ("your lstm_forward chains lstm_step_forward right (checked with a stand-in lstm_step_forward); "
            "its outputs are wrong because lstm_step_forward fails its own check: fix it first") in page
    assert "lstm_forward_cache fails" not in page   # it passes by the rule of its own check


@pytest.mark.parametrize("student, wrong, kept", [
    ("wrong_lstm_step_backward", ["test_lstm_step_backward"], ["test_lstm_backward", "test_lstm_truncated_backward"]),
    ("wrong_gru_steps", ["test_gru_step_forward_cache", "test_gru_step_backward"],
     ["test_gru_forward_cache", "test_gru_backward"]),
])
def test_a_wrong_step_costs_its_own_points_not_the_layer_s(graded, student, wrong, kept):
    course, rows = graded
    points, cells = cell_points(A), rows[student]["cells"]
    for cell in wrong:
        assert cells[cell] < points[cell], (cell, cells)
    for cell in kept:
        assert cells[cell] == points[cell], (cell, cells)
    assert rows[student]["score"] == total_points(A) - sum(points[c] - cells[c] for c in wrong)
    page = feedback(course, student)
    for cell in kept:
        layer = TASKS[cell[len("test_"):]]
        assert f"your {layer.needs[0]} chains {layer.standins[0]} right" in page, (cell, page)


def test_a_wrong_chaining_costs_the_layer_and_names_it(graded):
    course, rows = graded
    points, cells = cell_points(A), rows["wrong_lstm_chaining"]["cells"]
    for cell in ("test_lstm_forward_cache", "test_lstm_backward", "test_lstm_step_forward_cache",
                 "test_lstm_step_backward"):
        assert (cells[cell] < points[cell]) == (cell in ("test_lstm_forward_cache", "test_lstm_backward")), cell
    messages = verdicts.failures(course, "wrong_lstm_chaining", A)
    assert any(m.startswith("lstm_forward_cache:") and "h: wrong at t=1" in m for m in messages), messages
    assert any(m.startswith("lstm_backward:") and "dc0: wrong" in m for m in messages), messages
    assert not any("first" in m for m in messages), messages


def test_a_wrong_gru_cache_costs_the_cache_check_only(graded):
    course, rows = graded
    points, cells = cell_points(A), rows["wrong_gru_cache"]["cells"]
    assert cells["test_gru_step_forward_cache"] < points["test_gru_step_forward_cache"]
    for cell in BACKWARD_CELLS + ("test_gru_forward_cache",):   # the layer chains the step right
        assert cells[cell] == points[cell], (cell, cells)
    messages = verdicts.failures(course, "wrong_gru_cache", A)
    assert any("cache.ah_n: cache[7] (ah_n: the n block of h_{t-1} @ Wh + bh" in m for m in messages), messages
    assert "your gru_step_backward is right; gru_step_forward_cache fails its own check" \
        in feedback(course, "wrong_gru_cache")


def test_a_wrong_backward_is_blamed_on_itself_not_on_the_wrong_forward(graded):
    course, rows = graded
    cells = rows["both_wrong"]["cells"]
    assert cells["test_lstm_step_backward"] < cell_points(A)["test_lstm_step_backward"]
    own = [m for m in verdicts.failures(course, "both_wrong", A) if m.startswith("lstm_step_backward:")]
    assert any("dprev_c: wrong" in m for m in own) and not any("first" in m for m in own), own


# ---------------------------------------------------------------- without the grader

def fixed_layouts(assignment):
    """{function: names} of every ``cache = (...)   # this layout`` line of a solution notebook."""
    found = {}
    for source in solution_cells(assignment).values():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef):
                lines = ast.get_source_segment(source, node).splitlines()
                for line in lines:
                    m = re.match(r"\s*cache = \(([\w, ]+)\)\s+# this layout", line)
                    if m:
                        found[node.name] = tuple(n.strip() for n in m.group(1).split(","))
    return found


def test_the_notebooks_cache_lines_quote_the_conventions():
    """The layouts written for the student (outside the part they complete) are CACHES'."""
    expected = {"01_rnn": {"rnn_step_forward"}, "03_gates": {"lstm_step_forward", "gru_step_forward"},
                A: {"lstm_step_forward", "gru_step_forward"}, "06_seq2seq": {"birnn_forward", "attention_forward"}}
    for assignment, functions in expected.items():
        found = fixed_layouts(assignment)
        assert set(found) == functions, (assignment, found)
        for name, names in found.items():
            parts = tuple(f"cache_{p}" for p, _, _ in CACHE_PARTS.get(name, ()))
            assert names == (parts or CACHES[name]), (assignment, name)
    text = (REPO / "solutions" / "03_gates" / "03_gates.ipynb").read_text()
    for name in ("lstm_step_forward", "gru_step_forward"):
        assert f"`cache = ({', '.join(CACHES[name])})`" in text


def test_the_students_pipeline_runs_their_forward_into_their_backward():
    """The training section joins the student's lstm_forward and lstm_backward: the
    solution's pair gives the reference's gradients."""
    names = namespace(A)
    inputs = sequence_inputs("lstm", upstream=True)({"N": 2, "T": 4, "D": 3, "H": 5, "seed": 3})
    args = [inputs[k] for k in ("x", "h0", "c0", "Wx", "Wh", "b")]
    mine = names["lstm_backward"](inputs["dh"], names["lstm_forward"](*args)[2])
    theirs = ref_lstm.lstm_backward(inputs["dh"], ref_lstm.lstm_forward(*args)[2])
    for a, b in zip(mine, theirs):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_a_cache_of_the_wrong_form_is_named_and_said_in_the_grader_s_words_on_hidden_cases():
    """Each way a forward's cache can miss the layout: the public report says which, the
    grader's report of a hidden case says so in its own words."""
    names = namespace(A)
    wrong = {
        "a list of T-1 steps": ("lstm_forward", lambda c: c[:-1], "got 2 of them"),
        "a step of 9 elements": ("lstm_forward", lambda c: [s[:-1] for s in c], "got a tuple of 9"),
        "a dict": ("lstm_step_forward", lambda c: {"x": c[0]}, "got dict"),
        "shapes varying in time": ("gru_forward", lambda c: [c[0]] + [s[:4] + (s[4][:1],) + s[5:] for s in c[1:]],
                                   "cache[t][4] changes shape from step to step (element r)"),
    }
    assert_cache_layout_errors(names, wrong)
