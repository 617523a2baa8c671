"""LSTM and GRU references against torch autograd, torch's cells and finite differences."""
import copy
import warnings

import numpy as np
import pytest

from autograder.reference.gru import gru_backward, gru_forward, gru_step_backward, gru_step_forward
from autograder.reference.lstm import (
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    lstm_truncated_backward,
    sigmoid,
)
from ci import require_module
from reference_support import (SHAPES, assert_equal_trees, assert_fd_close, assert_torch_close,
                               numeric_gradients, torch_run)


# ---------------------------------------------------------------- helpers


def make_lstm(shape):
    """Seeded float64 inputs (x, h0, c0, Wx, Wh, b) and upstreams dh, dc, each (N, T, H)."""
    N, D, H, T = shape
    rng = np.random.default_rng([4, *shape])
    x = rng.standard_normal((N, T, D))
    h0, c0 = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    Wx = rng.standard_normal((D, 4 * H)) / np.sqrt(D)
    Wh = rng.standard_normal((H, 4 * H)) / np.sqrt(H)
    b = 0.5 * rng.standard_normal(4 * H)
    dh, dc = rng.standard_normal((N, T, H)), rng.standard_normal((N, T, H))
    return (x, h0, c0, Wx, Wh, b), dh, dc


def make_gru(shape):
    """Seeded float64 inputs (x, h0, Wx, Wh, bx, bh) and upstream dh (N, T, H)."""
    N, D, H, T = shape
    rng = np.random.default_rng([3, *shape])
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    Wx = rng.standard_normal((D, 3 * H)) / np.sqrt(D)
    Wh = rng.standard_normal((H, 3 * H)) / np.sqrt(H)
    bx, bh = 0.5 * rng.standard_normal(3 * H), 0.5 * rng.standard_normal(3 * H)
    return (x, h0, Wx, Wh, bx, bh), rng.standard_normal((N, T, H))


def set_cell(torch, module, suffix, Wx, Wh, b_ih, b_hh=None):
    """Load our weights into a torch RNNCell/LSTMCell/GRUCell (suffix "") or RNN/LSTM/GRU (suffix "_l0")."""
    with torch.no_grad():
        getattr(module, "weight_ih" + suffix).copy_(torch.tensor(Wx.T))
        getattr(module, "weight_hh" + suffix).copy_(torch.tensor(Wh.T))
        getattr(module, "bias_ih" + suffix).copy_(torch.tensor(b_ih))
        bias_hh = getattr(module, "bias_hh" + suffix)
        bias_hh.zero_() if b_hh is None else bias_hh.copy_(torch.tensor(b_hh))
    return module


def call_unchanged(fn, *args):
    """fn(*args), asserting that it leaves every argument (caches included) untouched."""
    before = copy.deepcopy(args)
    out = fn(*args)
    assert_equal_trees(args, before)
    return out


def torch_lstm_step(x, h, c, Wx, Wh, b):
    a_i, a_f, a_g, a_o = (x @ Wx + h @ Wh + b).chunk(4, dim=1)
    c = a_f.sigmoid() * c + a_i.sigmoid() * a_g.tanh()
    return a_o.sigmoid() * c.tanh(), c


def torch_lstm(torch, x, h0, c0, Wx, Wh, b, k=None):
    """All hidden and cell states; with k, h and c are detached where a chunk of k steps starts."""
    h, c, hs, cs = h0, c0, [], []
    for t in range(x.shape[1]):
        if k is not None and t > 0 and t % k == 0:
            h, c = h.detach(), c.detach()
        h, c = torch_lstm_step(x[:, t], h, c, Wx, Wh, b)
        hs.append(h)
        cs.append(c)
    return torch.stack(hs, dim=1), torch.stack(cs, dim=1)


def torch_gru_step(x, h, Wx, Wh, bx, bh):
    x_r, x_z, x_n = (x @ Wx + bx).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ Wh + bh).chunk(3, dim=1)
    r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
    n = (x_n + r * h_n).tanh()
    return (1 - z) * n + z * h


def torch_gru(torch, x, h0, Wx, Wh, bx, bh):
    h, hs = h0, []
    for t in range(x.shape[1]):
        h = torch_gru_step(x[:, t], h, Wx, Wh, bx, bh)
        hs.append(h)
    return torch.stack(hs, dim=1)


# ---------------------------------------------------------------- sigmoid


def test_sigmoid_stable_and_exact():
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    a = np.array([-1000.0, -745.0, -40.0, -1.0, 0.0, 1.0, 40.0, 745.0, 1000.0])
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        s = sigmoid(a)
    assert s[0] == 0.0 and s[-1] == 1.0 and s[4] == 0.5
    # full relative precision in both tails (torch flushes sigmoid(-745) = 5e-324 to 0, hence the atol)
    np.testing.assert_allclose(s, torch.sigmoid(torch.tensor(a)).numpy(), rtol=1e-15, atol=1e-300)
    grid = np.linspace(-30, 30, 601)
    assert_torch_close([sigmoid(grid)], [torch.sigmoid(torch.tensor(grid)).numpy()])


