"""Book chapter 6's encoder-decoders, trained with the course's references.

The model, its training loop and greedy decoding are the student kit's
(:mod:`rnnkit.seq2seq`), so exercise 6 trains a student's functions with the very code
the book uses; here every function is a reference. Also the chapter's tagging task, where
the tag of a position depends on what comes after it, for stacked and bidirectional layers.
"""
import numpy as np
from rnnkit.adding import adam_update
from rnnkit.threads import one_blas_thread

from autograder.reference.language import (embedding_backward, embedding_forward,
                                           temporal_affine_backward, temporal_affine_forward,
                                           temporal_softmax_loss)
from autograder.reference.rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from autograder.reference.seq2seq import (attention_backward, attention_forward, birnn_backward,
                                          birnn_forward)

#: The functions the model is built from, by name: the references.
REFERENCE_FUNCTIONS = {
    "birnn_forward": birnn_forward, "birnn_backward": birnn_backward,
    "attention_forward": attention_forward, "attention_backward": attention_backward,
    "rnn_step_forward": rnn_step_forward, "rnn_step_backward": rnn_step_backward,
    "embedding_forward": embedding_forward, "embedding_backward": embedding_backward,
    "temporal_affine_forward": temporal_affine_forward, "temporal_affine_backward": temporal_affine_backward,
    "temporal_softmax_loss": temporal_softmax_loss,
}


# ---------------------------------------------------------------- tagging: where the future matters

def tagging_batch(rng, N, T, K):
    """Digits x (N, T) in 0..K-1 and tags y (N, T): 1 where the same digit occurs again
    later in the sequence, 0 where it does not (a tag that depends on the future)."""
    x = rng.integers(0, K, size=(N, T))
    later = (x[:, :, None] == x[:, None, :]) & (np.arange(T)[:, None] < np.arange(T)[None, :])
    return x, later.any(axis=2).astype(np.int64)


def init_tagger(K, H, layers, bidirectional, rng):
    """One-hot digits -> ``layers`` recurrent layers of H units per direction -> 2 classes."""
    def u(*shape):
        s = 1.0 / np.sqrt(shape[0])
        return rng.uniform(-s, s, size=shape)
    width = 2 * H if bidirectional else H
    params, D = {}, K
    for layer in range(layers):
        for side in ("f", "b") if bidirectional else ("f",):
            params.update({f"Wx_{side}{layer}": u(D, H), f"Wh_{side}{layer}": u(H, H),
                           f"b_{side}{layer}": np.zeros(H)})
        D = width
    params.update({"W_out": u(width, 2), "b_out": np.zeros(2)})
    return params


def _layer_names(layer, bidirectional):
    sides = ("f", "b") if bidirectional else ("f",)
    return [f"{k}_{side}{layer}" for side in sides for k in ("Wx", "Wh", "b")]


def tagger_loss_and_grads(params, x, y, layers, bidirectional):
    """Mean cross-entropy of the tags and its gradients (references only)."""
    N, T = x.shape
    K = params["Wx_f0"].shape[0]
    h, caches = np.eye(K)[x], []
    for layer in range(layers):
        p = [params[k] for k in _layer_names(layer, bidirectional)]
        if bidirectional:
            h, cache = birnn_forward(h, *p)
        else:
            h, cache = rnn_forward(h, np.zeros((N, p[1].shape[0])), *p)
        caches.append(cache)
    scores, aff_cache = temporal_affine_forward(h, params["W_out"], params["b_out"])
    loss, dscores = temporal_softmax_loss(scores, y, np.ones_like(y, dtype=bool))
    dh, grads_W, grads_b = temporal_affine_backward(dscores, aff_cache)
    grads = {"W_out": grads_W, "b_out": grads_b}
    for layer in reversed(range(layers)):
        names = _layer_names(layer, bidirectional)
        if bidirectional:
            dh, *dp = birnn_backward(dh, caches[layer])
        else:
            dh, _, *dp = rnn_backward(dh, caches[layer])
        grads.update(zip(names, dp))
    return loss, grads, scores


@one_blas_thread
def train_tagger(layers, bidirectional, steps, seed, K=4, T=10, H=16, batch=64, lr=1e-2):
    """Train a tagger on fresh batches; return its accuracy (share of right tags) on 2,000
    fresh sequences, and the accuracy of the best tagger that sees only the past: tag 1
    exactly where a repeat later is more likely than not at that position."""
    rng = np.random.default_rng(seed)
    params = init_tagger(K, H, layers, bidirectional, rng)
    adam = {"t": 0, "m": {}, "v": {}}
    for _ in range(steps):
        x, y = tagging_batch(rng, batch, T, K)
        _, grads, _ = tagger_loss_and_grads(params, x, y, layers, bidirectional)
        adam_update(params, grads, adam, lr)
    x, y = tagging_batch(np.random.default_rng(seed + 1000), 2000, T, K)
    scores = tagger_loss_and_grads(params, x, y, layers, bidirectional)[2]
    return float(np.mean(scores.argmax(axis=2) == y))


def past_only_accuracy(K=4, T=10):
    """Expected accuracy of the best tag that ignores what comes later: at position t a digit
    recurs among the T-1-t later ones with probability 1 - (1 - 1/K)**(T-1-t)."""
    p = 1.0 - (1.0 - 1.0 / K) ** (T - 1 - np.arange(T))
    return float(np.mean(np.maximum(p, 1.0 - p)))
