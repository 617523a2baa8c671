"""Vanilla RNN and long-term-dependency references against torch autograd and finite differences."""
import copy

import numpy as np
import pytest

from autograder.reference.long_term import clip_by_global_norm, rnn_gradient_norms
from autograder.reference.rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from ci import require_module
from reference_support import (FD_RTOL, SHAPES, TORCH_ATOL, assert_equal_trees, assert_fd_close, assert_torch_close,
                               numeric_gradients, torch_run)


# ---------------------------------------------------------------- helpers


def make_rnn(shape):
    """Seeded float64 inputs (x, h0, Wx, Wh, b) and upstream dh for a (N, D, H, T) problem."""
    N, D, H, T = shape
    rng = np.random.default_rng(list(shape))
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    Wx = rng.standard_normal((D, H)) / np.sqrt(D)
    Wh = rng.standard_normal((H, H)) / np.sqrt(H)
    b = 0.5 * rng.standard_normal(H)
    dh = rng.standard_normal((N, T, H))
    return (x, h0, Wx, Wh, b), dh


def torch_rnn_step(x, h, Wx, Wh, b):
    return (x @ Wx + h @ Wh + b).tanh()


def torch_rnn(torch, x, h0, Wx, Wh, b):
    h, hs = h0, []
    for t in range(x.shape[1]):
        h = torch_rnn_step(x[:, t], h, Wx, Wh, b)
        hs.append(h)
    return torch.stack(hs, dim=1)


def call_unchanged(fn, *args):
    """fn(*args), asserting that it leaves every argument (caches included) untouched."""
    before = copy.deepcopy(args)
    out = fn(*args)
    assert_equal_trees(args, before)
    return out


# ---------------------------------------------------------------- RNN vs torch


@pytest.mark.parametrize("shape", SHAPES)
def test_rnn_step_matches_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    (x, h0, Wx, Wh, b), dh = make_rnn(shape)
    inputs = (x[:, 0], h0, Wx, Wh, b)
    next_h, cache = rnn_step_forward(*inputs)
    (t_next_h,), t_grads = torch_run(torch, torch_rnn_step, inputs, [dh[:, 0]])
    assert_torch_close([next_h], [t_next_h])
    assert_torch_close(rnn_step_backward(dh[:, 0], cache), t_grads)