# ---------------------------------------------------------------- LSTM vs torch


@pytest.mark.parametrize("shape", SHAPES)
def test_lstm_step_matches_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    (x, h0, c0, Wx, Wh, b), dh, dc = make_lstm(shape)
    inputs = (x[:, 0], h0, c0, Wx, Wh, b)
    next_h, next_c, cache = lstm_step_forward(*inputs)
    t_outs, t_grads = torch_run(torch, torch_lstm_step, inputs, [dh[:, 0], dc[:, 0]])
    assert_torch_close([next_h, next_c], t_outs)
    assert_torch_close(lstm_step_backward(dh[:, 0], dc[:, 0], cache), t_grads)


@pytest.mark.parametrize("shape", SHAPES)
def test_lstm_layout_matches_torch_modules(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    (x, h0, c0, Wx, Wh, b), _, _ = make_lstm(shape)
    N, D, H, T = shape
    cell = set_cell(torch, torch.nn.LSTMCell(D, H, dtype=torch.float64), "", Wx, Wh, b)
    lstm = set_cell(torch, torch.nn.LSTM(D, H, batch_first=True, dtype=torch.float64), "_l0", Wx, Wh, b)
    with torch.no_grad():
        t_next_h, t_next_c = cell(torch.tensor(x[:, 0]), (torch.tensor(h0), torch.tensor(c0)))
        t_h, (_, t_c_last) = lstm(torch.tensor(x), (torch.tensor(h0)[None], torch.tensor(c0)[None]))
    next_h, next_c, _ = lstm_step_forward(x[:, 0], h0, c0, Wx, Wh, b)
    h, c, _ = lstm_forward(x, h0, c0, Wx, Wh, b)
    assert_torch_close([next_h, next_c, h, c[:, -1]], [t_next_h.numpy(), t_next_c.numpy(), t_h.numpy(), t_c_last[0].numpy()])


@pytest.mark.parametrize("shape", SHAPES)
def test_lstm_sequence_matches_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    inputs, dh, _ = make_lstm(shape)
    h, c, cache = lstm_forward(*inputs)
    (t_h,), t_grads = torch_run(torch, lambda *a: torch_lstm(torch, *a)[0], inputs, [dh])
    with torch.no_grad():
        _, t_c = torch_lstm(torch, *(torch.tensor(a) for a in inputs))
    assert_torch_close([h, c], [t_h, t_c.numpy()])
    assert_torch_close(lstm_backward(dh, cache), t_grads)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [1, 2])
def test_lstm_truncated_backward_matches_torch(shape, k):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    inputs, dh, _ = make_lstm(shape)
    _, _, cache = lstm_forward(*inputs)
    _, t_grads = torch_run(torch, lambda *a: torch_lstm(torch, *a, k=k)[0], inputs, [dh])
    assert_torch_close(lstm_truncated_backward(dh, cache, k), t_grads)


@pytest.mark.parametrize("shape", SHAPES)
def test_lstm_truncated_backward_without_cut_is_full_backward(shape):
    inputs, dh, _ = make_lstm(shape)
    T = shape[3]
    _, _, cache = lstm_forward(*inputs)
    full = lstm_backward(dh, cache)
    for k in (T, T + 3):
        assert_equal_trees(lstm_truncated_backward(dh, cache, k), full)


def test_lstm_truncated_backward_rejects_k_below_one():
    inputs, dh, _ = make_lstm((2, 3, 4, 5))
    _, _, cache = lstm_forward(*inputs)
    with pytest.raises(ValueError):
        lstm_truncated_backward(dh, cache, 0)


# ---------------------------------------------------------------- LSTM vs finite differences


@pytest.mark.parametrize("shape", SHAPES)
def test_lstm_step_backward_finite_differences(shape):
    (x, h0, c0, Wx, Wh, b), dh, dc = make_lstm(shape)
    inputs = (x[:, 0], h0, c0, Wx, Wh, b)

    def loss(*a):
        next_h, next_c, _ = lstm_step_forward(*a)
        return np.sum(next_h * dh[:, 0]) + np.sum(next_c * dc[:, 0])

    _, _, cache = lstm_step_forward(*inputs)
    assert_fd_close(lstm_step_backward(dh[:, 0], dc[:, 0], cache), numeric_gradients(loss, inputs))


@pytest.mark.parametrize("shape", SHAPES)
def test_lstm_backward_finite_differences(shape):
    inputs, dh, _ = make_lstm(shape)
    _, _, cache = lstm_forward(*inputs)
    numeric = numeric_gradients(lambda *a: np.sum(lstm_forward(*a)[0] * dh), inputs)
    assert_fd_close(lstm_backward(dh, cache), numeric)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [1, 2])
