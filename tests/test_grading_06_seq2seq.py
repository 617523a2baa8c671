"""Autograde exercise 06 end to end through nbgrader: the solution, the blank release, another
correct way of writing it (loops, float32, a finite stand-in for -inf), and every seeded bug of
tests/mutants.py for this exercise, each with its message and hint. One mistake, one penalty
(issue 21, item 2): each backward is graded on the cache the conventions fix, built by the
grader from the reference forward; a wrong forward costs its own checks only and the right
backward's feedback points at the forward's check."""
import re

import nbformat
import numpy as np
import pytest
from nbgrader.validator import Validator

from autograder import verdicts
from autograder.experiments.seq2seq import REFERENCE_FUNCTIONS
from autograder.verify import REFERENCES
from mutants import INNER, MUTANTS, notebook, source
from page_text import visible_text
from points import cell_points, total_points
from public_check import assert_cache_layout_errors, namespace
from rnnkit import seq2seq
from rnnkit.tasks import TASKS
from rnnkit.tasks_seq2seq import ATTENTION_ARGS, BIRNN_P
from submissions import grade_students, student_notebook

pytestmark = pytest.mark.xdist_group("grading")
A = "06_seq2seq"
OURS = [m for m in MUTANTS if m.assignment == A]

#: Right functions written another way: loops, float32 inside, lists for tuples, a finite
#: stand-in for -inf; the caches in the layout the conventions fix (CACHES, CACHE_PARTS).
OTHER_WAY = {
    "birnn_forward": '''
def birnn_forward(x, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b):
    N, T, _ = x.shape
    H = Wh_f.shape[0]
    h = np.zeros((N, T, 2 * H), dtype=np.float32)
    steps_f, steps_b = [], []
    s_f, s_b = np.zeros((N, H)), np.zeros((N, H))
    for t in range(T):
        s_f, step = rnn_step_forward(x[:, t].astype(np.float32), s_f, Wx_f, Wh_f, b_f)
        h[:, t, :H] = s_f
        steps_f.append(step)
    for t in range(T - 1, -1, -1):
        s_b, step = rnn_step_forward(x[:, t].astype(np.float32), s_b, Wx_b, Wh_b, b_b)
        h[:, t, H:] = s_b
        steps_b.append(step)
    return h, [steps_f, steps_b]
''',
    "birnn_backward": '''
def birnn_backward(dh, cache):
    steps_f, steps_b = cache
    N, T, H2 = dh.shape
    H = H2 // 2
    dx = np.zeros((N, T, steps_f[0][0].shape[1]))
    grads = [0.0] * 6
    carry = np.zeros((N, H))
    for t in range(T - 1, -1, -1):
        dx_t, carry, *g = rnn_step_backward(dh[:, t, :H] + carry, steps_f[t])
        dx[:, t] += dx_t
        grads[:3] = [a + b for a, b in zip(grads[:3], g)]
    carry = np.zeros((N, H))
    for k in range(T - 1, -1, -1):   # the backward direction's step k read x_{T-1-k}
        dx_t, carry, *g = rnn_step_backward(dh[:, T - 1 - k, H:] + carry, steps_b[k])
        dx[:, T - 1 - k] += dx_t
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
    return context, alpha, [q, enc, Wq, Wk, v, u, alpha]
''',
    "attention_backward": '''
def attention_backward(dcontext, cache):
    q, enc, Wq, Wk, v, u, alpha = cache
    dalpha = np.einsum("nth,nh->nt", enc, dcontext)
    de = alpha * dalpha - alpha * np.einsum("nt,nt->n", alpha, dalpha)[:, None]
    da = np.einsum("nt,a,nta->nta", de, v, 1 - u * u)
    denc = np.einsum("nt,nh->nth", alpha, dcontext) + np.einsum("nta,ha->nth", da, Wk)
    return (np.einsum("nta,ha->nh", da, Wq), denc, np.einsum("nh,nta->ha", q, da),
            np.einsum("nth,nta->ha", enc, da), np.einsum("nt,nta->a", de, u))
''',
}

#: One mistake in a forward and one in the backward that uses its cache.
_MASK = next(m for m in OURS if m.name == "attention_mask_ignored")
_TANH = next(m for m in OURS if m.name == "attention_bwd_tanh_derivative")
BOTH_WRONG = {_MASK.cell: source(_MASK), _TANH.cell: source(_TANH)}

