"""A character-level language model, built from functions you pass in.

Model: embedding (V, D) -> one recurrent layer ("rnn", "lstm" or "gru", hidden size H)
-> output layer (H, V) at every step -> softmax over the next character. It is
trained on a continuous stream of ids (:func:`rnnkit.corpus.stream_batches`) with
truncated backpropagation through time: each chunk of T steps is one forward and
backward pass and one Adam update, the state at the end of a chunk is carried (as
plain numbers, no gradient) into the next, and the gradient may be clipped.

Every function of the model comes from ``fns``, a dict by name (:data:`FUNCTION_NAMES`):
in exercise 5 your own embedding, output layer, loss, sampling and LSTM; in the book
the course's references (``autograder.experiments.charlm``). Also the count-based
yardsticks (uniform, unigram, bigram).
"""
import numpy as np

from .adding import adam_update
from .conventions import DTYPE, GATES, gate_slice
from .corpus import stream_batches
from .threads import one_blas_thread

#: Parameters of each recurrent layer, in the order its forward takes them.
LAYER_PARAMS = {"rnn": ("Wx", "Wh", "b"), "lstm": ("Wx", "Wh", "b"), "gru": ("Wx", "Wh", "bx", "bh")}

#: The functions the model is built from, with the signatures of the exercises: the
#: four of the model, sampling, and ``<cell>_forward``/``<cell>_backward`` of its layer.
FUNCTION_NAMES = ("embedding_forward", "embedding_backward", "temporal_affine_forward",
                  "temporal_affine_backward", "temporal_softmax_loss", "sample_next")


def require(fns, cell=None):
    """``fns`` itself, once it holds every function the model (and the ``cell`` layer) needs."""
    needed = FUNCTION_NAMES + ((f"{cell}_forward", f"{cell}_backward") if cell else ())
    missing = [name for name in needed if not callable(fns.get(name))]
    if missing:
        raise ValueError(f"the model needs these functions: {', '.join(missing)}")
    return fns


def init_params(cell, V, D, H, rng, forget_bias=1.0):
    """Parameters of the model: W_embed (V, D), the layer's (Wx (D, G*H), Wh (H, G*H),
    b (G*H,), or bx and bh for the GRU), W_out (H, V), b_out (V,).

    The embedding is standard normal / sqrt(D) (rows of length about 1); Wx, Wh and
    W_out are uniform in [-1/sqrt(H), 1/sqrt(H)] (torch's default); biases are zero
    except the LSTM's forget-gate block, set to forget_bias.
    """
    G = len(GATES[cell])
    s = 1.0 / np.sqrt(H)
    params = {
        "W_embed": rng.standard_normal((V, D)) / np.sqrt(D),
        "Wx": rng.uniform(-s, s, size=(D, G * H)),
        "Wh": rng.uniform(-s, s, size=(H, G * H)),
        "W_out": rng.uniform(-s, s, size=(H, V)),
        "b_out": np.zeros(V),
    }
    for name in LAYER_PARAMS[cell][2:]:
        params[name] = np.zeros(G * H)
    if cell == "lstm":
        params["b"][gate_slice("lstm", "f", H)] = forget_bias
    return {k: v.astype(DTYPE) for k, v in params.items()}


def zero_state(cell, N, H):
    """Initial state: (h0,) or, for the LSTM, (h0, c0), each (N, H) zeros."""
    return tuple(np.zeros((N, H), dtype=DTYPE) for _ in range(2 if cell == "lstm" else 1))


def layer_forward(cell, x, state, params, fns):
    """Recurrent layer over x (N, T, D) from state. Returns h (N, T, H), c (N, T, H) for
    the LSTM else None, the state after the last step, and the forward's cache."""
    forward = fns[f"{cell}_forward"]
    weights = [params[k] for k in LAYER_PARAMS[cell]]
    if cell == "lstm":
        h, c, cache = forward(x, *state, *weights)
        return h, c, (h[:, -1], c[:, -1]), cache
    h, cache = forward(x, *state, *weights)
    return h, None, (h[:, -1],), cache


def forward(cell, params, x, state, fns):
    """ids x (N, T) -> scores (N, T, V), h, c (see layer_forward), final state, caches."""
    f = require(fns, cell)
    emb, emb_cache = f["embedding_forward"](x, params["W_embed"])
    h, c, state, layer_cache = layer_forward(cell, emb, state, params, f)
    scores, out_cache = f["temporal_affine_forward"](h, params["W_out"], params["b_out"])
    return scores, h, c, state, (emb_cache, layer_cache, out_cache)


def loss_and_grads(cell, params, x, y, mask, state, fns):
    """Mean cross-entropy on one chunk (x, y, mask each (N, T)) and its gradient.

    The gradient stops at the chunk's initial state (truncated BPTT).
    Returns loss (float), grads (dict keyed like params), the final state.
    """
    f = require(fns, cell)
    scores, _, _, state, (emb_cache, layer_cache, out_cache) = forward(cell, params, x, state, f)
    loss, dscores = f["temporal_softmax_loss"](scores, y, mask)
    dh, dW_out, db_out = f["temporal_affine_backward"](dscores, out_cache)
    layer_grads = f[f"{cell}_backward"](dh, layer_cache)
    demb = layer_grads[0]
    grads = dict(zip(LAYER_PARAMS[cell], layer_grads[-len(LAYER_PARAMS[cell]):]))
    grads.update(W_embed=f["embedding_backward"](demb, emb_cache), W_out=dW_out, b_out=db_out)
    return loss, grads, state


