"""Exercise 6's references against torch autograd (float64) and finite differences; the
tasks' probes and hints on the typical mistakes (tests/mutants_seq2seq.py), graded in process."""
import numpy as np
import pytest

from autograder import verify
from autograder.reference.seq2seq import (attention_backward, attention_forward, birnn_backward,
                                          birnn_forward)
from ci import require_module
from mutants_seq2seq import MUTANTS
from reference_support import (assert_fd_close, assert_torch_close, numeric_gradients, torch_run)
from rnnkit import compare, wire
from rnnkit.tasks import TASKS

BI_SHAPES = [(1, 1, 1, 1), (2, 3, 4, 5), (3, 5, 2, 1), (4, 2, 3, 7)]            # (N, D, H, T)
ATT_SHAPES = [(1, 1, 1, 1, 1), (2, 4, 3, 5, 4), (3, 6, 2, 2, 3), (5, 2, 4, 3, 2)]  # (N, T, Hq, He, A)


def bi_case(shape):
    N, D, H, T = shape
    return TASKS["birnn_forward"].make_inputs({"N": N, "T": T, "D": D, "H": H, "seed": sum(shape)})


def att_case(shape):
    N, T, Hq, He, A = shape
    return TASKS["attention_forward"].make_inputs({"N": N, "T": T, "Hq": Hq, "He": He, "A": A, "seed": 3})


BI_ARGS = ("x", "Wx_f", "Wh_f", "b_f", "Wx_b", "Wh_b", "b_b")
ATT_ARGS = ("q", "enc", "Wq", "Wk", "v")


def torch_birnn(torch, x, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b):
    """torch's own bidirectional nn.RNN (batch_first) with our weights (transposed, bias_hh = 0)."""
    D, H = Wx_f.shape
    rnn = torch.nn.RNN(D, H, batch_first=True, bidirectional=True, dtype=torch.float64)
    zero = torch.zeros(H, dtype=torch.float64)
    for name, value in (("weight_ih_l0", Wx_f.T), ("weight_hh_l0", Wh_f.T), ("bias_ih_l0", b_f),
                        ("bias_hh_l0", zero), ("weight_ih_l0_reverse", Wx_b.T),
                        ("weight_hh_l0_reverse", Wh_b.T), ("bias_ih_l0_reverse", b_b),
                        ("bias_hh_l0_reverse", zero)):
        del rnn._parameters[name]
        setattr(rnn, name, value)
    rnn._flat_weights = [getattr(rnn, n) for n in rnn._flat_weights_names]
    return rnn(x)[0]


@pytest.mark.parametrize("shape", BI_SHAPES)
def test_birnn_matches_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    p = bi_case(shape)
    h, cache = birnn_forward(*(p[k] for k in BI_ARGS))
    t_outs, t_grads = torch_run(torch, lambda *a: torch_birnn(torch, *a), [p[k] for k in BI_ARGS], [p["dh"]])
    assert_torch_close([h], t_outs)
    assert_torch_close(list(birnn_backward(p["dh"], cache)), t_grads)


def torch_attention(torch, mask):
    def run(q, enc, Wq, Wk, v):
        u = torch.tanh((q @ Wq)[:, None, :] + enc @ Wk)
        alpha = torch.softmax((u @ v).masked_fill(~torch.tensor(mask), float("-inf")), dim=1)
        return torch.einsum("nt,nth->nh", alpha, enc), alpha
    return run


@pytest.mark.parametrize("shape", ATT_SHAPES)
def test_attention_matches_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    p = att_case(shape)
    context, alpha, cache = attention_forward(p["q"], p["enc"], p["mask"], p["Wq"], p["Wk"], p["v"])
    dalpha = np.zeros_like(alpha)   # our backward takes dcontext only
    t_outs, t_grads = torch_run(torch, torch_attention(torch, p["mask"]), [p[k] for k in ATT_ARGS],
                                [p["dcontext"], dalpha])
    assert_torch_close([context, alpha], t_outs)
    assert_torch_close(list(attention_backward(p["dcontext"], cache)), t_grads)


