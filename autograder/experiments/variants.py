"""Many small recurrent models trained at once with torch, for the book's sweeps.

The data are those of :mod:`autograder.experiments.adding` (and one context task
defined here); the models are trained with torch in float32 because the book
trains dozens of them at build time. Two trainers:

- :func:`train_gap_sweep` trains torch's fused ``nn.RNN``/``nn.LSTM``/``nn.GRU``
  layers on the adding problem at several sequence lengths.
- :func:`train_lstm_variants` trains V LSTM variants side by side as one stacked
  model (every parameter has a leading model axis of size V), so that one Python
  loop over time serves them all; each variant sees the same batches.

Both return held-out mean squared errors on a fixed batch drawn with
``adding.EVAL_SEED``. Gate blocks follow ``rnnkit.conventions.GATES["lstm"]``.
"""
import numpy as np
import torch

from rnnkit.conventions import GATES
from autograder.experiments.adding import EVAL_SEED, make_adding_batch
from autograder.experiments.pool import map_in_workers

#: LSTM variant flags and their defaults: the forget gate's bias at
#: initialisation, whether the forget / output gate exists (else it is 1),
#: whether the input gate is tied to 1 - f, whether the gates see c
#: (peepholes), whether the gates see h_{t-1} (else x_t alone), and whether
#: the candidate sees h_{t-1} (False with h_in_gates False: no recurrent
#: weights at all, the cell as seed 004 writes it).
VARIANT_DEFAULTS = {"forget_bias": 1.0, "forget_gate": True, "output_gate": True,
                    "coupled": False, "peepholes": False, "h_in_gates": True,
                    "h_in_candidate": True}

#: MSE of the best constant prediction of the first-mark task: var U(0, 1).
FIRST_MARK_BASELINE = 1.0 / 12.0


def first_mark_batch(rng, N, T, marks=3):
    """Context task: remember the value at the first of ``marks`` markers.

    rng: a ``numpy.random.Generator``; T >= marks.
    Returns x (N, T, 2) (channel 0: values in [0, 1]; channel 1: 1 at ``marks``
    distinct random steps) and y (N,), the value at the earliest marked step.
    A cell must write on the first marker and not on the later ones.
    """
    if not 1 <= marks <= T:
        raise ValueError(f"need 1 <= marks <= T, got marks={marks}, T={T}")
    values = rng.uniform(0.0, 1.0, size=(N, T))
    where = np.argsort(rng.random((N, T)), axis=1)[:, :marks]
    marker = np.zeros((N, T))
    marker[np.arange(N)[:, None], where] = 1.0
    y = values[np.arange(N), where.min(axis=1)]
    return np.stack([values, marker], axis=-1), y


TASKS = {"adding": make_adding_batch, "first_mark": first_mark_batch}


def _tensors(x, y):
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def _identity_init(layer):
    """tanh RNN with W_h = I and zero biases (Le, Jaitly and Hinton 2015 use ReLU)."""
    with torch.no_grad():
        layer.weight_hh_l0.copy_(torch.eye(layer.hidden_size))
        layer.bias_ih_l0.zero_()
        layer.bias_hh_l0.zero_()


def _orthogonal_init(layer):
    torch.nn.init.orthogonal_(layer.weight_hh_l0)


#: Models of the gap-length sweep: (torch layer, initialisation of W_h or None).
SWEEP_MODELS = {
    "RNN, default init": ("RNN", None),
    "RNN, orthogonal init": ("RNN", _orthogonal_init),
    "RNN, identity init": ("RNN", _identity_init),
    "LSTM": ("LSTM", None),
    "GRU": ("GRU", None),
}


def _lstm_forget_bias(layer, value):
    """torch adds bias_ih and bias_hh: forget block value + 0."""
    H = layer.hidden_size
    k = GATES["lstm"].index("f")
    with torch.no_grad():
        layer.bias_ih_l0[k * H:(k + 1) * H] = value
        layer.bias_hh_l0[k * H:(k + 1) * H] = 0.0


