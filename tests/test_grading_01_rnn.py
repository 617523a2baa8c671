"""Autograde exercise 01 end to end on typical submissions, through nbgrader."""
import subprocess
import sys

import pytest

from autograder import verdicts
from page_text import assert_offline_feedback, visible_text
from submissions import grade_students, mutate, solution_cells, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_grading_01_rnn")   # its module-scoped fixture grades once: every test of the module on one worker
A = "01_rnn"
SOL = solution_cells(A)

LOOPS = {
    "rnn_step_forward": '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    N, H = prev_h.shape
    next_h = np.empty((N, H))
    for n in range(N):
        for j in range(H):
            a = b[j]
            for d in range(x.shape[1]):
                a += x[n, d] * Wx[d, j]
            for k in range(H):
                a += prev_h[n, k] * Wh[k, j]
            next_h[n, j] = np.tanh(a)
    return next_h, (x, prev_h, Wx, Wh, next_h)
''',
    "rnn_step_backward": '''
def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, h = cache
    da = dnext_h * (1 - h ** 2)
    dx = np.einsum("nj,dj->nd", da, Wx)
    dprev_h = np.einsum("nj,kj->nk", da, Wh)
    dWx = np.einsum("nd,nj->dj", x, da)
    dWh = np.einsum("nk,nj->kj", prev_h, da)
    db = np.einsum("nj->j", da)
    return dx, dprev_h, dWx, dWh, db
''',
    "rnn_forward": '''
def rnn_forward(x, h0, Wx, Wh, b):
    x32 = x.astype(np.float32)
    hs, caches, h = [], [], h0
    for t in range(x.shape[1]):
        h, c = rnn_step_forward(x32[:, t], h, Wx, Wh, b)
        hs.append(h)
        caches.append(c)
    return np.stack(hs, axis=1).astype(np.float32), caches
''',
    "rnn_backward": '''
def rnn_backward(dh, cache):
    grads = None
    carry = np.zeros_like(dh[:, 0])
    dxs = []
    for t in range(dh.shape[1] - 1, -1, -1):
        dx_t, carry, *dW = rnn_step_backward(dh[:, t] + carry, cache[t])
        dxs.insert(0, dx_t)
        grads = dW if grads is None else [g + d for g, d in zip(grads, dW)]
    return (np.stack(dxs, axis=1), carry, *grads)
''',
}

STUDENTS = {
    "solution": student_notebook(A),
    "blank": student_notebook(A, released=True),
    "loops_einsum_float32": student_notebook(A, LOOPS),
    "sigmoid_activation": student_notebook(A, {"rnn_step_forward": mutate(
        SOL["rnn_step_forward"], "np.tanh(x @ Wx + prev_h @ Wh + b)", "1 / (1 + np.exp(-(x @ Wx + prev_h @ Wh + b)))")}),
    "no_recurrent_term": student_notebook(A, {"rnn_step_forward": mutate(
        SOL["rnn_step_forward"], "np.tanh(x @ Wx + prev_h @ Wh + b)", "np.tanh(x @ Wx + b)")}),
    "no_bias": student_notebook(A, {"rnn_step_forward": mutate(
        SOL["rnn_step_forward"], "np.tanh(x @ Wx + prev_h @ Wh + b)", "np.tanh(x @ Wx + prev_h @ Wh)")}),
    "no_accumulation": student_notebook(A, {"rnn_backward": mutate(
        SOL["rnn_backward"], "dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t", "dWx, dWh, db = dWx_t, dWh_t, db_t")}),
    # one mistake, one penalty for the layers (rnnkit.standins): a wrong step costs its own points only
    "no_tanh_derivative": student_notebook(A, {"rnn_step_backward": mutate(
        SOL["rnn_step_backward"], "da = dnext_h * (1 - next_h ** 2)", "da = dnext_h * (1 - next_h)")}),
    "inlined_layer_no_bias": student_notebook(A, {
        "rnn_step_forward": mutate(SOL["rnn_step_forward"], "prev_h @ Wh + b)", "prev_h @ Wh)"),
        "rnn_forward": mutate(SOL["rnn_forward"], "prev_h, step_cache = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)",
                              "next_h = np.tanh(x[:, t, :] @ Wx + prev_h @ Wh + b)\n"
                              "        step_cache = (x[:, t, :], prev_h, Wx, Wh, next_h)\n        prev_h = next_h")}),
    "h0_every_step": student_notebook(A, {"rnn_forward": mutate(
        SOL["rnn_forward"], "rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)", "rnn_step_forward(x[:, t, :], h0, Wx, Wh, b)")}),
    "dx_reversed_slot": student_notebook(A, {"rnn_backward": mutate(
        SOL["rnn_backward"], "dx[:, t], dprev_h, dWx_t", "dx[:, T - 1 - t], dprev_h, dWx_t")}),
    "late_store_no_bias": student_notebook(A, {
        "rnn_step_forward": mutate(SOL["rnn_step_forward"], "prev_h @ Wh + b)", "prev_h @ Wh)"),
        "rnn_forward": mutate(SOL["rnn_forward"],
                              "        prev_h, step_cache = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)\n"
                              "        h[:, t, :] = prev_h\n",
                              "        h[:, t, :] = prev_h\n"
                              "        prev_h, step_cache = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)\n")}),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course, outcomes, rows = grade_students(tmp_path_factory.mktemp("grading"), A, STUDENTS)
    assert all(o.ok for o in outcomes.values()), outcomes
    return course, rows


def test_solution_gets_full_marks(graded):
    _, rows = graded
    assert rows["solution"]["score"] == rows["solution"]["max_score"] == 10


def test_blank_release_gets_zero(graded):
    course, rows = graded
    assert rows["blank"]["score"] == 0
    assert any("not implemented yet" in m for m in verdicts.failures(course, "blank", A))


def test_correct_loops_einsum_float32_gets_full_marks(graded):
    course, rows = graded
    assert rows["loops_einsum_float32"]["score"] == 10, verdicts.failures(course, "loops_einsum_float32", A)


@pytest.mark.parametrize("student, cell, words", [
    ("sigmoid_activation", "test_rnn_step_forward", "next_h: wrong"),
    ("no_recurrent_term", "test_rnn_step_forward", "next_h: wrong"),
    ("no_accumulation", "test_rnn_backward", "dWx: wrong"),
])
def test_wrong_implementations_lose_points_with_a_message(graded, student, cell, words):
    course, rows = graded
    row = rows[student]
    assert row["score"] < row["max_score"]
    assert row["cells"][cell] < rows["solution"]["cells"][cell]
    messages = verdicts.failures(course, student, A)
    assert any(words in m for m in messages), messages
    assert not any("BEGIN HIDDEN" in m or "check(" in m for m in messages)


def test_one_mistake_one_penalty(graded):
    """A wrong forward step costs its own points only: the backward passes run on the cache the
    conventions fix, the layer that calls the step is also run with a stand-in for it."""
    course, rows = graded
    cells, full = rows["no_bias"]["cells"], rows["solution"]["cells"]
    assert cells["test_rnn_step_forward"] == 0
    for cell in ("test_rnn_forward", "test_rnn_step_backward", "test_rnn_backward", "test_numerical_gradient"):
        assert cells[cell] == full[cell], (cell, cells)
    messages = verdicts.failures(course, "no_bias", A)
    assert any(m.startswith("rnn_step_forward:") and "bias b is missing" in m for m in messages), messages
    assert not any(m.startswith(("rnn_forward:", "rnn_step_backward:", "rnn_backward:")) for m in messages), messages
    page = " ".join(visible_text((course / "feedback" / "no_bias" / A / f"{A}.html").read_text()).split())
    assert "your rnn_step_backward is right; rnn_step_forward fails its own check" in page
    assert ("your rnn_forward chains rnn_step_forward right (checked with a stand-in rnn_step_forward); its "
            "outputs are wrong because rnn_step_forward fails its own check: fix it first") in page


def test_a_wrong_step_backward_costs_the_layer_nothing(graded):
    course, rows = graded
    cells, full = rows["no_tanh_derivative"]["cells"], rows["solution"]["cells"]
    assert cells["test_rnn_step_backward"] < full["test_rnn_step_backward"]
    assert cells["test_rnn_backward"] == full["test_rnn_backward"], cells
    messages = verdicts.failures(course, "no_tanh_derivative", A)
    assert messages and all(m.startswith("rnn_step_backward:") for m in messages), messages


def test_a_layer_that_inlines_its_step_is_graded_on_its_own_run(graded):
    course, rows = graded
    cells, full = rows["inlined_layer_no_bias"]["cells"], rows["solution"]["cells"]
    assert cells["test_rnn_step_forward"] == 0 and cells["test_rnn_forward"] == full["test_rnn_forward"], cells


@pytest.mark.parametrize("student, cell, words", [
    ("h0_every_step", "test_rnn_forward", "h: wrong at t=1"),
    ("dx_reversed_slot", "test_rnn_backward", "dx: wrong"),
    ("late_store_no_bias", "test_rnn_forward",
     "wrong with a stand-in rnn_step_forward too, so rnn_forward itself is wrong; rnn_step_forward also fails"),
])
def test_a_wrong_chaining_loses_the_layer_s_points_and_names_the_layer(graded, student, cell, words):
    course, rows = graded
    assert rows[student]["cells"][cell] < rows["solution"]["cells"][cell]
    messages = verdicts.failures(course, student, A)
    layer = cell[len("test_"):]
    assert any(m.startswith(f"{layer}:") and words in m for m in messages), messages
    assert not any("fix rnn_step_forward first" in m or "fix rnn_step_backward first" in m for m in messages)


def test_accumulation_bug_is_located_in_time(graded):
    course, _ = graded
    messages = [m for m in verdicts.failures(course, "no_accumulation", A) if "dWh" in m]
    # Only t=0's contribution survives the overwrite: sequences of length 1 are right.
    assert messages and all("once step t=1 is included" in m for m in messages), messages


def test_feedback_has_no_hidden_tests(graded):
    course, _ = graded
    page = (course / "feedback" / "no_accumulation" / A / f"{A}.html").read_text()
    assert_offline_feedback(page, A, "no_accumulation's feedback")
    assert "dWx: wrong" in visible_text(page)


def test_grade_command_prints_table_and_csv(tmp_path):
    subs = write_submissions(tmp_path / "subs", A, {k: STUDENTS[k] for k in ("solution", "no_recurrent_term")})
    out = subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--course", str(tmp_path / "c")],
                         capture_output=True, text=True, check=True)
    assert "solution" in out.stdout and "10.00 / 10" in out.stdout
    assert "next_h: wrong" in out.stdout
    csv = (tmp_path / "c" / "grades.csv").read_text().splitlines()
    assert csv[0].startswith("student,assignment,score,max_score,awaiting_points,test_numerical_gradient,test_rnn_backward")
    assert len(csv) == 3
