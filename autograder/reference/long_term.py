"""Long-term dependencies: how gradients fade or blow up along a vanilla RNN, and clipping.

Built on :mod:`autograder.reference.rnn`; shapes follow :mod:`rnnkit.conventions`.
"""
import numpy as np

from autograder.reference.rnn import rnn_forward, rnn_step_backward


def rnn_gradient_norms(x, h0, Wx, Wh, b):
    """How much of the last step's gradient reaches each earlier hidden state.

    x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,)
    With the loss L = sum(h[:, T-1]), returns norms (T,), where norms[t] is the
    Frobenius norm of dL/dh[:, t] (N, H); so norms[T-1] = sqrt(N * H).
    """
    h, steps = rnn_forward(x, h0, Wx, Wh, b)
    T = h.shape[1]
    norms = np.empty(T, dtype=h.dtype)
    dh_t = np.ones_like(h[:, -1])
    for t in reversed(range(T)):
        norms[t] = np.linalg.norm(dh_t)
        if t > 0:  # step t maps h[:, t-1] to h[:, t]
            _, dh_t, _, _, _ = rnn_step_backward(dh_t, steps[t])
    return norms


def clip_by_global_norm(grads, max_norm):
    """Rescale a set of gradients so that their joint norm is at most max_norm.

    grads: sequence of arrays of any shapes; max_norm > 0.
    total_norm = sqrt(sum of the squares of every entry of every array).
    Returns (clipped, total_norm): clipped is a tuple of new arrays in the order
    of grads, each multiplied by max_norm / total_norm if total_norm > max_norm,
    otherwise equal to its input. The inputs are never modified.
    """
    total_norm = float(np.sqrt(sum(np.sum(np.square(g)) for g in grads)))
    if total_norm > max_norm:
        return tuple(np.asarray(g) * (max_norm / total_norm) for g in grads), total_norm
    return tuple(np.array(g) for g in grads), total_norm
