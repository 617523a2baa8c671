"""Exercise 6's tasks: a bidirectional RNN layer and additive (Bahdanau) attention.

Registered into :data:`rnnkit.tasks.TASKS` when the package is imported (see
``rnnkit/__init__.py``). Shapes as in exercise 6:
x (N, T, D), h (N, T, 2H) with the forward direction in ``h[..., :H]``; q (N, Hq),
enc (N, T, He), mask (N, T), Wq (Hq, A), Wk (He, A), v (A,), context (N, He), alpha (N, T).
The probes run the student's function on changed inputs; which of them come out
right tells the typical mistakes apart (:func:`birnn_hint`, :func:`attention_hint`).
"""
import numpy as np

from .tasks import (CACHE, TASKS, Task, _params, _rng, backward_given, cache_inputs, cache_outputs, copy_inputs,
                    forward, forward_cache)

BIRNN_P = ("Wx_f", "Wh_f", "b_f", "Wx_b", "Wh_b", "b_b")
ATTENTION_ARGS = ("q", "enc", "mask", "Wq", "Wk", "v")


def birnn_inputs(case):
    """x (N, T, D), each direction's Wx (D, H), Wh (H, H), b (H,); upstream dh (N, T, 2H)."""
    rng, (N, T, D, H) = _rng(case), (case["N"], case["T"], case["D"], case["H"])
    inputs = {"x": rng.standard_normal((N, T, D))}
    for side in ("f", "b"):
        inputs.update({f"{k}_{side}": a for k, a in _params(rng, D, H, 1).items()})
    inputs["dh"] = rng.standard_normal((N, T, 2 * H))
    return inputs


def _zeroed(inputs, side):
    p = copy_inputs(inputs)
    for k in ("Wx", "Wh", "b"):
        p[f"{k}_{side}"][:] = 0.0
    return p


def _first_step(inputs):
    return {k: v[:, :1] if k in ("x", "dh") else v for k, v in inputs.items()}


def birnn_probes(case, inputs):
    """One direction silenced (its weights zero: its half of h is 0); the backward one alone
    on the first step only (no order to get wrong); both directions with the forward
    direction's weights on one step (the two halves equal: swapping them changes nothing)."""
    same = copy_inputs(inputs)
    for k in ("Wx", "Wh", "b"):
        same[f"{k}_b"] = same[f"{k}_f"].copy()
    return {"forward_only": _zeroed(inputs, "b"), "backward_only": _zeroed(inputs, "f"),
            "backward_one_step": _first_step(_zeroed(inputs, "f")), "same_one_step": _first_step(same)}


def birnn_backward_probes(case, inputs):
    """The upstream gradient of one direction alone (the other half of dh zero): the given
    cache stays the right one, and a right backward's gradients of the other direction are 0."""
    H = inputs["dh"].shape[-1] // 2
    probes = {}
    for name, silent in (("forward_half_only", slice(H, None)), ("backward_half_only", slice(None, H))):
        p = copy_inputs(inputs)
        p["dh"][..., silent] = 0.0
        probes[name] = p
    return probes


def birnn_backward_hint(bad, wrong):
    """Where a bidirectional layer's backward goes wrong, from its wrong outputs and the probes."""
    grads_f = {"dWx_f", "dWh_f", "db_f"} & set(wrong)
    grads_b = {"dWx_b", "dWh_b", "db_b"} & set(wrong)
    if grads_b and not grads_f:
        return ("; the forward direction's gradients are right, the backward direction's are not: "
                "it reads x_{T-1} .. x_0, so its gradient flows from t=0 up to T-1")
    if grads_f and not grads_b:
        return "; the backward direction's gradients are right, the forward direction's are not"
    if set(wrong) == {"dx"}:
        return ("; the weight gradients are right: dx must add both directions' input "
                "gradients, the backward direction's put back in time order")
    if "forward_half_only" in bad and "backward_half_only" in bad:
        return ""
    if "backward_half_only" in bad:
        return "; right when dh[..., H:] is 0: the backward direction's part is wrong"
    if "forward_half_only" in bad:
        return "; right when dh[..., :H] is 0: the forward direction's part is wrong"
    return ""


def birnn_hint(bad, wrong):
    """Where a bidirectional layer's forward goes wrong, from the probes."""
    bad = set(bad)
    if {"forward_only", "backward_only"} <= bad and "same_one_step" not in bad:
        return ("; the two directions look swapped or share one direction's weights: h[..., :H] is "
                "the forward direction (Wx_f, Wh_f, b_f), h[..., H:] the backward one (Wx_b, Wh_b, b_b)")
    if "forward_only" not in bad and "backward_only" in bad:
        if "backward_one_step" in bad:
            return "; the forward direction is right, the backward direction is wrong even on one step"
        return ("; the forward direction is right, and the backward one on a single step: "
                "h[:, t, H:] must be the state after reading x_{T-1} .. x_t, put back in time order")
    if "forward_only" in bad and "backward_only" not in bad:
        return "; the backward direction is right, the forward direction is not"
    return ""


def attention_inputs(case):
    """q (N, Hq), enc (N, T, He), mask (N, T) of random lengths 1..T (the first sequence full,
    the last one shorter when T > 1), Wq (Hq, A), Wk (He, A), v (A,); upstream dcontext (N, He)."""
    rng = _rng(case)
    N, T, Hq, He, A = (case[k] for k in ("N", "T", "Hq", "He", "A"))
    lengths = rng.integers(1, T + 1, size=N)
    lengths[0] = T
    if N > 1 and T > 1:
        lengths[-1] = min(lengths[-1], T - 1)
    return {"q": rng.standard_normal((N, Hq)), "enc": rng.standard_normal((N, T, He)),
            "mask": np.arange(T) < lengths[:, None],
            "Wq": rng.standard_normal((Hq, A)) / np.sqrt(Hq), "Wk": rng.standard_normal((He, A)) / np.sqrt(He),
            "v": rng.standard_normal(A), "dcontext": rng.standard_normal((N, He))}