def test_attention_ignores_padding_and_sums_to_one():
    p = att_case((5, 2, 4, 3, 2))
    assert not p["mask"].all() and p["mask"].any(axis=1).all()
    context, alpha, cache = attention_forward(p["q"], p["enc"], p["mask"], p["Wq"], p["Wk"], p["v"])
    assert np.all(alpha[~p["mask"]] == 0.0)
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=1e-12)
    changed = p["enc"].copy()
    changed[~p["mask"]] = 1e3       # what padding holds changes nothing
    np.testing.assert_array_equal(context, attention_forward(p["q"], changed, p["mask"], p["Wq"],
                                                             p["Wk"], p["v"])[0])
    assert np.all(attention_backward(p["dcontext"], cache)[1][~p["mask"]] == 0.0)


def test_gradients_match_finite_differences():
    p = bi_case((2, 3, 2, 4))
    h, cache = birnn_forward(*(p[k] for k in BI_ARGS))
    loss = lambda *a: float(np.sum(birnn_forward(*a)[0] * p["dh"]))
    assert_fd_close(list(birnn_backward(p["dh"], cache)), numeric_gradients(loss, [p[k] for k in BI_ARGS]))
    a = att_case((2, 4, 3, 2, 3))
    _, _, cache = attention_forward(a["q"], a["enc"], a["mask"], a["Wq"], a["Wk"], a["v"])
    loss = lambda q, enc, Wq, Wk, v: float(attention_forward(q, enc, a["mask"], Wq, Wk, v)[0].ravel()
                                           @ a["dcontext"].ravel())
    assert_fd_close(list(attention_backward(a["dcontext"], cache)), numeric_gradients(loss, [a[k] for k in ATT_ARGS]))


def test_birnn_backward_direction_reads_the_sequence_backwards():
    """h[:, t, H:] depends on x_t .. x_{T-1} only; h[:, t, :H] on x_0 .. x_t only."""
    p = bi_case((1, 2, 3, 5))
    h = birnn_forward(*(p[k] for k in BI_ARGS))[0]
    x = p["x"].copy()
    x[:, 0] += 1.0
    h2 = birnn_forward(x, *(p[k] for k in BI_ARGS[1:]))[0]
    assert np.all(h2[:, :, :3] != h[:, :, :3])          # the forward states all saw x_0
    np.testing.assert_array_equal(h2[:, 1:, 3:], h[:, 1:, 3:])   # the backward ones from t=1 did not


def grade(task_name, functions, cases):
    """The grader's report of ``functions`` on ``cases`` (probes included), computed in process."""
    task = TASKS[task_name]
    results = {}
    for case in cases:
        inputs = verify.reference_inputs(task, case)   # a backward's given cache included
        key = compare.case_key(case)
        results[key] = {"outputs": dict(zip(task.outputs, map(wire.encode, task.run(functions, inputs))))}
        for probe, probe_inputs in task.probes(case, inputs).items():
            out = task.run(functions, probe_inputs)
            results[f"{key}|{probe}"] = {"outputs": dict(zip(task.outputs, map(wire.encode, out)))}
    return verify.grade_check(task_name, cases, results)


@pytest.mark.parametrize("task_name", ["birnn_forward", "birnn_forward_cache", "birnn_backward", "attention_forward",
                                       "attention_forward_cache", "attention_backward"])
def test_references_pass_their_public_cases(task_name):
    report = grade(task_name, verify.REFERENCES, TASKS[task_name].public)
    assert report.passed == report.total > 0, report.text()


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_fails_public_cases_with_its_hint(mutant):
    functions = {**verify.REFERENCES, mutant.function: mutant.mutant}
    report = grade(mutant.task, functions, TASKS[mutant.task].public)
    assert report.passed < report.total, f"SURVIVED: {mutant.name}"
    text = " ".join(report.text().split())   # lines are wrapped at 79 columns
    for words in mutant.expect:
        assert words in text, text