@one_blas_thread
def evaluate(cell, params, ids, fns, N=1, T=256):
    """Mean cross-entropy (nats per character) of predicting ids[1:] from the ids before.

    The stream is cut into N rows (by default one: the whole text), read in chunks
    of T with the state carried, so each prediction sees everything before it in its
    row. exp of it is the perplexity.
    """
    f = require(fns, cell)
    total, count = 0.0, 0
    state = zero_state(cell, N, params["Wh"].shape[0])
    for x, y, mask in stream_batches(ids, N, T):
        scores, _, _, state, _ = forward(cell, params, x, state, f)
        loss, _ = f["temporal_softmax_loss"](scores, y, mask)
        total += loss * mask.sum()
        count += mask.sum()
    return total / count


@one_blas_thread
def train(cell, train_ids, val_ids, V, epochs, seed, fns, hidden=128, embed=32, batch=8, T=32,
          lr=2e-3, clip=None, evals_per_epoch=2, callback=None):
    """Train the model on train_ids (L,) with truncated BPTT; return its history.

    Each epoch reads the whole training stream once, cut into ``batch`` rows, in
    chunks of T steps; one Adam update (learning rate lr) per chunk, the state
    carried between chunks and reset at each epoch. clip: None, or a function that
    takes the list of gradient arrays and returns them clipped (exercise 2).
    The validation loss on val_ids is measured ``evals_per_epoch`` times per epoch
    (and before training); ``callback(update, params)``, if given, is called at the
    same moments, e.g. to draw samples. fns: the model's functions (see the module).
    Returns a dict: "update" and "val_loss" (nats per character) at each
    evaluation, "train_loss" (one per update), "params" (final).

    The defaults are those of book chapter 5: on the Tang poems (90% of the poems,
    about 22,000 characters) an LSTM took about 15 s of one CPU core for 6 epochs.
    Training runs with one BLAS thread (:mod:`rnnkit.threads`), faster on such
    small matrices; the previous setting is restored after.
    """
    f = require(fns, cell)
    rng = np.random.default_rng(seed)
    params = init_params(cell, V, embed, hidden, rng)
    adam = {"t": 0, "m": {}, "v": {}}
    row_length = -(-(len(train_ids) - 1) // batch)  # ceil, as in stream_batches
    chunks = -(-row_length // T)
    eval_at = set(np.linspace(0, chunks, evals_per_epoch + 1).astype(int)[1:])
    history = {"update": [0], "val_loss": [evaluate(cell, params, val_ids, f)], "train_loss": []}
    if callback:
        callback(0, params)
    for _ in range(epochs):
        state = zero_state(cell, batch, hidden)
        for k, (x, y, mask) in enumerate(stream_batches(train_ids, batch, T), start=1):
            loss, grads, state = loss_and_grads(cell, params, x, y, mask, state, f)
            if clip is not None:
                grads = dict(zip(grads, clip(list(grads.values()))))
            adam_update(params, grads, adam, lr)
            history["train_loss"].append(loss)
            if k in eval_at:
                history["update"].append(adam["t"])
                history["val_loss"].append(evaluate(cell, params, val_ids, f))
                if callback:
                    callback(adam["t"], params)
    history = {k: np.array(v) for k, v in history.items()}
    history["params"] = params
    return history


@one_blas_thread
def generate(cell, params, prompt, length, temperature, rng, fns):
    """Feed the ids of prompt (P,) with P >= 1, then sample ``length`` more ids.

    Each new id is drawn with :func:`sample_next` (greedy at temperature 0) from the
    scores after the previous one, and fed back as the next input: the model reads
    its own output. Returns the new ids (length,).
    """
    f = require(fns, cell)
    state = zero_state(cell, 1, params["Wh"].shape[0])
    scores, _, _, state, _ = forward(cell, params, np.asarray(prompt)[None], state, f)
    out = []
    for _ in range(length):
        next_id = f["sample_next"](scores[:, -1], temperature, rng.uniform(size=1))
        out.append(int(next_id[0]))
        scores, _, _, state, _ = forward(cell, params, next_id[:, None], state, f)
    return np.array(out, dtype=np.int64)


def ngram_token_losses(train_ids, val_ids, V, alpha):
    """Loss (nats) of the count models at each position of val_ids[1:], from the id before.

    unigram: counts of train_ids with add-one smoothing, whatever came before.
    bigram: p(b | a) = (count(a, b) + alpha * p_unigram(b)) / (count(a) + alpha).
    Returns a dict unigram, bigram: arrays (len(val_ids) - 1,).
    """
    unigram = (np.bincount(train_ids, minlength=V) + 1.0) / (len(train_ids) + V)
    pairs = np.zeros((V, V))
    np.add.at(pairs, (train_ids[:-1], train_ids[1:]), 1.0)
    prev, nxt = val_ids[:-1], val_ids[1:]
    bigram = (pairs[prev, nxt] + alpha * unigram[nxt]) / (pairs.sum(axis=1)[prev] + alpha)
    return {"unigram": -np.log(unigram[nxt]), "bigram": -np.log(bigram)}


BIGRAM_ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)


def ngram_losses(train_ids, val_ids, V, alphas=BIGRAM_ALPHAS):
    """Count-based yardsticks: mean nats per character on val_ids[1:].

    uniform: log V; unigram and bigram: see :func:`ngram_token_losses`, with alpha
    the best of ``alphas`` on the validation text itself (so the bigram yardstick
    is, if anything, flattered). Returns a dict uniform, unigram, bigram, alpha.
    """
    losses = {a: ngram_token_losses(train_ids, val_ids, V, a) for a in alphas}
    alpha = min(alphas, key=lambda a: losses[a]["bigram"].mean())
    return {"uniform": np.log(V), "unigram": losses[alpha]["unigram"].mean(),
            "bigram": losses[alpha]["bigram"].mean(), "alpha": alpha}
