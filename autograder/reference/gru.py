"""GRU, in the convention of torch's ``nn.GRUCell``.

With ax = x_t @ Wx + bx and ah = h_{t-1} @ Wh + bh, split into blocks r, z, n:

    r = sigmoid(ax_r + ah_r)         reset gate
    z = sigmoid(ax_z + ah_z)         update gate
    n = tanh(ax_n + r * ah_n)        candidate
    h_t = (1 - z) * n + z * h_{t-1}

Shapes follow :mod:`rnnkit.conventions` with G = 3; the blocks are in the
order of ``GATES["gru"]``. There are two biases because r multiplies ah_n,
bias included.
Each forward returns its output and a cache; each backward takes the upstream
gradient and that cache and returns gradients in the order of the forward's inputs.
"""
import numpy as np

from rnnkit.conventions import GATES, split_gates
from autograder.reference.lstm import sigmoid
from autograder.reference.unroll import unroll_backward, unroll_forward


def gru_step_forward(x, prev_h, Wx, Wh, bx, bh):
    """One time step.

    x (N, D), prev_h (N, H), Wx (D, 3H), Wh (H, 3H), bx (3H,), bh (3H,)
    Returns next_h (N, H) and cache = (x, prev_h, Wx, Wh, r, z, n, ah_n),
    each of r, z, n, ah_n being (N, H).
    """
    ax = split_gates(x @ Wx + bx, "gru")
    ah = split_gates(prev_h @ Wh + bh, "gru")
    r = sigmoid(ax["r"] + ah["r"])
    z = sigmoid(ax["z"] + ah["z"])
    n = np.tanh(ax["n"] + r * ah["n"])
    next_h = (1.0 - z) * n + z * prev_h
    return next_h, (x, prev_h, Wx, Wh, r, z, n, ah["n"])


def gru_step_backward(dnext_h, cache):
    """Gradients of one time step.

    dnext_h (N, H): gradient of the loss with respect to next_h.
    Returns dx (N, D), dprev_h (N, H), dWx (D, 3H), dWh (H, 3H), dbx (3H,), dbh (3H,).
    """
    x, prev_h, Wx, Wh, r, z, n, ah_n = cache
    dn = dnext_h * (1.0 - z) * (1.0 - n**2)  # on the pre-activation of n
    dr = dn * ah_n * r * (1.0 - r)  # on the pre-activation of r
    dz = dnext_h * (prev_h - n) * z * (1.0 - z)  # on the pre-activation of z
    dax = {"r": dr, "z": dz, "n": dn}
    dah = {"r": dr, "z": dz, "n": dn * r}  # ah_n enters n scaled by r
    dax = np.concatenate([dax[k] for k in GATES["gru"]], axis=1)
    dah = np.concatenate([dah[k] for k in GATES["gru"]], axis=1)
    dprev_h = dnext_h * z + dah @ Wh.T  # directly through z * prev_h, and through ah
    return dax @ Wx.T, dprev_h, x.T @ dax, prev_h.T @ dah, dax.sum(axis=0), dah.sum(axis=0)


def gru_forward(x, h0, Wx, Wh, bx, bh):
    """A whole sequence.

    x (N, T, D), h0 (N, H), Wx (D, 3H), Wh (H, 3H), bx (3H,), bh (3H,)
    Returns h (N, T, H), the hidden state after each step, and a cache
    holding the per-step caches in time order.
    """
    return unroll_forward(gru_step_forward, x, h0, Wx, Wh, bx, bh)


def gru_backward(dh, cache):
    """Backpropagation through time over a whole sequence.

    dh (N, T, H): gradient of the loss with respect to every hidden state
    (the direct part only; the recurrent part is accumulated here).
    Returns dx (N, T, D), dh0 (N, H), dWx (D, 3H), dWh (H, 3H), dbx (3H,), dbh (3H,).
    """
    return unroll_backward(gru_step_backward, dh, cache)