#: A wrong chaining (the backward direction not put back in time order) over a wrong pasted RNN.
_LATE = next(m for m in OURS if m.name == "birnn_not_rereversed")
_NO_BIAS = next(m for m in INNER if m.name == "s2s_pasted_rnn_forward_no_bias")
CHAIN_AND_RNN_WRONG = {_LATE.cell: source(_LATE), _NO_BIAS.cell: source(_NO_BIAS)}

STUDENTS = {"solution": student_notebook(A), "blank": student_notebook(A, released=True),
            "other_way": student_notebook(A, OTHER_WAY), "both_wrong": student_notebook(A, BOTH_WRONG),
            "chain_and_rnn_wrong": student_notebook(A, CHAIN_AND_RNN_WRONG),
            **{m.name: notebook(m) for m in OURS + INNER}}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading06")
    course, outcomes, rows = grade_students(root, A, STUDENTS)
    assert all(o.ok for o in outcomes.values()), outcomes
    return course, rows, root / "submissions"


def test_solution_and_another_correct_way_get_full_marks_and_the_blank_zero(graded):
    course, rows, _ = graded
    assert rows["solution"]["score"] == rows["solution"]["max_score"] == total_points(A)
    assert rows["other_way"]["score"] == total_points(A), verdicts.failures(course, "other_way", A)
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


@pytest.mark.parametrize("mutant", INNER, ids=lambda m: m.name)
def test_a_wrong_pasted_rnn_costs_the_bidirectional_layer_nothing(graded, mutant):
    """The pasted RNN is exercise 1's (graded there); the layer chains it right, which its run
    with a stand-in rnn_forward / rnn_backward shows: full marks, and the report says where."""
    course, rows, _ = graded
    assert rows[mutant.name]["score"] == total_points(A), verdicts.failures(course, mutant.name, A)
    page = feedback(course, mutant.name)
    for words in mutant.expect:
        assert words in page, (words, page)


def test_a_wrong_chaining_over_a_wrong_pasted_rnn_blames_the_layer_and_says_both(graded):
    course, rows, _ = graded
    cells, points = rows["chain_and_rnn_wrong"]["cells"], cell_points(A)
    assert cells["test_birnn_forward"] < points["test_birnn_forward"]
    own = [m for m in verdicts.failures(course, "chain_and_rnn_wrong", A) if m.startswith("birnn_forward:")]
    assert own and all("wrong with a stand-in rnn_forward too, so birnn_forward itself is wrong; "
                       "rnn_step_forward also fails its own check" in m for m in own if "hidden" not in m), own
    assert not any("first" in m for m in own), own


@pytest.mark.parametrize("student", ["attention_mask_ignored", "birnn_bwd_dx_not_rereversed", "solution",
                                     "s2s_pasted_rnn_forward_no_bias"])
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
    assert bool(failed) == (student not in ("solution", "s2s_pasted_rnn_forward_no_bias"))


FORWARD_CELLS = ("test_birnn_forward", "test_birnn_forward_cache", "test_attention_forward",
                 "test_attention_forward_cache")
BACKWARD_OF = {"birnn": "test_birnn_backward", "attention": "test_attention_backward"}
FORWARD_MUTANTS = [m for m in OURS if m.task in {c[len("test_"):] for c in FORWARD_CELLS}]


def feedback(course, student):
    return " ".join(visible_text((course / "feedback" / student / A / f"{A}.html").read_text()).split())


@pytest.mark.parametrize("mutant", FORWARD_MUTANTS, ids=lambda m: m.name)
def test_a_wrong_forward_costs_its_own_checks_only(graded, mutant):
    """The backwards keep their points; the score lost is the forward cells' alone."""
    course, rows, _ = graded
    points, cells = cell_points(A), rows[mutant.name]["cells"]
    assert set(FORWARD_CELLS) | set(BACKWARD_OF.values()) <= set(points)
    for cell in BACKWARD_OF.values():
        assert cells[cell] == points[cell], (cell, verdicts.failures(course, mutant.name, A))
    lost = sum(points[c] - cells[c] for c in FORWARD_CELLS)
    assert lost > 0 and rows[mutant.name]["score"] == total_points(A) - lost


