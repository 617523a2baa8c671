"""Seeded bugs in exercise 6's functions (autograder/reference/seq2seq.py), the typical mistakes.

Each mutant is a plain function with the signature of the reference it replaces; ``expect``
lists words the grader's report on the public cases must contain: the wrong output and the
hint the task's probes give (rnnkit.tasks_seq2seq).
"""
from dataclasses import dataclass

import numpy as np

from autograder.reference import seq2seq as ref
from autograder.reference.rnn import rnn_backward, rnn_forward


def _directions(x, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b, reverse_input=True):
    h0 = np.zeros((x.shape[0], Wh_f.shape[0]))
    h_f, cache_f = rnn_forward(x, h0, Wx_f, Wh_f, b_f)
    h_b, cache_b = rnn_forward(x[:, ::-1] if reverse_input else x, h0, Wx_b, Wh_b, b_b)
    return h_f, h_b, (cache_f, cache_b)


def birnn_forward_swapped(*args):
    """The backward direction in the first half, the forward one in the second."""
    h_f, h_b, cache = _directions(*args)
    return np.concatenate([h_b[:, ::-1], h_f], axis=-1), cache


def birnn_forward_not_rereversed(*args):
    """The backward direction's states left in the order it computed them (T-1 first)."""
    h_f, h_b, cache = _directions(*args)
    return np.concatenate([h_f, h_b], axis=-1), cache


def birnn_forward_input_not_reversed(*args):
    """The backward direction reads x_0 .. x_{T-1}, like the forward one."""
    h_f, h_b, cache = _directions(*args, reverse_input=False)
    return np.concatenate([h_f, h_b], axis=-1), cache


def birnn_forward_shared_weights(x, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b):
    """Both directions run with the forward direction's weights."""
    return ref.birnn_forward(x, Wx_f, Wh_f, b_f, Wx_f, Wh_f, b_f)


def birnn_backward_upstream_not_reversed(dh, cache):
    """The backward direction's upstream gradient taken in time order, not reversed like its inputs."""
    cache_f, cache_b = cache
    H = dh.shape[-1] // 2
    dx_f, _, *dparams_f = rnn_backward(dh[..., :H], cache_f)
    dx_b, _, *dparams_b = rnn_backward(dh[..., H:], cache_b)
    return (dx_f + dx_b[:, ::-1], *dparams_f, *dparams_b)


def birnn_backward_dx_not_rereversed(dh, cache):
    """dx of the backward direction added in the order it was computed (T-1 first)."""
    cache_f, cache_b = cache
    H = dh.shape[-1] // 2
    dx_f, _, *dparams_f = rnn_backward(dh[..., :H], cache_f)
    dx_b, _, *dparams_b = rnn_backward(dh[:, ::-1, H:], cache_b)
    return (dx_f + dx_b, *dparams_f, *dparams_b)


def birnn_backward_halves_swapped(dh, cache):
    """The forward direction given the gradient of the second half of h, and vice versa."""
    H = dh.shape[-1] // 2
    return ref.birnn_backward(np.concatenate([dh[..., H:], dh[..., :H]], axis=-1), cache)


def _scores(q, enc, Wq, Wk, v):
    return np.tanh((q @ Wq)[:, None, :] + enc @ Wk) @ v


def _attend(alpha, enc, cache=None):
    return np.einsum("nt,nth->nh", alpha, enc), alpha, cache


def attention_forward_mask_ignored(q, enc, mask, Wq, Wk, v):
    """Softmax over every position, padding included."""
    return ref.attention_forward(q, enc, np.ones_like(mask), Wq, Wk, v)


def attention_forward_mask_after_softmax(q, enc, mask, Wq, Wk, v):
    """Padding zeroed after the softmax, without renormalising: the weights sum to less than 1."""
    e = _scores(q, enc, Wq, Wk, v)
    alpha = np.exp(e - e.max(axis=1, keepdims=True))
    alpha = alpha / alpha.sum(axis=1, keepdims=True) * mask
    return _attend(alpha, enc)


def attention_forward_softmax_over_batch(q, enc, mask, Wq, Wk, v):
    """Softmax over the batch axis (axis 0) instead of time."""
    e = np.where(mask, _scores(q, enc, Wq, Wk, v), -np.inf)
    alpha = np.exp(e - e.max(axis=0, keepdims=True))
    return _attend(alpha / alpha.sum(axis=0, keepdims=True), enc)


