"""Character-level language model: embedding, output layer over time, masked loss, sampling.

Shapes (batch-major, as in :mod:`rnnkit.conventions`):
    x       (N, T)      integer ids of the input characters, in 0..V-1
    W_embed (V, D)      embedding matrix: row v is the vector of character v
    h       (N, T, H)   hidden states of the recurrent layer
    W_out   (H, V)      output weights, used as ``h_t @ W_out``
    b_out   (V,)        output bias
    scores  (N, T, V)   logits of the next character at every step
    y       (N, T)      integer ids of the target (next) characters
    mask    (N, T)      True where y is a real target, False on padding

Each forward returns its output and a cache; each backward takes the upstream
gradient and that cache and returns gradients in the order of the forward's
(float) inputs.
"""
import numpy as np


def embedding_forward(x, W):
    """Look up one row of W per id: the same as one_hot(x) @ W.

    x (N, T) integer ids in 0..V-1, W (V, D)
    Returns out (N, T, D), out[n, t] = W[x[n, t]], and cache = (x, V).
    """
    return W[x], (x, W.shape[0])


def embedding_backward(dout, cache):
    """Gradient of the lookup: row v of dW sums dout over every (n, t) with x[n, t] = v.

    dout (N, T, D). Returns dW (V, D). A character that occurs k times gets the
    sum of k gradients (np.add.at accumulates repeated indices; ``dW[x] += dout``
    would keep only one of them).
    """
    x, V = cache
    dW = np.zeros((V, dout.shape[-1]), dtype=dout.dtype)
    np.add.at(dW, x, dout)
    return dW


def temporal_affine_forward(h, W, b):
    """The same affine output layer at every time step.

    h (N, T, H), W (H, V), b (V,)
    Returns scores (N, T, V) = h @ W + b and cache = (h, W).
    """
    return h @ W + b, (h, W)


def temporal_affine_backward(dscores, cache):
    """dscores (N, T, V). Returns dh (N, T, H), dW (H, V), db (V,), summed over n and t."""
    h, W = cache
    H, V = W.shape
    return dscores @ W.T, h.reshape(-1, H).T @ dscores.reshape(-1, V), dscores.sum(axis=(0, 1))


def log_softmax(scores):
    """log of the softmax over the last axis, for any float array; max-shifted, so it never overflows."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def temporal_softmax_loss(scores, y, mask):
    """Softmax cross-entropy averaged over the unmasked tokens, and its gradient.

    scores (N, T, V), y (N, T) integer ids, mask (N, T) (bool, or 0/1).
    loss = -(1/M) * sum over (n, t) with mask[n, t] of log softmax(scores[n, t])[y[n, t]],
    with M the number of unmasked tokens. With M = 0 (everything masked) the loss
    is 0 and the gradient is zero.
    Returns loss (float) and dscores (N, T, V).
    """
    mask = np.asarray(mask, dtype=bool)
    count = max(int(mask.sum()), 1)
    logp = log_softmax(scores)
    n, t = np.nonzero(mask)
    loss = -logp[n, t, y[n, t]].sum() / count
    dscores = np.exp(logp)  # softmax
    dscores[n, t, y[n, t]] -= 1.0
    dscores *= mask[..., None] / count
    return float(loss), dscores


def softmax(scores, temperature=1.0):
    """Softmax over the last axis of scores / temperature (temperature > 0); max-shifted."""
    if temperature <= 0:
        raise ValueError(f"softmax needs temperature > 0, got {temperature}")
    return np.exp(log_softmax(scores / temperature))


def sample_next(scores, temperature, u):
    """Draw the next id of each sequence from the scores of one time step.

    scores (N, V); temperature >= 0; u (N,) uniform draws in [0, 1), passed in so
    that sampling is deterministic and can be graded.
    temperature = 0: greedy, argmax of scores (lowest id on ties); u is ignored.
    temperature > 0: p = softmax(scores / temperature), and the id returned is the
    smallest k with p[0] + ... + p[k] > u (inverse of the cumulative distribution).
    Returns ids (N,) int64.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return scores.argmax(axis=-1).astype(np.int64)
    cdf = np.cumsum(softmax(scores, temperature), axis=-1)
    ids = (cdf <= np.asarray(u)[:, None]).sum(axis=-1)
    return np.minimum(ids, scores.shape[-1] - 1).astype(np.int64)  # cdf[-1] may round below u
