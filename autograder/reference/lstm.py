"""LSTM: four gates computed from one affine map a = x_t @ Wx + h_{t-1} @ Wh + b.

    i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Shapes follow :mod:`rnnkit.conventions` with G = 4; the blocks of a, Wx, Wh
and b are in the order of ``GATES["lstm"]``.
Each forward returns its outputs and a cache; each backward takes the upstream
gradients and that cache and returns gradients in the order of the forward's inputs.
"""
import numpy as np

from rnnkit.conventions import GATES, split_gates


def sigmoid(a):
    """Logistic function 1 / (1 + exp(-a)), element-wise, for any float array a.

    exp is only ever taken of -|a| <= 0, so it cannot overflow, and both tails
    keep full relative precision.
    """
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0, e) / (1.0 + e)


ACTIVATION = {"i": sigmoid, "f": sigmoid, "g": np.tanh, "o": sigmoid}


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One time step.

    x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    Returns next_h (N, H), next_c (N, H) and the cache of
    ``CACHES["lstm_step_forward"]``: (x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c),
    the gates' activations i, f, g, o and tanh_c = tanh(next_c) each (N, H).
    """
    a = split_gates(x @ Wx + prev_h @ Wh + b, "lstm")
    i, f, g, o = (ACTIVATION[k](a[k]) for k in GATES["lstm"])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients of one time step.

    dnext_h (N, H), dnext_c (N, H): gradients of the loss with respect to
    next_h and next_c.
    Returns dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c**2)  # next_c reaches the loss directly and via next_h
    da = {  # gradient on each block of a: upstream on the gate times the activation's slope
        "i": dc * g * i * (1.0 - i),
        "f": dc * prev_c * f * (1.0 - f),
        "g": dc * i * (1.0 - g**2),
        "o": dnext_h * tanh_c * o * (1.0 - o),
    }
    da = np.concatenate([da[k] for k in GATES["lstm"]], axis=1)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, c0, Wx, Wh, b):
    """A whole sequence.

    x (N, T, D), h0 (N, H), c0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    Returns h (N, T, H) and c (N, T, H), the hidden and cell states after each
    step, and a cache holding the per-step caches in time order.
    """
    return unroll_lstm_forward(lstm_step_forward, x, h0, c0, Wx, Wh, b)


def unroll_lstm_forward(step, x, h0, c0, *params):
    """:func:`lstm_forward` with the cell ``step(x_t, prev_h, prev_c, *params) ->
    (next_h, next_c, cache)``: the loop over time."""
    N, T, _ = x.shape
    dtype = np.result_type(x, h0, c0, *params)
    h = np.empty((N, T, h0.shape[1]), dtype=dtype)
    c = np.empty_like(h)
    steps, prev_h, prev_c = [], h0, c0
    for t in range(T):
        prev_h, prev_c, cache = step(x[:, t], prev_h, prev_c, *params)
        h[:, t], c[:, t] = prev_h, prev_c
        steps.append(cache)
    return h, c, steps


def lstm_truncated_backward(dh, cache, k):
    """Truncated backpropagation through time, in chunks of k steps.

    The steps are cut into chunks 0..k-1, k..2k-1, ... (the last may be shorter).
    Gradients flow backwards within a chunk only: what reaches the state carried
    into a chunk from the previous one is dropped, except at the first chunk,
    where it is returned as dh0, dc0. Weight gradients are summed over all chunks.

    dh (N, T, H): gradient of the loss with respect to every hidden state
    (the direct part only; there is no direct gradient on the cell states).
    k: chunk length, k >= 1; k >= T gives full backpropagation through time.
    Returns dx (N, T, D), dh0 (N, H), dc0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    return unroll_lstm_backward(lstm_step_backward, dh, cache, k)


def unroll_lstm_backward(step_backward, dh, cache, k=None):
    """:func:`lstm_truncated_backward` with the cell's ``step_backward(dnext_h, dnext_c,
    cache) -> (dx, dprev_h, dprev_c, dWx, dWh, db)``: the loop over time, in chunks of
    ``k`` steps (None: one chunk of T steps, :func:`lstm_backward`)."""
    k = len(cache) if k is None else k
    if k < 1:
        raise ValueError(f"chunk length k must be at least 1, got {k}")
    steps = cache
    N, T, H = dh.shape
    x0, _, _, Wx, Wh = steps[0][:5]
    dx = np.empty((N, T, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H, dtype=dh.dtype)
    dprev_h, dprev_c = np.zeros((N, H), dtype=dh.dtype), np.zeros((N, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = step_backward(
            dh[:, t] + dprev_h, dprev_c, steps[t]
        )
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
        if t > 0 and t % k == 0:  # step t starts a chunk: cut the gradient to the previous chunk
            dprev_h, dprev_c = np.zeros_like(dprev_h), np.zeros_like(dprev_c)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_backward(dh, cache):
    """Backpropagation through time over a whole sequence: one chunk of T steps.

    dh (N, T, H): gradient of the loss with respect to every hidden state
    (the direct part only; there is no direct gradient on the cell states).
    Returns dx (N, T, D), dh0 (N, H), dc0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    return unroll_lstm_backward(lstm_step_backward, dh, cache)