@pytest.mark.parametrize("student, backward, forward", [
    ("birnn_shared_weights", "birnn_backward", "birnn_forward_cache"),
    ("birnn_cache_bwd_in_time_order", "birnn_backward", "birnn_forward_cache"),
    ("attention_mask_ignored", "attention_backward", "attention_forward_cache"),
    ("attention_cache_u_before_tanh", "attention_backward", "attention_forward_cache"),
])
def test_the_right_backward_points_at_the_forward_s_check(graded, student, backward, forward):
    course, _, _ = graded
    assert f"your {backward} is right; {forward} fails its own check: fix it first (" \
        in feedback(course, student)
    assert not any(m.startswith(f"{backward}:") for m in verdicts.failures(course, student, A))


def test_a_wrong_backward_is_blamed_on_itself_not_on_the_wrong_forward(graded):
    course, rows, _ = graded
    cells, points = rows["both_wrong"]["cells"], cell_points(A)
    assert cells["test_attention_backward"] < points["test_attention_backward"]
    assert cells["test_attention_forward"] < points["test_attention_forward"]
    own = [m for m in verdicts.failures(course, "both_wrong", A) if m.startswith("attention_backward:")]
    assert any("dWq: wrong" in m and "gradient through the scores" in m for m in own), own
    assert not any("first" in m for m in own), own


# ---------------------------------------------------------------- without the grader

def test_the_students_pipeline_runs_their_forward_into_their_backward():
    """Section 3 joins the student's forwards and backwards: the solution's pairs give the
    references' gradients on the caches they return themselves."""
    names = namespace(A)
    for task, forward, backward, args, upstream in (
            ("birnn_backward", "birnn_forward", "birnn_backward", ("x",) + BIRNN_P, "dh"),
            ("attention_backward", "attention_forward", "attention_backward", ATTENTION_ARGS, "dcontext")):
        inputs = TASKS[task].make_inputs(TASKS[task].public[0])
        values = [inputs[k] for k in args]
        mine = names[backward](inputs[upstream], names[forward](*values)[-1])
        theirs = REFERENCES[backward](inputs[upstream], REFERENCES[forward](*values)[-1])
        for a, b in zip(mine, theirs):
            assert np.allclose(a, b, rtol=1e-10, atol=1e-12), task


def test_the_training_section_runs_the_student_s_functions_end_to_end():
    """Section 3's encoder-decoder made of the solution notebook's functions (their caches
    passed from forward to backward) has the references' loss and gradients."""
    names = namespace(A)
    mine = {name: names[name] for name in seq2seq.FUNCTION_NAMES}
    rng = np.random.default_rng(2)
    params = seq2seq.init_params(5, 3, 4, 6, 5, rng)
    batch_ = seq2seq.make_batch(rng, 4, [1, 3, 5], 5)
    loss, grads = seq2seq.loss_and_grads(params, *batch_, mine)
    want, want_grads = seq2seq.loss_and_grads(params, *batch_, REFERENCE_FUNCTIONS)
    assert np.isclose(loss, want, rtol=1e-10)
    for k, g in want_grads.items():
        assert np.allclose(grads[k], g, rtol=1e-8, atol=1e-12), k


def test_a_cache_of_the_wrong_form_is_named_and_said_in_the_grader_s_words_on_hidden_cases():
    """Each way the two-part cache of birnn_forward (or attention's) can miss the layout: the
    public report says which, the grader's report of a hidden case says so in its own words."""
    names = namespace(A)
    wrong = {
        "one part": ("birnn_forward", lambda c: c[:1],
                     "cache must be a tuple of 2 elements (fwd, bwd), got a tuple of 1"),
        "a dict": ("birnn_forward", lambda c: {"f": c[0], "b": c[1]}, "cache must be a tuple of 2 elements"),
        "a part of T-1 steps": ("birnn_forward", lambda c: (c[0], c[1][:-1]),
                                "cache[1] must be a list of the T=4 steps' caches, got 3 of them"),
        "a step without next_h": ("birnn_forward", lambda c: (c[0], [s[:4] for s in c[1]]),
                                  "cache[1][0] must be a tuple of 5 elements (x, prev_h, Wx, Wh, next_h)"),
        "attention without u": ("attention_forward", lambda c: c[:5] + c[6:], "must be a tuple of 7 elements"),
    }
    assert_cache_layout_errors(names, wrong)
