"""Autograde exercise 06 end to end through nbgrader: the solution, the blank release, another
correct way of writing it (loops, float32, a finite stand-in for -inf), and every seeded bug of
tests/mutants.py for this exercise, each with its message and hint."""
import re

import nbformat
import pytest
from nbgrader.validator import Validator

from autograder import batch, gradescsv, layout, verdicts
from mutants import MUTANTS, notebook
from rnnkit.tasks import TASKS
from submissions import student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("grading")
A = "06_seq2seq"
OURS = [m for m in MUTANTS if m.assignment == A]

OTHER_WAY = {
    "birnn_forward": '''
def birnn_forward(x, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b):
    N, T, _ = x.shape
    H = Wh_f.shape[0]
    h = np.zeros((N, T, 2 * H), dtype=np.float32)
    steps_f, steps_b = [None] * T, [None] * T
    s_f, s_b = np.zeros((N, H)), np.zeros((N, H))
    for t in range(T):
        s_f, steps_f[t] = rnn_step_forward(x[:, t].astype(np.float32), s_f, Wx_f, Wh_f, b_f)
        h[:, t, :H] = s_f
    for t in range(T - 1, -1, -1):
        s_b, steps_b[t] = rnn_step_forward(x[:, t].astype(np.float32), s_b, Wx_b, Wh_b, b_b)
        h[:, t, H:] = s_b
    return h, {"forward": steps_f, "backward": steps_b}
''',
    "birnn_backward": '''
def birnn_backward(dh, cache):
    N, T, H2 = dh.shape
    H = H2 // 2
    dx = np.zeros((N, T, cache["forward"][0][0].shape[1]))
    grads = [0.0] * 6
    carry = np.zeros((N, H))
    for t in range(T - 1, -1, -1):
        dx_t, carry, *g = rnn_step_backward(dh[:, t, :H] + carry, cache["forward"][t])
        dx[:, t] += dx_t
        grads[:3] = [a + b for a, b in zip(grads[:3], g)]
    carry = np.zeros((N, H))
    for t in range(T):
        dx_t, carry, *g = rnn_step_backward(dh[:, t, H:] + carry, cache["backward"][t])
        dx[:, t] += dx_t
        grads[3:] = [a + b for a, b in zip(grads[3:], g)]
    return (dx, *grads)
''',
    "attention_forward": '''
def attention_forward(q, enc, mask, Wq, Wk, v):
    N, T, He = enc.shape
    u = np.zeros((N, T, Wq.shape[1]), dtype=np.float32)
    for t in range(T):
        u[:, t] = np.tanh(q @ Wq + enc[:, t] @ Wk)
    e = np.einsum("nta,a->nt", u, v)
    e[~mask.astype(bool)] = -1e30
    alpha = np.exp(e - e.max(axis=1)[:, None])
    alpha /= alpha.sum(axis=1)[:, None]
    context = np.zeros((N, He))
    for t in range(T):
        context += alpha[:, t:t + 1] * enc[:, t]
    return context, alpha, {"q": q, "enc": enc, "W": (Wq, Wk, v), "u": u, "alpha": alpha}
''',
    "attention_backward": '''
def attention_backward(dcontext, cache):
    q, enc, u, alpha = cache["q"], cache["enc"], cache["u"], cache["alpha"]
    Wq, Wk, v = cache["W"]
    dalpha = np.einsum("nth,nh->nt", enc, dcontext)
    de = alpha * dalpha - alpha * np.einsum("nt,nt->n", alpha, dalpha)[:, None]
    da = np.einsum("nt,a,nta->nta", de, v, 1 - u * u)
    denc = np.einsum("nt,nh->nth", alpha, dcontext) + np.einsum("nta,ha->nth", da, Wk)
    return (np.einsum("nta,ha->nh", da, Wq), denc, np.einsum("nh,nta->ha", q, da),
            np.einsum("nth,nta->ha", enc, da), np.einsum("nt,nta->a", de, u))
''',
}

STUDENTS = {"solution": student_notebook(A), "blank": student_notebook(A, released=True),
            "other_way": student_notebook(A, OTHER_WAY), **{m.name: notebook(m) for m in OURS}}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading06")
    subs = write_submissions(root / "submissions", A, STUDENTS)
    course = root / "course"
    outcomes = batch.autograde(course, layout.prepare_course(course, subs))
    assert all(o.ok for o in outcomes), outcomes
    return course, {r["student"]: r for r in gradescsv.grade_rows(course)}, subs


def test_solution_and_another_correct_way_get_full_marks_and_the_blank_zero(graded):
    course, rows, _ = graded
    assert rows["solution"]["score"] == rows["solution"]["max_score"] == 12
    assert rows["other_way"]["score"] == 12, verdicts.failures(course, "other_way", A)
    assert rows["blank"]["score"] == 0
    assert any("not implemented yet" in m for m in verdicts.failures(course, "blank", A))


@pytest.mark.parametrize("mutant", OURS, ids=lambda m: m.name)
def test_every_mutant_loses_points_with_its_message_and_hint(graded, mutant):
    course, rows, _ = graded
    row, control = rows[mutant.name], rows["solution"]
    cell = f"test_{mutant.task}"
    messages = verdicts.failures(course, mutant.name, A)
    assert row["cells"][cell] < control["cells"][cell], f"SURVIVED: {mutant.name} {messages}"
    outputs = "|".join(map(re.escape, TASKS[mutant.task].outputs))
    assert any(re.match(rf"^{mutant.task}: \[[^]]*\] ({outputs}): ", m) for m in messages), messages
    for words in mutant.expect:
        assert any(words in m for m in messages), f"no message says {words!r}: {messages}"
    assert not any("BEGIN HIDDEN" in m or "check(" in m for m in messages)


@pytest.mark.parametrize("student", ["attention_mask_ignored", "birnn_bwd_dx_not_rereversed", "solution"])
def test_what_the_student_sees_before_submitting_is_what_the_grade_says(graded, student):
    """nbgrader validate (the student's check() on the public cases) fails exactly the test
    cells that lose points in the grade."""
    _, rows, subs = graded
    path = subs / student / A / f"{A}.ipynb"
    nb = nbformat.read(path, as_version=4)
    by_source = {c.source.strip(): c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                 if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")}
    failed = {by_source[f["source"]] for f in Validator(ignore_checksums=True).validate(str(path)).get("failed", [])}
    full = rows["solution"]["cells"]
    lost = {cell for cell, score in rows[student]["cells"].items() if cell in full and score < full[cell]}
    assert failed == lost
    assert bool(failed) == (student != "solution")