def attention_forward_no_tanh(q, enc, mask, Wq, Wk, v):
    """Scores v . (q @ Wq + enc_j @ Wk), the tanh forgotten."""
    e = np.where(mask, ((q @ Wq)[:, None, :] + enc @ Wk) @ v, -np.inf)
    alpha = np.exp(e - e.max(axis=1, keepdims=True))
    return _attend(alpha / alpha.sum(axis=1, keepdims=True), enc)


def attention_backward_softmax_diagonal(dcontext, cache):
    """Softmax backward as alpha * dalpha: the term every weight gets from the others is lost."""
    q, enc, Wq, Wk, v, u, alpha = cache
    dalpha = np.einsum("nh,nth->nt", dcontext, enc)
    de = alpha * dalpha
    da = de[..., None] * v * (1.0 - u**2)
    dproj_q = da.sum(axis=1)
    denc = alpha[..., None] * dcontext[:, None, :] + da @ Wk.T
    return dproj_q @ Wq.T, denc, q.T @ dproj_q, np.einsum("nth,nta->ha", enc, da), np.einsum("nt,nta->a", de, u)


def attention_backward_no_direct_path(dcontext, cache):
    """denc through the scores only: the direct path context = sum_j alpha_j enc_j is lost."""
    dq, denc, dWq, dWk, dv = ref.attention_backward(dcontext, cache)
    alpha = cache[6]
    return dq, denc - alpha[..., None] * dcontext[:, None, :], dWq, dWk, dv


def attention_backward_tanh_derivative(dcontext, cache):
    """tanh' written as 1 - u instead of 1 - u**2."""
    q, enc, Wq, Wk, v, u, alpha = cache
    dalpha = np.einsum("nh,nth->nt", dcontext, enc)
    de = alpha * (dalpha - np.sum(alpha * dalpha, axis=1, keepdims=True))
    da = de[..., None] * v * (1.0 - u)
    dproj_q = da.sum(axis=1)
    denc = alpha[..., None] * dcontext[:, None, :] + da @ Wk.T
    return dproj_q @ Wq.T, denc, q.T @ dproj_q, np.einsum("nth,nta->ha", enc, da), np.einsum("nt,nta->a", de, u)


@dataclass(frozen=True)
class Seq2seqMutant:
    function: str   # the reference it replaces
    mutant: object  # the wrong function, same signature
    task: str       # the check() task that must fail
    expect: tuple   # words the report must contain

    @property
    def name(self):
        return self.mutant.__name__

    @property
    def bug(self):
        return self.mutant.__doc__.strip().splitlines()[0]


def _m(mutant, expect, task=None):
    function = next(name for name in ("birnn_forward", "birnn_backward", "attention_forward",
                                      "attention_backward") if mutant.__name__.startswith(name))
    return Seq2seqMutant(function, mutant, task or function, tuple(expect))


SWAPPED = "look swapped or share"
TIME_ORDER = "put back in time order"
PADDING = "right when no position is padding"
MUTANTS = [
    _m(birnn_forward_swapped, ["h: wrong", SWAPPED]),
    _m(birnn_forward_shared_weights, ["h: wrong", SWAPPED]),
    _m(birnn_forward_not_rereversed, ["h: wrong", TIME_ORDER]),
    _m(birnn_forward_input_not_reversed, ["h: wrong", TIME_ORDER]),
    _m(birnn_backward_upstream_not_reversed, ["dWx_b: wrong", "forward direction's gradients are right"]),
    _m(birnn_backward_dx_not_rereversed, ["dx: wrong", "dx must add both directions"]),
    _m(birnn_backward_halves_swapped, ["dWx_f: wrong", "dWx_b: wrong"]),
    _m(attention_forward_mask_ignored, ["alpha: wrong", PADDING]),
    _m(attention_forward_mask_after_softmax, ["alpha: wrong", PADDING]),
    _m(attention_forward_softmax_over_batch, ["alpha: wrong", "over time (axis 1)"]),
    _m(attention_forward_no_tanh, ["alpha: wrong", "the scores v . tanh"]),
    _m(attention_backward_softmax_diagonal, ["dv: wrong", "and the softmax"]),
    _m(attention_backward_no_direct_path, ["denc: wrong", "and the softmax"]),
    _m(attention_backward_tanh_derivative, ["dWq: wrong", "gradient through the scores"]),
]