def test_lstm_truncated_backward_finite_differences(shape, k):
    """Truncated BPTT is the exact gradient of a loss in which every chunk after the
    first starts from the (constant) state the unperturbed forward carried into it."""
    inputs, dh, _ = make_lstm(shape)
    h_ref, c_ref, cache = lstm_forward(*inputs)
    T = shape[3]

    def loss(x, h0, c0, Wx, Wh, b):
        total = 0.0
        for s in range(0, T, k):
            start = (h0, c0) if s == 0 else (h_ref[:, s - 1], c_ref[:, s - 1])
            h, _, _ = lstm_forward(x[:, s : s + k], *start, Wx, Wh, b)
            total += np.sum(h * dh[:, s : s + k])
        return total

    assert_fd_close(lstm_truncated_backward(dh, cache, k), numeric_gradients(loss, inputs))


# ---------------------------------------------------------------- GRU vs torch


@pytest.mark.parametrize("shape", SHAPES)
def test_gru_step_matches_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    (x, h0, Wx, Wh, bx, bh), dh = make_gru(shape)
    inputs = (x[:, 0], h0, Wx, Wh, bx, bh)
    next_h, cache = gru_step_forward(*inputs)
    (t_next_h,), t_grads = torch_run(torch, torch_gru_step, inputs, [dh[:, 0]])
    assert_torch_close([next_h], [t_next_h])
    assert_torch_close(gru_step_backward(dh[:, 0], cache), t_grads)


@pytest.mark.parametrize("shape", SHAPES)
def test_gru_layout_matches_torch_modules(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    (x, h0, Wx, Wh, bx, bh), _ = make_gru(shape)
    N, D, H, T = shape
    cell = set_cell(torch, torch.nn.GRUCell(D, H, dtype=torch.float64), "", Wx, Wh, bx, bh)
    gru = set_cell(torch, torch.nn.GRU(D, H, batch_first=True, dtype=torch.float64), "_l0", Wx, Wh, bx, bh)
    with torch.no_grad():
        t_next_h = cell(torch.tensor(x[:, 0]), torch.tensor(h0))
        t_h, _ = gru(torch.tensor(x), torch.tensor(h0)[None])
    next_h, _ = gru_step_forward(x[:, 0], h0, Wx, Wh, bx, bh)
    h, _ = gru_forward(x, h0, Wx, Wh, bx, bh)
    assert_torch_close([next_h, h], [t_next_h.numpy(), t_h.numpy()])


@pytest.mark.parametrize("shape", SHAPES)
def test_gru_sequence_matches_torch(shape):
    torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")
    inputs, dh = make_gru(shape)
    h, cache = gru_forward(*inputs)
    (t_h,), t_grads = torch_run(torch, lambda *a: torch_gru(torch, *a), inputs, [dh])
    assert_torch_close([h], [t_h])
    assert_torch_close(gru_backward(dh, cache), t_grads)


# ---------------------------------------------------------------- GRU vs finite differences


@pytest.mark.parametrize("shape", SHAPES)
def test_gru_step_backward_finite_differences(shape):
    (x, h0, Wx, Wh, bx, bh), dh = make_gru(shape)
    inputs = (x[:, 0], h0, Wx, Wh, bx, bh)
    _, cache = gru_step_forward(*inputs)
    numeric = numeric_gradients(lambda *a: np.sum(gru_step_forward(*a)[0] * dh[:, 0]), inputs)
    assert_fd_close(gru_step_backward(dh[:, 0], cache), numeric)


@pytest.mark.parametrize("shape", SHAPES)
def test_gru_backward_finite_differences(shape):
    inputs, dh = make_gru(shape)
    _, cache = gru_forward(*inputs)
    numeric = numeric_gradients(lambda *a: np.sum(gru_forward(*a)[0] * dh), inputs)
    assert_fd_close(gru_backward(dh, cache), numeric)


# ---------------------------------------------------------------- purity


@pytest.mark.parametrize("shape", SHAPES)
def test_inputs_never_modified(shape):
    inputs, dh, dc = make_lstm(shape)
    x, h0, c0, Wx, Wh, b = inputs
    _, _, step_cache = call_unchanged(lstm_step_forward, x[:, 0], h0, c0, Wx, Wh, b)
    call_unchanged(lstm_step_backward, dh[:, 0], dc[:, 0], step_cache)
    _, _, cache = call_unchanged(lstm_forward, *inputs)
    call_unchanged(lstm_backward, dh, cache)
    for k in (1, 2, shape[3]):
        call_unchanged(lstm_truncated_backward, dh, cache, k)
    call_unchanged(sigmoid, x)

    inputs, dh = make_gru(shape)
    x, h0, Wx, Wh, bx, bh = inputs
    _, step_cache = call_unchanged(gru_step_forward, x[:, 0], h0, Wx, Wh, bx, bh)
    call_unchanged(gru_step_backward, dh[:, 0], step_cache)
    _, cache = call_unchanged(gru_forward, *inputs)
    call_unchanged(gru_backward, dh, cache)
