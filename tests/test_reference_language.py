"""Language-model references against torch autograd (float64) and finite differences; seeded bugs."""
import warnings

import numpy as np
import pytest

from autograder.reference import language as ref
from autograder.reference.language import (embedding_backward, embedding_forward, log_softmax,
                                           sample_next, softmax, temporal_affine_backward,
                                           temporal_affine_forward, temporal_softmax_loss)
from ci import require_module
from mutants_language import CASES, MUTANTS
from reference_support import (SHAPES, assert_fd_close, assert_torch_close, numeric_gradients,
                               torch_run)
from rnnkit.conventions import ATOL, RTOL

# (N, T, V, D): unseen-looking shapes, T = 1, N = 1, more ids than positions and fewer
LM_SHAPES = [(N, T, H + 2, D) for N, D, H, T in SHAPES] + [(2, 1, 9, 3), (5, 6, 3, 2)]


def make_lm(shape):
    """Seeded ids x, y (N, T), mask (N, T) with padding, W_embed (V, D), h (N, T, D), W_out, b_out."""
    N, T, V, D = shape
    rng = np.random.default_rng([11, *shape])
    x, y = rng.integers(0, V, size=(N, T)), rng.integers(0, V, size=(N, T))
    mask = rng.uniform(size=(N, T)) < 0.7
    mask[0, 0] = True
    if N > 1:
        mask[-1] = False  # a fully masked row
    return {"x": x, "y": y, "mask": mask, "W_embed": rng.standard_normal((V, D)),
            "h": rng.standard_normal((N, T, D)), "W_out": rng.standard_normal((D, V)),
            "b_out": rng.standard_normal(V), "dout_embed": rng.standard_normal((N, T, D)),
            "dscores": rng.standard_normal((N, T, V)), "scores": 3 * rng.standard_normal((N, T, V))}


# ---------------------------------------------------------------- embedding


@pytest.mark.parametrize("shape", LM_SHAPES)
def test_embedding_matches_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    p = make_lm(shape)
    out, cache = embedding_forward(p["x"], p["W_embed"])
    t_outs, t_grads = torch_run(torch, lambda W: torch.nn.functional.embedding(torch.tensor(p["x"]), W),
                                [p["W_embed"]], [p["dout_embed"]])
    assert_torch_close([out], t_outs)
    assert_torch_close([embedding_backward(p["dout_embed"], cache)], t_grads)


def test_embedding_is_one_hot_times_matrix_and_accumulates_repeats():
    x = np.array([[3, 3, 3], [0, 3, 1]])
    W = np.arange(20.0).reshape(5, 4)
    out, cache = embedding_forward(x, W)
    one_hot = np.eye(5)[x]                                   # (N, T, V)
    np.testing.assert_array_equal(out, one_hot @ W)
    dout = np.ones((2, 3, 4))
    dW = embedding_backward(dout, cache)
    np.testing.assert_array_equal(dW[:, 0], [1, 1, 0, 4, 0])   # id 3 occurs four times
    np.testing.assert_array_equal(dW, np.einsum("ntv,ntd->vd", one_hot, dout))


# ---------------------------------------------------------------- temporal affine


@pytest.mark.parametrize("shape", LM_SHAPES)
def test_temporal_affine_matches_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    p = make_lm(shape)
    inputs = (p["h"], p["W_out"], p["b_out"])
    scores, cache = temporal_affine_forward(*inputs)
    t_outs, t_grads = torch_run(torch, lambda h, W, b: h @ W + b, inputs, [p["dscores"]])
    assert_torch_close([scores], t_outs)
    assert_torch_close(temporal_affine_backward(p["dscores"], cache), t_grads)


@pytest.mark.parametrize("shape", LM_SHAPES[:3])
def test_temporal_affine_finite_differences(shape):
    p = make_lm(shape)
    inputs = [p["h"], p["W_out"], p["b_out"]]
    _, cache = temporal_affine_forward(*inputs)

    def loss(*args):
        return np.sum(temporal_affine_forward(*args)[0] * p["dscores"])

    assert_fd_close(temporal_affine_backward(p["dscores"], cache), numeric_gradients(loss, inputs))


# ---------------------------------------------------------------- masked loss


def torch_masked_loss(torch, p):
    def fn(scores):
        each = torch.nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]),
                                                 torch.tensor(p["y"].ravel()), reduction="none")
        mask = torch.tensor(p["mask"].ravel(), dtype=torch.float64)
        return (each * mask).sum() / mask.sum().clamp(min=1.0)
    return torch_run(torch, fn, [p["scores"]], [np.array(1.0)])


@pytest.mark.parametrize("shape", LM_SHAPES)
def test_masked_loss_matches_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    p = make_lm(shape)
    loss, dscores = temporal_softmax_loss(p["scores"], p["y"], p["mask"])
    (t_loss,), (t_grad,) = torch_masked_loss(torch, p)
    assert abs(loss - t_loss) <= 1e-12
    assert_torch_close([dscores], [t_grad])
    if shape[0] > 1:
        assert np.all(dscores[-1] == 0)  # the fully masked row gets no gradient


