"""Sequence to sequence: a bidirectional RNN layer and additive (Bahdanau) attention.

Shapes (batch-major, as in :mod:`rnnkit.conventions`):
    x      (N, T, D)    input sequence
    h      (N, T, 2H)   bidirectional states: h[:, t, :H] forward, h[:, t, H:] backward
    q      (N, Hq)      the decoder's state (the query)
    enc    (N, T, He)   encoder states: keys and values of the attention
    mask   (N, T)       True at real positions, False at padding (every row has one)
    Wq     (Hq, A)      query weights, Wk (He, A) key weights, v (A,) score vector

Each forward returns its outputs and a cache; each backward takes the upstream
gradient and that cache and returns gradients in the order of the forward's inputs.
"""
import numpy as np

from autograder.reference.rnn import rnn_backward, rnn_forward


def birnn_forward(x, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b):
    """Two vanilla RNNs over x, both from a zero state: one reads x_0 .. x_{T-1},
    the other x_{T-1} .. x_0; their states are concatenated at each time step.

    x (N, T, D), Wx_* (D, H), Wh_* (H, H), b_* (H,)
    Returns h (N, T, 2H): h[:, t, :H] has read x_0 .. x_t, h[:, t, H:] has read
    x_{T-1} .. x_t; and the cache of ``CACHE_PARTS["birnn_forward"]``:
    (forward direction's rnn_forward cache, backward direction's over x[:, ::-1]).
    """
    return bidirectional_forward(rnn_forward, x, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b)


def bidirectional_forward(layer, x, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b):
    """:func:`birnn_forward` with the one-direction ``layer(x, h0, Wx, Wh, b) -> (h, cache)``."""
    N, H = x.shape[0], Wh_f.shape[0]
    h0 = np.zeros((N, H), dtype=np.result_type(x, Wh_f))
    h_f, cache_f = layer(x, h0, Wx_f, Wh_f, b_f)
    h_b, cache_b = layer(x[:, ::-1], h0, Wx_b, Wh_b, b_b)
    return np.concatenate([h_f, h_b[:, ::-1]], axis=-1), (cache_f, cache_b)


def birnn_backward(dh, cache):
    """dh (N, T, 2H): gradient of the loss with respect to every state of both directions.

    Returns dx (N, T, D) (the sum of both directions' gradients), dWx_f, dWh_f, db_f,
    dWx_b, dWh_b, db_b. The backward direction's gradient flows from t = 0 up to T-1.
    """
    return bidirectional_backward(rnn_backward, dh, cache)


def bidirectional_backward(layer_backward, dh, cache):
    """:func:`birnn_backward` with the one-direction ``layer_backward(dh, cache) ->
    (dx, dh0, dWx, dWh, db)``."""
    cache_f, cache_b = cache
    H = dh.shape[-1] // 2
    dx_f, _, *dparams_f = layer_backward(dh[..., :H], cache_f)
    dx_b, _, *dparams_b = layer_backward(dh[:, ::-1, H:], cache_b)
    return (dx_f + dx_b[:, ::-1], *dparams_f, *dparams_b)


def attention_forward(q, enc, mask, Wq, Wk, v):
    """Additive attention of one query over the encoder states.

    scores e_j = v . tanh(q @ Wq + enc_j @ Wk) (N, T); alpha = softmax of e over the
    positions j with mask[:, j] (alpha_j = 0 at padding), context = sum_j alpha_j enc_j.
    q (N, Hq), enc (N, T, He), mask (N, T), Wq (Hq, A), Wk (He, A), v (A,)
    Returns context (N, He), alpha (N, T) and the cache of
    ``CACHES["attention_forward"]``: (q, enc, Wq, Wk, v, u, alpha), u (N, T, A) the tanh.
    """
    mask = np.asarray(mask, dtype=bool)
    N, T, He = enc.shape
    u = np.tanh((q @ Wq)[:, None, :] + (enc.reshape(N * T, He) @ Wk).reshape(N, T, -1))   # (N, T, A)
    e = np.where(mask, u @ v, -np.inf)
    alpha = np.exp(e - e.max(axis=1, keepdims=True))
    alpha /= alpha.sum(axis=1, keepdims=True)
    context = (alpha[..., None] * enc).sum(axis=1)
    return context, alpha, (q, enc, Wq, Wk, v, u, alpha)


def attention_backward(dcontext, cache):
    """dcontext (N, He). Returns dq (N, Hq), denc (N, T, He), dWq, dWk, dv.

    Padding gets no gradient through the scores (its alpha is 0); the mask itself has none.
    """
    q, enc, Wq, Wk, v, u, alpha = cache
    dalpha = (enc * dcontext[:, None, :]).sum(axis=2)
    de = alpha * (dalpha - np.sum(alpha * dalpha, axis=1, keepdims=True))   # softmax backward
    (N, T, A), He = u.shape, enc.shape[2]
    dv = de.reshape(-1) @ u.reshape(-1, A)
    da = de[..., None] * v * (1.0 - u**2)                                     # (N, T, A)
    dproj_q = da.sum(axis=1)                                                  # (N, A)
    denc = alpha[..., None] * dcontext[:, None, :] + (da.reshape(N * T, A) @ Wk.T).reshape(N, T, He)
    dWk = enc.reshape(N * T, He).T @ da.reshape(N * T, A)
    return dproj_q @ Wq.T, denc, q.T @ dproj_q, dWk, dv