@pytest.mark.parametrize("shape", SHAPES)
def test_rnn_step_matches_torch_rnncell(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    (x, h0, Wx, Wh, b), _ = make_rnn(shape)
    N, D, H, T = shape
    cell = torch.nn.RNNCell(D, H, nonlinearity="tanh", dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor(Wx.T))
        cell.weight_hh.copy_(torch.tensor(Wh.T))
        cell.bias_ih.copy_(torch.tensor(b))
        cell.bias_hh.zero_()
        expected = cell(torch.tensor(x[:, 0]), torch.tensor(h0)).numpy()
    next_h, _ = rnn_step_forward(x[:, 0], h0, Wx, Wh, b)
    assert_torch_close([next_h], [expected])


@pytest.mark.parametrize("shape", SHAPES)
def test_rnn_sequence_matches_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    inputs, dh = make_rnn(shape)
    h, cache = rnn_forward(*inputs)
    (t_h,), t_grads = torch_run(torch, lambda *a: torch_rnn(torch, *a), inputs, [dh])
    assert_torch_close([h], [t_h])
    assert_torch_close(rnn_backward(dh, cache), t_grads)


@pytest.mark.parametrize("shape", SHAPES)
def test_rnn_sequence_matches_torch_nn_rnn(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    (x, h0, Wx, Wh, b), _ = make_rnn(shape)
    N, D, H, T = shape
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(Wx.T))
        rnn.weight_hh_l0.copy_(torch.tensor(Wh.T))
        rnn.bias_ih_l0.copy_(torch.tensor(b))
        rnn.bias_hh_l0.zero_()
        expected, _ = rnn(torch.tensor(x), torch.tensor(h0)[None])
    h, _ = rnn_forward(x, h0, Wx, Wh, b)
    assert_torch_close([h], [expected.numpy()])


# ---------------------------------------------------------------- RNN vs finite differences


@pytest.mark.parametrize("shape", SHAPES)
def test_rnn_step_backward_finite_differences(shape):
    (x, h0, Wx, Wh, b), dh = make_rnn(shape)
    inputs = (x[:, 0], h0, Wx, Wh, b)
    _, cache = rnn_step_forward(*inputs)
    numeric = numeric_gradients(lambda *a: np.sum(rnn_step_forward(*a)[0] * dh[:, 0]), inputs)
    assert_fd_close(rnn_step_backward(dh[:, 0], cache), numeric)


@pytest.mark.parametrize("shape", SHAPES)
def test_rnn_backward_finite_differences(shape):
    inputs, dh = make_rnn(shape)
    _, cache = rnn_forward(*inputs)
    numeric = numeric_gradients(lambda *a: np.sum(rnn_forward(*a)[0] * dh), inputs)
    assert_fd_close(rnn_backward(dh, cache), numeric)


# ---------------------------------------------------------------- gradient norms


@pytest.mark.parametrize("shape", SHAPES)
def test_rnn_gradient_norms_match_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    inputs, _ = make_rnn(shape)
    N, D, H, T = shape
    x, h0, Wx, Wh, b = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs)
    h, hs = h0, []
    for t in range(T):
        h = torch_rnn_step(x[:, t], h, Wx, Wh, b)
        h.retain_grad()
        hs.append(h)
    hs[-1].sum().backward()
    expected = np.array([float(torch.linalg.norm(h.grad)) for h in hs])
    norms = rnn_gradient_norms(*inputs)
    assert norms.shape == (T,)
    assert_torch_close([norms], [expected])
    assert norms[-1] == pytest.approx(np.sqrt(N * H), abs=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_rnn_gradient_norms_finite_differences(shape):
    """dL/dh_t by perturbing h_t and running the rest of the sequence from it."""
    inputs, _ = make_rnn(shape)
    x, h0, Wx, Wh, b = inputs
    h, _ = rnn_forward(*inputs)
    T = x.shape[1]
    numeric = []
    for t in range(T):
        def loss(h_t):
            return np.sum(rnn_forward(x[:, t + 1 :], h_t, Wx, Wh, b)[0][:, -1]) if t < T - 1 else np.sum(h_t)

        (g,) = numeric_gradients(loss, (h[:, t].copy(),))
        numeric.append(np.linalg.norm(g))
    norms = rnn_gradient_norms(*inputs)
    assert np.max(np.abs(norms - numeric) / np.maximum(norms, 1e-12)) < FD_RTOL


# ---------------------------------------------------------------- clipping


def make_grads(seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal((2, 2, 2)))


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 100.0])
def test_clip_by_global_norm_matches_torch(max_norm):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    grads = make_grads(0)
    ts = [torch.tensor(g, dtype=torch.float64) for g in grads]
    total = torch.sqrt(sum((t**2).sum() for t in ts))
    scale = max_norm / total if total > max_norm else torch.tensor(1.0, dtype=torch.float64)
    clipped, total_norm = clip_by_global_norm(grads, max_norm)
    assert isinstance(clipped, tuple)
    assert abs(total_norm - float(total)) <= TORCH_ATOL
    assert_torch_close(clipped, [(t * scale).numpy() for t in ts])
    # torch's own utility returns the same total norm (its scaling adds 1e-6 to the norm, so only the norm is exact)
    params = [torch.nn.Parameter(torch.zeros_like(t)) for t in ts]
    for p, t in zip(params, ts):
        p.grad = t.clone()
    assert abs(total_norm - float(torch.nn.utils.clip_grad_norm_(params, max_norm))) <= TORCH_ATOL


def test_clip_by_global_norm_semantics():
    grads = make_grads(1)
    total = np.sqrt(sum(np.sum(g**2) for g in grads))
    clipped, total_norm = clip_by_global_norm(grads, total / 2)
    assert np.sqrt(sum(np.sum(c**2) for c in clipped)) == pytest.approx(total / 2, rel=1e-14)
    for c, g in zip(clipped, grads):
        np.testing.assert_allclose(c, g / 2, rtol=1e-14)
    unclipped, _ = clip_by_global_norm(list(grads), total)  # exactly at the threshold: unchanged
    assert isinstance(unclipped, tuple)
    for c, g in zip(unclipped, grads):
        assert c is not g
        np.testing.assert_array_equal(c, g)


# ---------------------------------------------------------------- purity


@pytest.mark.parametrize("shape", SHAPES)
def test_inputs_never_modified(shape):
    inputs, dh = make_rnn(shape)
    x, h0, Wx, Wh, b = inputs
    _, step_cache = call_unchanged(rnn_step_forward, x[:, 0], h0, Wx, Wh, b)
    call_unchanged(rnn_step_backward, dh[:, 0], step_cache)
    _, cache = call_unchanged(rnn_forward, *inputs)
    call_unchanged(rnn_backward, dh, cache)
    call_unchanged(rnn_gradient_norms, *inputs)
    for max_norm in (1e-3, 1e3):
        clipped, _ = call_unchanged(clip_by_global_norm, (Wx, Wh, b), max_norm)
        assert not any(np.shares_memory(c, g) for c, g in zip(clipped, (Wx, Wh, b)))