@pytest.mark.parametrize("shape", LM_SHAPES[:3])
def test_masked_loss_finite_differences(shape):
    p = make_lm(shape)
    _, dscores = temporal_softmax_loss(p["scores"], p["y"], p["mask"])
    numeric = numeric_gradients(lambda s: temporal_softmax_loss(s, p["y"], p["mask"])[0], [p["scores"]])
    assert_fd_close([dscores], numeric)


def test_masked_loss_averages_unmasked_tokens_and_handles_everything_masked():
    scores = np.zeros((2, 3, 4))                     # uniform predictions: -log(1/4) per token
    y = np.zeros((2, 3), dtype=np.int64)
    loss, _ = temporal_softmax_loss(scores, y, np.array([[1, 1, 0], [0, 0, 0]]))
    assert loss == pytest.approx(np.log(4))
    loss, dscores = temporal_softmax_loss(scores, y, np.zeros((2, 3), dtype=bool))
    assert loss == 0.0 and not dscores.any()


def test_masked_loss_large_logits_no_overflow():
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    rng = np.random.default_rng(5)
    p = {"scores": 1e4 * rng.standard_normal((2, 3, 5)), "y": rng.integers(0, 5, size=(2, 3)),
         "mask": np.ones((2, 3), dtype=bool)}
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        loss, dscores = temporal_softmax_loss(p["scores"], p["y"], p["mask"])
    (t_loss,), (t_grad,) = torch_masked_loss(torch, p)
    assert np.isfinite(loss) and abs(loss - t_loss) <= 1e-9 * abs(t_loss)
    assert_torch_close([dscores], [t_grad])


# ---------------------------------------------------------------- softmax and sampling


def test_softmax_temperature_matches_torch():
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    scores = np.random.default_rng(2).standard_normal((3, 4, 7)) * 4
    for temperature in (0.25, 1.0, 2.0):
        expected = torch.softmax(torch.tensor(scores) / temperature, dim=-1).numpy()
        assert_torch_close([softmax(scores, temperature)], [expected])
    np.testing.assert_allclose(np.exp(log_softmax(scores)), softmax(scores), rtol=1e-15)
    with pytest.raises(ValueError, match="temperature > 0"):
        softmax(scores, 0.0)


def test_sample_greedy_at_temperature_zero():
    scores = np.array([[0.1, 2.0, -1.0], [5.0, 5.0, 1.0]])
    ids = sample_next(scores, 0.0, np.array([0.99, 0.0]))
    assert ids.dtype == np.int64 and ids.tolist() == [1, 0]  # lowest id on ties


def test_sample_inverse_cdf_is_exact_and_follows_softmax():
    scores = np.log(np.array([[0.2, 0.5, 0.3]]))
    draws = {0.0: 0, 0.1999: 0, 0.2001: 1, 0.6999: 1, 0.7001: 2, 0.999999: 2}
    for u, expected in draws.items():
        assert sample_next(scores, 1.0, np.array([u]))[0] == expected, u
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(6)
    for temperature in (0.5, 2.0):
        u = (np.arange(20000) + 0.5) / 20000             # a fine grid of draws
        ids = sample_next(np.tile(logits, (len(u), 1)), temperature, u)
        freq = np.bincount(ids, minlength=6) / len(u)
        np.testing.assert_allclose(freq, softmax(logits, temperature), atol=1e-4)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        sample_next(scores, -1.0, np.array([0.5]))


def test_sample_never_out_of_range_when_cdf_rounds_below_one():
    scores = np.array([[0.0, -800.0, -800.0]])
    assert sample_next(scores, 1.0, np.array([1.0 - 1e-17]))[0] in (0, 1, 2)
    assert sample_next(np.zeros((1, 3)), 1.0, np.array([np.nextafter(1.0, 0.0)]))[0] == 2


# ---------------------------------------------------------------- seeded bugs


def outputs(function, fn, case):
    """What the grader compares: forward outputs, or backward gradients given the reference's cache."""
    if function.endswith("_backward"):
        forward = getattr(ref, function.replace("_backward", "_forward"))
        _, cache = forward(*case["forward"])
        out = fn(case["dout"], cache)
    elif function.endswith("_forward"):
        out = fn(*case["forward"])[0]
    else:
        out = fn(*case["args"])
    return [np.asarray(o, dtype=float) for o in (out if isinstance(out, tuple) else (out,))]


def agree(ours, theirs):
    return all(a.shape == b.shape and np.allclose(a, b, rtol=RTOL, atol=ATOL) for a, b in zip(ours, theirs))


@pytest.mark.parametrize("m", MUTANTS, ids=[m.mutant.__name__ for m in MUTANTS])
def test_mutants_differ(m):
    case = CASES[m.case]()
    reference = outputs(m.function, getattr(ref, m.function), case)
    assert all(np.all(np.isfinite(r)) for r in reference)
    assert not agree(outputs(m.function, m.mutant, case), reference), m.bug
