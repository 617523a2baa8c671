"""Unrolling a one-state cell (vanilla RNN, GRU) in time, forward and backward.

``step(x_t, prev_h, *params) -> (next_h, cache)`` and
``step_backward(dnext_h, cache) -> (dx_t, dprev_h, *dparams)`` are the cell's;
the loops over time, shared by every such cell, are here. (The LSTM carries two
states and has its own loops.) The grader also unrolls the stand-ins of
:mod:`rnnkit.standins` with them (:mod:`autograder.verify`).
"""
import numpy as np


def unroll_forward(step, x, h0, *params):
    """x (N, T, D), h0 (N, H). Returns h (N, T, H) and the per-step caches in time order."""
    N, T, _ = x.shape
    h = np.empty((N, T, h0.shape[1]), dtype=np.result_type(x, h0, *params))
    caches, prev_h = [], h0
    for t in range(T):
        prev_h, cache = step(x[:, t], prev_h, *params)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches


def unroll_backward(step_backward, dh, caches):
    """dh (N, T, H): upstream gradient of every hidden state; caches: the steps', each
    starting with its x_t (N, D).

    The gradient reaching h_t is dh[:, t] plus what flows back from step t+1;
    parameter gradients are summed over the steps.
    Returns dx (N, T, D), dh0 (N, H), and one gradient per parameter.
    """
    N, T, H = dh.shape
    dx = np.empty((N, T, caches[0][0].shape[1]), dtype=dh.dtype)
    dprev_h, dparams = np.zeros((N, H), dtype=dh.dtype), None
    for t in reversed(range(T)):
        dx[:, t], dprev_h, *dparams_t = step_backward(dh[:, t] + dprev_h, caches[t])
        dparams = dparams_t if dparams is None else [a + b for a, b in zip(dparams, dparams_t)]
    return (dx, dprev_h, *dparams)
