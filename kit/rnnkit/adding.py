"""The adding problem (Hochreiter & Schmidhuber, 1997), trained in numpy.

Each input sequence has two channels: channel 0 holds values drawn uniformly
from [0, 1], channel 1 is a marker that is 1 at exactly two steps, one in each
half of the sequence, and 0 elsewhere. The target is the sum of the two marked
values. Predicting the mean, 1.0, whatever the input scores the variance of
that sum, ``BASELINE_MSE`` = 2 * 1/12 = 1/6; doing better requires carrying
the first marked value across at least T/2 steps.

The model is one recurrent layer in the course's layout (see
:mod:`rnnkit.conventions`) followed by a linear readout of the last hidden
state, trained on the mean squared error with Adam (and, optionally, a
gradient clipping function). The recurrent layer's forward and backward
functions are parameters of :func:`train`: a student trains their own; the
book trains the course's references (``autograder.experiments.adding``).
"""
import numpy as np

from .conventions import DTYPE, GATES, gate_slice
from .threads import one_blas_thread

#: MSE of the best constant prediction, 1.0: the variance of a sum of two U(0, 1).
BASELINE_MSE = 1.0 / 6.0

#: Seed of the fixed held-out batch every run is evaluated on.
EVAL_SEED = 12345


def make_adding_batch(rng, N, T):
    """Draw N adding-problem sequences of length T >= 2.

    rng: a ``numpy.random.Generator``.
    Returns x (N, T, 2) (channel 0: values in [0, 1]; channel 1: marker, 1 at
    one step in ``[0, T//2)`` and one in ``[T//2, T)``) and y (N,), the sum of
    the two marked values.
    """
    if T < 2:
        raise ValueError(f"the adding problem needs T >= 2, got {T}")
    values = rng.uniform(0.0, 1.0, size=(N, T))
    rows = np.arange(N)
    first = rng.integers(0, T // 2, size=N)
    second = rng.integers(T // 2, T, size=N)
    marker = np.zeros((N, T))
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    x = np.stack([values, marker], axis=-1).astype(DTYPE)
    y = (values[rows, first] + values[rows, second]).astype(DTYPE)
    return x, y


def init_params(cell, H, rng, forget_bias=1.0, D=2):
    """Parameters of a ``cell`` layer ("rnn" or "lstm") of hidden size H plus readout.

    Weights are uniform in [-1/sqrt(H), 1/sqrt(H)] (torch's default); biases are
    zero except the LSTM's forget-gate block, set to ``forget_bias``.
    Returns a dict: Wx (D, G*H), Wh (H, G*H), b (G*H,), w (H,) and c (), the
    readout y_hat = h_T @ w + c.
    """
    G = len(GATES[cell])
    s = 1.0 / np.sqrt(H)
    b = np.zeros(G * H, dtype=DTYPE)
    if cell == "lstm":
        b[gate_slice("lstm", "f", H)] = forget_bias
    return {
        "Wx": rng.uniform(-s, s, size=(D, G * H)).astype(DTYPE),
        "Wh": rng.uniform(-s, s, size=(H, G * H)).astype(DTYPE),
        "b": b,
        "w": rng.uniform(-s, s, size=H).astype(DTYPE),
        "c": np.zeros((), dtype=DTYPE),
    }


def run_layer(cell, forward, x, params):
    """Run the recurrent layer from zero initial state(s).

    x (N, T, D). ``forward`` has the signature of the reference for ``cell``.
    Returns h (N, T, H) and the forward's cache.
    """
    N, H = x.shape[0], params["Wh"].shape[0]
    zeros = np.zeros((N, H), dtype=x.dtype)
    args = (params["Wx"], params["Wh"], params["b"])
    if cell == "lstm":
        h, _, cache = forward(x, zeros, zeros, *args)
    else:
        h, cache = forward(x, zeros, *args)
    return h, cache


def predict(cell, forward, x, params):
    """Model output y_hat (N,) for x (N, T, D)."""
    h, _ = run_layer(cell, forward, x, params)
    return h[:, -1] @ params["w"] + params["c"]


def loss_and_grads(cell, forward, backward, x, y, params):
    """MSE loss of the model on (x, y) and its gradient with respect to params.

    x (N, T, D), y (N,). ``backward`` takes (dh, cache) and returns the
    gradients of the layer's inputs, ending with dWx, dWh, db (true of both
    references, and of truncated backward functions with the same signature).
    Returns the loss (a float) and a dict of gradients keyed like params.
    """
    h, cache = run_layer(cell, forward, x, params)
    h_last = h[:, -1]
    err = h_last @ params["w"] + params["c"] - y
    dy = 2.0 * err / len(y)  # d loss / d y_hat, (N,)
    dh = np.zeros_like(h)
    dh[:, -1] = dy[:, None] * params["w"]  # only the last hidden state is read out
    dWx, dWh, db = backward(dh, cache)[-3:]
    grads = {"Wx": dWx, "Wh": dWh, "b": db, "w": h_last.T @ dy, "c": dy.sum()}
    return float(np.mean(err**2)), grads


def adam_update(params, grads, state, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step (Kingma & Ba, 2015), updating params and state in place.

    state: dict with "t" (steps taken) and "m", "v" (moment estimates keyed like
    params); start from ``{"t": 0, "m": {}, "v": {}}``.
    """
    state["t"] += 1
    t = state["t"]
    for k, g in grads.items():
        m = state["m"][k] = beta1 * state["m"].get(k, 0.0) + (1.0 - beta1) * g
        v = state["v"][k] = beta2 * state["v"].get(k, 0.0) + (1.0 - beta2) * g**2
        m_hat = m / (1.0 - beta1**t)
        v_hat = v / (1.0 - beta2**t)
        params[k] = params[k] - lr * m_hat / (np.sqrt(v_hat) + eps)


def evaluate(cell, forward, params, x, y):
    """Mean squared error of the model on the batch (x, y)."""
    return float(np.mean((predict(cell, forward, x, params) - y) ** 2))


@one_blas_thread
def train(cell, T, steps, seed, forward, backward, hidden=32, batch=64, lr=1e-2, clip=None,
          forget_bias=1.0, eval_every=100, eval_batch=1000):
    """Train a ``cell`` ("rnn" or "lstm") layer plus readout on the adding problem.

    T: sequence length; steps: Adam updates, each on a fresh batch of ``batch``
    sequences; seed: seeds the initial parameters and the training batches.
    forward, backward: the recurrent layer's functions, with the signatures of
    the exercises' ``rnn_forward``/``lstm_forward`` and their backward passes.
    clip: None, or a function that takes the list of gradient arrays and returns
    them clipped (e.g. by global norm, exercise 2).
    Every ``eval_every`` steps, and after the last, the model is scored on a
    fixed held-out batch of ``eval_batch`` sequences (drawn with ``EVAL_SEED``,
    the same for every run).
    Returns a dict: "train_loss" (steps,) the loss on each training batch,
    "eval_step" and "eval_mse" (the held-out curve), "params" (the final ones).
    """
    rng = np.random.default_rng(seed)
    x_eval, y_eval = make_adding_batch(np.random.default_rng(EVAL_SEED), eval_batch, T)
    params = init_params(cell, hidden, rng, forget_bias)
    state = {"t": 0, "m": {}, "v": {}}
    train_loss, curve = [], []
    for step in range(steps):
        if step % eval_every == 0:
            curve.append((step, evaluate(cell, forward, params, x_eval, y_eval)))
        x, y = make_adding_batch(rng, batch, T)
        loss, grads = loss_and_grads(cell, forward, backward, x, y, params)
        if clip is not None:
            grads = dict(zip(grads, clip(list(grads.values()))))
        adam_update(params, grads, state, lr)
        train_loss.append(loss)
    curve.append((steps, evaluate(cell, forward, params, x_eval, y_eval)))
    eval_step, eval_mse = map(np.array, zip(*curve))
    return {"train_loss": np.array(train_loss), "eval_step": eval_step,
            "eval_mse": eval_mse, "params": params}
