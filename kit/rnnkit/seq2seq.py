"""An encoder-decoder for reversing a sequence of digits, built from functions you pass in.

The task: a source of L digits in 0..K-1 (L varies within a batch; the rest of a row is
the padding symbol ``PAD = K``), and the target, the same digits in reverse order.

The model (hidden sizes: H per encoder direction, S for the decoder):

* encoder: embedding (K+1, E) of the source -> ``birnn_forward`` -> enc (N, T, 2H);
* bridge: s_0 = tanh([h_fwd at the last position, h_bwd at the first real digit] @ W_init
  + b_init) (the sources are padded on the left, :func:`make_batch`);
* decoder, at step t (teacher forcing while training, greedy when decoding): the
  embedding (K+1, E) of the previous target digit (``BOS = K`` first), with attention
  the context c_t = ``attention_forward(s_{t-1}, enc, mask)``; then
  s_t = ``rnn_step_forward([emb_t, c_t], s_{t-1})``, scores = [s_t, c_t] @ W_out + b_out;
* loss: ``temporal_softmax_loss`` over the real target positions.

``attention=False`` is the plain encoder-decoder: everything the decoder knows about the
source passes through s_0, a vector of fixed size (the bottleneck); the decoder has no c_t.
Every function comes from ``fns`` (:data:`FUNCTION_NAMES`): in exercise 6 yours, in the
book the course's references (``autograder.experiments.seq2seq``).
"""
import numpy as np

from .adding import adam_update
from .threads import one_blas_thread

FUNCTION_NAMES = ("birnn_forward", "birnn_backward", "attention_forward", "attention_backward",
                  "rnn_step_forward", "rnn_step_backward", "embedding_forward", "embedding_backward",
                  "temporal_affine_forward", "temporal_affine_backward", "temporal_softmax_loss")
ENCODER_PARAMS = ("Wx_f", "Wh_f", "b_f", "Wx_b", "Wh_b", "b_b")


def require(fns, attention):
    """``fns`` itself, once it holds every function the model needs."""
    needed = [n for n in FUNCTION_NAMES if attention or not n.startswith("attention")]
    missing = [n for n in needed if not callable(fns.get(n))]
    if missing:
        raise ValueError(f"the model needs these functions: {', '.join(missing)}")
    return fns


def make_batch(rng, N, lengths, K):
    """N sources with lengths drawn from ``lengths`` (a sequence of ints), T the longest.

    Returns x (N, T), padded with K **before** the digits, its mask (N, T), and the target
    y (N, T), the digits reversed, then 0s (masked out of the loss), with its mask (N, T).
    Left padding lets the backward direction read the real digits first: its state at
    position j then counts the digits from j to the end, whatever the padding.
    """
    n = rng.choice(np.asarray(lengths), size=N)
    T = int(n.max())
    y_mask = np.arange(T) < n[:, None]
    digits = rng.integers(0, K, size=(N, T))
    y = np.where(y_mask, digits, 0)
    x_mask = y_mask[:, ::-1]
    x = np.where(x_mask, y[:, ::-1], K)   # x[n, T-1-t] = y[n, t]: the source is y reversed
    return x, x_mask, y, y_mask


def init_params(K, E, H, S, A, rng, attention=True):
    """Uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] (torch's default), biases zero."""
    def u(*shape):
        s = 1.0 / np.sqrt(shape[0])
        return rng.uniform(-s, s, size=shape)
    C = 2 * H if attention else 0           # size of the context c_t
    p = {"E_src": rng.standard_normal((K + 1, E)) / np.sqrt(E),
         "E_dec": rng.standard_normal((K + 1, E)) / np.sqrt(E),
         "W_init": u(2 * H, S), "b_init": np.zeros(S),
         "Wx_d": u(E + C, S), "Wh_d": u(S, S), "b_d": np.zeros(S),
         "W_out": u(S + C, K), "b_out": np.zeros(K)}
    for side in ("f", "b"):
        p.update({f"Wx_{side}": u(E, H), f"Wh_{side}": u(H, H), f"b_{side}": np.zeros(H)})
    if attention:
        p.update({"Wq": u(S, A), "Wk": u(2 * H, A), "v": u(A)})
    return p


def encode(params, x, mask, f):
    """enc (N, T, 2H), the decoder's first state s_0 (N, S), and what the backward pass needs.

    s_0 reads the forward direction's last state and the backward direction's state at the
    first real digit (the left padding is skipped): each has read the whole source.
    """
    emb, emb_cache = f["embedding_forward"](x, params["E_src"])
    enc, enc_cache = f["birnn_forward"](emb, *(params[k] for k in ENCODER_PARAMS))
    H = enc.shape[-1] // 2
    first = x.shape[1] - mask.sum(axis=1)
    summary = np.concatenate([enc[:, -1, :H], enc[np.arange(len(x)), first, H:]], axis=1)
    s0 = np.tanh(summary @ params["W_init"] + params["b_init"])
    return enc, s0, (emb_cache, enc_cache, first, summary, s0)


def decoder_step(params, prev_id, s, enc, mask, f, attention):
    """One decoder step: (s_t, [s_t, c_t], alpha (N, T) or None, caches)."""
    emb, _ = f["embedding_forward"](prev_id[:, None], params["E_dec"])
    inputs, alpha, att_cache = emb[:, 0], None, None
    if attention:
        context, alpha, att_cache = f["attention_forward"](s, enc, mask, params["Wq"], params["Wk"], params["v"])
        inputs = np.concatenate([inputs, context], axis=1)
    s, step_cache = f["rnn_step_forward"](inputs, s, params["Wx_d"], params["Wh_d"], params["b_d"])
    out = np.concatenate([s, context], axis=1) if attention else s
    return s, out, alpha, (step_cache, att_cache)