def train_gap_sweep(Ts, steps, seed=0, hidden=32, batch=32, lr=1e-2,
                    clip=1.0, eval_batch=500, models=None):
    """Train every model of ``SWEEP_MODELS`` on the adding problem at each T.

    Ts: sequence lengths; steps: Adam updates per run, batches of ``batch``
    fresh sequences, gradient norm clipped to ``clip``; the LSTM's forget bias
    starts at 1. The runs are independent and go to worker processes
    (:mod:`autograder.experiments.pool`). Returns {(model name, T): held-out
    MSE after training}.
    """
    jobs = [dict(name=name, T=T, steps=steps, seed=seed, hidden=hidden, batch=batch,
                 lr=lr, clip=clip, eval_batch=eval_batch)
            for T in Ts for name in (models or SWEEP_MODELS)]
    return {(job["name"], job["T"]): mse
            for job, mse in zip(jobs, map_in_workers(gap_run, jobs))}


def gap_run(job):
    """One run of :func:`train_gap_sweep` (job: its arguments, one model name and one T):
    the held-out MSE after training."""
    torch.set_num_threads(1)
    T, batch = job["T"], job["batch"]
    x_eval, y_eval = _tensors(*make_adding_batch(
        np.random.default_rng(EVAL_SEED), job["eval_batch"], T))
    kind, init = SWEEP_MODELS[job["name"]]
    torch.manual_seed(job["seed"])
    layer = getattr(torch.nn, kind)(2, job["hidden"], batch_first=True)
    if init is not None:
        init(layer)
    if kind == "LSTM":
        _lstm_forget_bias(layer, 1.0)
    readout = torch.nn.Linear(job["hidden"], 1)
    params = list(layer.parameters()) + list(readout.parameters())
    opt = torch.optim.Adam(params, lr=job["lr"])
    rng = np.random.default_rng(job["seed"])
    for _ in range(job["steps"]):
        x, y = _tensors(*make_adding_batch(rng, batch, T))
        y_hat = readout(layer(x)[0][:, -1]).squeeze(-1)
        loss = torch.mean((y_hat - y) ** 2)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, job["clip"])
        opt.step()
    with torch.no_grad():
        y_hat = readout(layer(x_eval)[0][:, -1]).squeeze(-1)
        return torch.mean((y_hat - y_eval) ** 2).item()