def attention_probes(case, inputs):
    """No padding (every position real); and, also without padding, v = 0: every score
    is 0, so alpha must be 1/T at every position of every sequence."""
    full = {**copy_inputs(inputs), "mask": np.ones_like(inputs["mask"])}
    return {"no_padding": full, "flat": {**copy_inputs(full), "v": np.zeros_like(inputs["v"])}}


def attention_hint(bad, wrong):
    """Which part of additive attention's forward the probes blame."""
    bad = set(bad)
    if "flat" in bad:
        return ("; with every score equal alpha must be 1/T at each position: is the softmax "
                "taken over time (axis 1), once per sequence?")
    if "no_padding" in bad:
        return "; the scores v . tanh(q @ Wq + enc_j @ Wk) look wrong"
    return ("; right when no position is padding: a padded position (mask False) must get "
            "alpha = 0, the softmax taken over the real positions only")


def attention_backward_probes(case, inputs):
    """The given cache with v = 0: nothing flows back through the scores' tanh (dq, dWq and
    dWk are 0), only through context = sum_j alpha_j enc_j and the softmax (dv, denc)."""
    return {"no_score_path": {**copy_inputs(inputs), CACHE + "v": np.zeros_like(inputs[CACHE + "v"])}}


def attention_backward_hint(bad, wrong):
    """Which path of attention's backward the probe blames."""
    if "no_score_path" in bad:
        return ("; wrong already with v = 0 (no gradient through the scores' tanh): look at the "
                "gradient through context = sum_j alpha_j enc_j and the softmax")
    return "; right with v = 0: the gradient through the scores v . tanh(q @ Wq + enc_j @ Wk) looks wrong"


def _register(**kw):
    TASKS[kw["name"]] = Task(**kw)


_BI = ({"N": 2, "T": 4, "D": 3, "H": 2, "seed": 0}, {"N": 1, "T": 3, "D": 2, "H": 3, "seed": 1})
_ATT = ({"N": 2, "T": 4, "Hq": 3, "He": 5, "A": 4, "seed": 0},
        {"N": 3, "T": 5, "Hq": 2, "He": 2, "A": 3, "seed": 1})

#: The caches of exercise 6's forwards, fixed by conventions.CACHES and CACHE_PARTS: each
#: backward is graded on the cache the grader builds (cache_inputs), the forward's own cache
#: by its *_cache check (its elements only: h, context and alpha have their own checks).
#: The bidirectional layer uses the student's rnn_forward and rnn_backward of section 0
#: (graded in exercise 1): each layer is also run with a stand-in for it (rnnkit.standins),
#: so a mistake there costs the layer nothing; the layer's report names it.
_BIRNN_CACHE, _BIRNN_LABELS = cache_outputs("birnn_forward")
_ATTENTION_CACHE, _ATTENTION_LABELS = cache_outputs("attention_forward")

_register(name="birnn_forward", depends=("rnn_forward", "rnn_step_forward"), standins=("rnn_forward",), kind="rnn", outputs=("h",), public=_BI, timed=("h",),
          needs=("birnn_forward",), make_inputs=birnn_inputs, probes=birnn_probes, hint=birnn_hint,
          run=forward("birnn_forward", ("x",) + BIRNN_P, 2))
_register(name="birnn_forward_cache", depends=("rnn_forward", "rnn_step_forward"), standins=("rnn_forward",), kind="rnn", outputs=_BIRNN_CACHE,
          labels=_BIRNN_LABELS, public=_BI, stepped=_BIRNN_CACHE, needs=("birnn_forward",), make_inputs=birnn_inputs,
          run=forward_cache("birnn_forward", ("x",) + BIRNN_P, 2, outputs=False))
_register(name="birnn_backward", depends=("birnn_forward_cache", "rnn_backward", "rnn_step_backward"), standins=("rnn_backward",),
          kind="rnn",
          outputs=("dx", "dWx_f", "dWh_f", "db_f", "dWx_b", "dWh_b", "db_b"), public=_BI, timed=("dx",),
          needs=("birnn_backward",), make_inputs=birnn_inputs, probes=birnn_backward_probes,
          hint=birnn_backward_hint, derive=cache_inputs("birnn_forward", ("x",) + BIRNN_P, 2),
          run=backward_given("birnn_forward", "birnn_backward", ("dh",), 7))
_register(name="attention_forward", kind="rnn", outputs=("context", "alpha"), public=_ATT, timed=("alpha",),
          needs=("attention_forward",), make_inputs=attention_inputs, probes=attention_probes,
          hint=attention_hint, run=forward("attention_forward", ATTENTION_ARGS, 3))
_register(name="attention_forward_cache", kind="rnn", outputs=_ATTENTION_CACHE, labels=_ATTENTION_LABELS,
          public=_ATT, timed=(CACHE + "enc", CACHE + "u", CACHE + "alpha"), needs=("attention_forward",),
          make_inputs=attention_inputs, run=forward_cache("attention_forward", ATTENTION_ARGS, 3, outputs=False))
_register(name="attention_backward", depends=("attention_forward_cache",), kind="rnn",
          outputs=("dq", "denc", "dWq", "dWk", "dv"), public=_ATT, timed=("denc",), needs=("attention_backward",),
          make_inputs=attention_inputs, probes=attention_backward_probes, hint=attention_backward_hint,
          derive=cache_inputs("attention_forward", ATTENTION_ARGS, 3),
          run=backward_given("attention_forward", "attention_backward", ("dcontext",), 5))