def loss_and_grads(params, x, x_mask, y, y_mask, fns, attention=True):
    """Teacher-forced loss (nats per target digit) and the gradient of every parameter."""
    f = require(fns, attention)
    N, T = x.shape
    K = params["W_out"].shape[1]
    enc, s, (emb_cache, enc_cache, first, summary, s0) = encode(params, x, x_mask, f)
    prev = np.concatenate([np.full((N, 1), K), y[:, :-1]], axis=1)      # BOS, then the targets
    outs, steps = [], []
    for t in range(T):
        s, out, _, cache = decoder_step(params, prev[:, t], s, enc, x_mask, f, attention)
        outs.append(out)
        steps.append(cache)
    scores, aff_cache = f["temporal_affine_forward"](np.stack(outs, axis=1), params["W_out"], params["b_out"])
    loss, dscores = f["temporal_softmax_loss"](scores, y, y_mask)
    dout, grads_out, grads_bout = f["temporal_affine_backward"](dscores, aff_cache)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    grads["W_out"], grads["b_out"] = grads_out, grads_bout
    S = s.shape[1]
    E = params["E_dec"].shape[1]
    denc = np.zeros_like(enc)
    demb_dec = np.zeros((N, T, E))
    ds = np.zeros((N, S))
    for t in reversed(range(T)):
        step_cache, att_cache = steps[t]
        dinputs, ds, dWx, dWh, db = f["rnn_step_backward"](ds + dout[:, t, :S], step_cache)
        grads["Wx_d"] += dWx
        grads["Wh_d"] += dWh
        grads["b_d"] += db
        demb_dec[:, t] = dinputs[:, :E]
        if attention:
            dq, denc_t, dWq, dWk, dv = f["attention_backward"](dinputs[:, E:] + dout[:, t, S:], att_cache)
            ds = ds + dq
            denc += denc_t
            grads["Wq"] += dWq
            grads["Wk"] += dWk
            grads["v"] += dv
    _, dec_cache = f["embedding_forward"](prev, params["E_dec"])
    grads["E_dec"] = f["embedding_backward"](demb_dec, dec_cache)
    da = ds * (1.0 - s0**2)                                             # through the bridge's tanh
    grads["W_init"], grads["b_init"] = summary.T @ da, da.sum(axis=0)
    dsummary = da @ params["W_init"].T
    H = enc.shape[-1] // 2
    denc[:, -1, :H] += dsummary[:, :H]
    denc[np.arange(N), first, H:] += dsummary[:, H:]
    demb, *dencoder = f["birnn_backward"](denc, enc_cache)
    grads.update(zip(ENCODER_PARAMS, dencoder))
    grads["E_src"] = f["embedding_backward"](demb, emb_cache)
    return float(loss), grads


@one_blas_thread
def decode(params, x, mask, fns, attention=True):
    """Greedy decoding of T digits: ids (N, T) (only the first as many as a source has
    count), alpha (N, T, T) (the attention weights of each output step over the source;
    zeros without attention)."""
    f = require(fns, attention)
    N, T = x.shape
    K = params["W_out"].shape[1]
    enc, s, _ = encode(params, x, mask, f)
    prev, ids, alphas = np.full(N, K), np.zeros((N, T), dtype=np.int64), np.zeros((N, T, T))
    for t in range(T):
        s, out, alpha, _ = decoder_step(params, prev, s, enc, mask, f, attention)
        scores, _ = f["temporal_affine_forward"](out[:, None], params["W_out"], params["b_out"])
        prev = ids[:, t] = scores[:, 0].argmax(axis=1)
        if attention:
            alphas[:, t] = alpha
    return ids, alphas


def accuracy(params, lengths, fns, attention=True, K=8, count=500, seed=1):
    """{L: share of ``count`` fresh sources of length L reversed without a single wrong digit}."""
    rng = np.random.default_rng(seed)
    result = {}
    for L in lengths:
        x, x_mask, y, _ = make_batch(rng, count, [L], K)
        ids, _ = decode(params, x, x_mask, fns, attention)
        result[L] = float(np.mean(np.all(ids == y, axis=1)))
    return result


@one_blas_thread
def train(lengths, steps, seed, fns, attention=True, K=8, embed=16, hidden=16, state=32, att=16,
          batch=64, lr=1e-2, callback=None):
    """Train the model for ``steps`` Adam updates on batches of fresh sources whose lengths are
    drawn from ``lengths``; return {"loss": one per update, "params": final}.

    ``callback(step, params)``, if given, is called every 100 updates. Runs with one BLAS
    thread (:mod:`rnnkit.threads`).
    """
    f = require(fns, attention)
    rng = np.random.default_rng(seed)
    params = init_params(K, embed, hidden, state, att, rng, attention)
    adam, losses = {"t": 0, "m": {}, "v": {}}, []
    for step in range(1, steps + 1):
        loss, grads = loss_and_grads(params, *make_batch(rng, batch, lengths, K), f, attention)
        adam_update(params, grads, adam, lr)
        losses.append(loss)
        if callback and step % 100 == 0:
            callback(step, params)
    return {"loss": np.array(losses), "params": params}


def plot_attention(ax, alpha, source, output):
    """Draw alpha (T_out, T_in) as a heatmap: row t is where output digit t looked."""
    ax.imshow(alpha, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(source)), [str(d) for d in source])
    ax.set_yticks(range(len(output)), [str(d) for d in output])
    ax.set_xlabel("source digit")
    ax.set_ylabel("output digit")
    return ax