class StackedLSTM(torch.nn.Module):
    """V independent LSTMs (plus linear readouts) evaluated as one module.

    variants: list of V dicts of flags (keys of ``VARIANT_DEFAULTS``);
    seeds: list of V initialisation seeds (equal seeds give equal initial
    weights, whatever the flags). Parameters: Wx (V, D, 4H), Wh (V, H, 4H),
    b (V, 4H), peep (V, 3, H) for i, f, o, w (V, H), c (V,).
    """

    def __init__(self, variants, seeds, D, H):
        super().__init__()
        flags = [{**VARIANT_DEFAULTS, **v} for v in variants]
        unknown = {k for v in variants for k in v} - set(VARIANT_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown variant flags: {sorted(unknown)}")
        s = 1.0 / np.sqrt(H)
        init = []
        for seed in seeds:
            g = torch.Generator().manual_seed(seed)
            init.append([(torch.rand(shape, generator=g) * 2 - 1) * s
                         for shape in ((D, 4 * H), (H, 4 * H), (H,))])
        self.Wx = torch.nn.Parameter(torch.stack([p[0] for p in init]))
        self.Wh = torch.nn.Parameter(torch.stack([p[1] for p in init]))
        self.w = torch.nn.Parameter(torch.stack([p[2] for p in init]))
        b = torch.zeros(len(flags), 4, H)
        b[:, GATES["lstm"].index("f")] = torch.tensor(
            [f["forget_bias"] for f in flags])[:, None]
        self.b = torch.nn.Parameter(b.reshape(len(flags), 4 * H))
        self.c = torch.nn.Parameter(torch.zeros(len(flags)))
        self.peep = torch.nn.Parameter(torch.zeros(len(flags), 3, H))

        def mask(key):
            return torch.tensor([float(f[key]) for f in flags])[:, None, None]

        self.has_f, self.has_o = mask("forget_gate"), mask("output_gate")
        self.coupled, self.has_peep = mask("coupled"), mask("peepholes")
        h_mask = torch.ones(len(flags), 1, 4, H)
        for k in GATES["lstm"]:
            key = "h_in_candidate" if k == "g" else "h_in_gates"
            h_mask[:, 0, GATES["lstm"].index(k)] = mask(key)[:, 0]
        self.h_mask = h_mask.reshape(len(flags), 1, 4 * H)
        self.H = H

    def forward(self, x):
        """x (N, T, D) shared by all models. Returns y_hat (V, N)."""
        V, N, H = self.Wx.shape[0], x.shape[0], self.H
        ax = torch.einsum("ntd,vdk->tvnk", x, self.Wx) + self.b[:, None]
        Wh = self.Wh * self.h_mask
        peep = self.peep * self.has_peep
        h = torch.zeros(V, N, H)
        c = torch.zeros(V, N, H)
        k = {name: GATES["lstm"].index(name) for name in GATES["lstm"]}
        for a_x in ax:
            a = (a_x + torch.bmm(h, Wh)).reshape(V, N, 4, H)
            f = torch.sigmoid(a[:, :, k["f"]] + peep[:, None, 1] * c)
            f = self.has_f * f + (1 - self.has_f)
            i = torch.sigmoid(a[:, :, k["i"]] + peep[:, None, 0] * c)
            i = self.coupled * (1 - f) + (1 - self.coupled) * i
            c = f * c + i * torch.tanh(a[:, :, k["g"]])
            o = torch.sigmoid(a[:, :, k["o"]] + peep[:, None, 2] * c)
            o = self.has_o * o + (1 - self.has_o)
            h = o * torch.tanh(c)
        return torch.einsum("vnh,vh->vn", h, self.w) + self.c[:, None]


def clip_each_model(params, clip):
    """Scale the gradients of each model to global norm <= clip, in place.

    params: tensors whose first axis indexes the V models, with gradients.
    """
    with torch.no_grad():
        V = params[0].shape[0]
        sq = sum(p.grad.reshape(V, -1).pow(2).sum(1) for p in params)
        scale = torch.clamp(clip / (sq.sqrt() + 1e-12), max=1.0)
        for p in params:
            p.grad *= scale.reshape(-1, *[1] * (p.dim() - 1))


def train_lstm_variants(variants, seeds, task, T, steps, hidden=16, batch=32,
                        lr=1e-2, clip=1.0, eval_batch=500, eval_every=50):
    """Train every (variant, seed) pair on ``task`` ("adding" or "first_mark").

    variants: {name: dict of flags}; seeds: initialisation seeds. All models
    see the same batches (drawn with seed 0) and each has its own gradient
    clipping to norm ``clip``. Returns {"eval_step": (E,), "mse": {(name,
    seed): (E,) held-out MSE}}, evaluated every ``eval_every`` steps and last.
    """
    torch.set_num_threads(1)
    pairs = [(name, seed) for name in variants for seed in seeds]
    model = StackedLSTM([variants[n] for n, _ in pairs], [s for _, s in pairs],
                        2, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    make = TASKS[task]
    x_eval, y_eval = _tensors(*make(np.random.default_rng(EVAL_SEED),
                                    eval_batch, T))
    rng = np.random.default_rng(0)
    eval_step, curves = [], []
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                err = model(x_eval) - y_eval
            eval_step.append(step)
            curves.append(torch.mean(err**2, dim=1).numpy())
        if step == steps:
            break
        x, y = _tensors(*make(rng, batch, T))
        loss = torch.mean((model(x) - y) ** 2, dim=1).sum()  # models independent
        opt.zero_grad()
        loss.backward()
        clip_each_model(list(model.parameters()), clip)
        opt.step()
    curves = np.array(curves)
    return {"eval_step": np.array(eval_step),
            "mse": {pair: curves[:, j] for j, pair in enumerate(pairs)}}
