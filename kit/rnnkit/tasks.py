"""What each graded function is asked: inputs made from a case spec, how it is called, what it returns.

A *case* is a small dict such as ``{"N": 2, "T": 3, "D": 4, "H": 5, "seed": 7}``.
The same :class:`Task` runs the student's functions in the kernel and the
reference functions in the grader process: ``task.run(functions, inputs)``
with ``functions`` a mapping of names to callables. Nothing here imports
the references, so the kernel side stays light (numpy only).
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .conventions import CACHE_PARTS, CACHES, GATE_NAMES, GATES, SEQUENCE_CACHES, cache_element


@dataclass(frozen=True)
class Task:
    name: str
    kind: str                      # "rnn", "lstm" or "gru": gate blocks of weight outputs
    outputs: tuple                 # names of the returned arrays, in order
    make_inputs: Callable          # case -> dict name -> array (float64)
    run: Callable                  # (functions, inputs) -> tuple of outputs
    public: tuple                  # cases students see and check() runs by default
    needs: tuple = ()              # student functions the task calls
    probes: Callable = field(default=lambda case, inputs: {})  # diagnosis-only inputs
    gated: tuple = ()              # outputs whose last axis is G*H gate blocks
    timed: tuple = ()              # outputs whose axis 1 is time
    probe_outputs: dict = field(default_factory=dict)  # probe -> outputs it isolates (default: all)
    hint: Callable = None          # (wrong probes, wrong outputs) -> "; where the bug is", or ""
    ids: tuple = ()                # outputs that are integer ids: reported as got vs expected
    derive: Callable = None        # (references, inputs) -> more inputs, made by the grader alone
                                   # (a backward's given cache: cache_inputs); the kit ships them
    depends: tuple = ()            # tasks of the student functions this one uses (a forward's cache,
                                   # a step a layer calls): blamed first when they fail
    stepped: tuple = ()            # outputs whose axis 0 is time (a sequence cache's elements)
    labels: dict = field(default_factory=dict)  # output -> what it is, said before its problem
    standins: tuple = ()           # functions the layer calls, bound to their stand-ins (rnnkit.standins)
                                   # in a second run per case: a unit is right if either run is right

    def describe(self, case):
        return ", ".join(f"{k}={v}" for k, v in case.items() if k != "seed")


class StudentError(Exception):
    """A student's function returned something of the wrong form."""


def copy_inputs(inputs):
    """A deep enough copy: arrays copied, scalars (k, max_norm) shared."""
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in inputs.items()}


def unpack(result, count, what):
    """Check that ``result`` is a tuple of ``count`` values (the documented return)."""
    if not isinstance(result, tuple) or len(result) != count:
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise StudentError(f"{what} must return a tuple of {count} values, got {got}")
    return result


# ---------------------------------------------------------------- inputs

def _rng(case):
    return np.random.default_rng(case["seed"])


def _params(rng, D, H, gates, biases=("b",), scale=1.0):
    """Weights scaled so that pre-activations are O(1) (no saturation, no vanishing), times ``scale``.

    A case with a large ``scale`` (e.g. 2000) drives pre-activations far past where
    ``exp`` overflows: only a sigmoid written to be stable survives it.
    """
    p = {"Wx": scale * rng.standard_normal((D, gates * H)) / np.sqrt(D),
         "Wh": scale * rng.standard_normal((H, gates * H)) / np.sqrt(H)}
    for name in biases:
        p[name] = scale * 0.5 * rng.standard_normal(gates * H)
    return p


def step_inputs(kind, upstream=()):
    """Inputs of one step: x (N, D), prev_h (N, H)[, prev_c], params[, upstream grads (N, H)]."""
    gates = len(GATES[kind])
    biases = ("bx", "bh") if kind == "gru" else ("b",)

    def make(case):
        rng, (N, D, H) = _rng(case), (case["N"], case["D"], case["H"])
        inputs = {"x": rng.standard_normal((N, D)), "prev_h": rng.standard_normal((N, H))}
        if kind == "lstm":
            inputs["prev_c"] = rng.standard_normal((N, H))
        inputs.update(_params(rng, D, H, gates, biases, case.get("scale", 1.0)))
        inputs.update({name: rng.standard_normal((N, H)) for name in upstream})
        return inputs
    return make


def sequence_inputs(kind, upstream=False):
    """Inputs of a sequence: x (N, T, D), h0 (N, H)[, c0], params[, dh (N, T, H)]."""
    gates = len(GATES[kind])
    biases = ("bx", "bh") if kind == "gru" else ("b",)

    def make(case):
        rng, (N, T, D, H) = _rng(case), (case["N"], case["T"], case["D"], case["H"])
        inputs = {"x": rng.standard_normal((N, T, D)), "h0": rng.standard_normal((N, H))}
        if kind == "lstm":
            inputs["c0"] = rng.standard_normal((N, H))
        inputs.update(_params(rng, D, H, gates, biases))
        if upstream:
            inputs["dh"] = rng.standard_normal((N, T, H))
        return inputs
    return make


def prefixes(case, inputs):
    """The same sequence cut after 1 .. T-1 steps: locates the first wrong time step.
    (A given cache's elements are stacked over time on their first axis.)"""
    def cut(k, v, t):
        return v[:, :t] if k in ("x", "dh") else v[:t] if k.startswith(CACHE) else v
    return {f"prefix{t}": {k: cut(k, v, t) for k, v in inputs.items()} for t in range(1, case["T"])}


BIASES = ("b", "bx", "bh")


def bias_probes(case, inputs):
    """The same inputs with every bias (b; bx and bh) set to 0."""
    return {"no_bias": {k: np.zeros_like(v) if k in BIASES else v for k, v in copy_inputs(inputs).items()}}


def bias_hint(bad, wrong):
    """Said when the outputs are wrong but right with every bias 0: the bug is in the bias."""
    if "no_bias" in bad:
        return ""
    return "; with b=0 it is right, so the bias b is missing or misplaced"


def gru_bias_hint(bad, wrong):
    """:func:`bias_hint` for the GRU's two biases."""
    if "no_bias" in bad:
        return ""
    return "; with bx=bh=0 it is right, so a bias (bx or bh) is missing or misplaced"


def term_probes(case, inputs):
    """Inputs that keep one term of the pre-activation: x = 0 (recurrent) or prev_h = 0
    (input); and every bias 0 (:func:`bias_probes`)."""
    return {"recurrent": {**copy_inputs(inputs), "x": np.zeros_like(inputs["x"])},
            "input": {**copy_inputs(inputs), "prev_h": np.zeros_like(inputs["prev_h"])},
            **bias_probes(case, inputs)}


def term_hint(bad, wrong):
    """Which term of ``x_t @ Wx + h_{t-1} @ Wh + b`` the probes blame, if exactly one."""
    bad = set(bad)
    said = bias_hint(bad, wrong)
    if said:
        return said
    bad.discard("no_bias")
    if bad == {"recurrent"}:
        return "; with h_{t-1} = 0 it is right, with x_t = 0 it is not: the recurrent term h_{t-1} @ Wh looks wrong"
    if bad == {"input"}:
        return "; with x_t = 0 it is right, with h_{t-1} = 0 it is not: the input term x_t @ Wx looks wrong"
    return ""


def lstm_gate_probes(case, inputs):
    """Inputs that isolate one LSTM gate each, plus the two term probes.

    For gate k, every other gate is driven to 1 by a large bias (sigmoid and tanh agree
    there) and prev_h = prev_c = 0, so one output depends on gate k alone: next_c = i,
    next_c = g, next_h = o * tanh(1) (see LSTM_PROBE_OUTPUTS). The forget gate keeps
    prev_c, with i*g = 0 through g's pre-activation 0: next_c = f * prev_c.
    """
    H = case["H"]
    probes = {}
    for gate in GATES["lstm"]:
        p = copy_inputs(inputs)
        for other, name in enumerate(GATES["lstm"]):
            if name == gate:
                continue
            cols = slice(other * H, (other + 1) * H)
            p["Wx"][:, cols] = 0.0
            p["Wh"][:, cols] = 0.0
            p["b"][cols] = 0.0 if (gate == "f" and name == "g") else 30.0
        p["prev_h"][:] = 0.0
        if gate != "f":
            p["prev_c"][:] = 0.0
        probes[f"gate_{gate}"] = p
    probes.update(term_probes(case, inputs))
    return probes


def derivative_probes(case, inputs):
    """The given cache with next_h = 0, where tanh' = 1 (x, h_{t-1}, Wx, Wh stay): next_h
    enters the backward through tanh' alone, so a backward right there and wrong elsewhere
    mistakes the derivative of tanh."""
    name = CACHE + "next_h"
    return {"tanh_slope_1": {**copy_inputs(inputs), name: np.zeros_like(inputs[name])}}


def derivative_hint(bad, wrong):
    """Blame tanh' only when every output is wrong (each goes through it) and the probe is right."""
    if bad or len(wrong) < 5:
        return ""
    return ("; where h_t=0 (so tanh'=1) it is right: the derivative of tanh looks wrong, "
            "it is 1-h_t**2 with h_t the step's output")


#: The output each LSTM gate probe isolates (other probes compare every output).
LSTM_PROBE_OUTPUTS = {"gate_i": ("next_c",), "gate_g": ("next_c",), "gate_f": ("next_c",), "gate_o": ("next_h",)}


def lstm_hint(bad, wrong):
    """Blame a gate only when the cell state is wrong too: next_h = o * tanh(c_t) checks it first."""
    if "next_c" in wrong and "next_h" not in wrong:
        return ("; next_h = o * tanh(c_t) is right, so the gates and the cell update are right: "
                "next_c must be c_t itself")
    gates = [g for g in GATES["lstm"] if f"gate_{g}" in bad]
    if "g" in gates and "f" in gates:
        gates.remove("f")  # the forget-gate probe assumes a right candidate (tanh(0) = 0)
    said = bias_hint(bad, wrong)
    if said:
        return said
    if gates:
        names = [f"the {GATE_NAMES[g]}" for g in gates]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        order = " (the blocks of Wx, Wh and b are, in order, i, f, g, o)" if len(gates) > 1 else ""
        return f"; {listed} {'look' if len(gates) > 1 else 'looks'} wrong{order}"
    return term_hint([p for p in bad if not p.startswith("gate_")], wrong)


# ---------------------------------------------------------------- runners

def forward(name, args, returns):
    """Run forward function ``name`` on inputs ``args``; keep its outputs, drop its cache."""
    def run(functions, inputs):
        return unpack(functions[name](*(inputs[k] for k in args)), returns, name)[:-1]
    return run


#: Prefix of the inputs that hold a given cache's elements: ``cache.next_h``.
CACHE = "cache."


def _parts(fwd):
    """((input prefix, forward), ...): the parts of ``fwd``'s cache (CACHE_PARTS), or itself."""
    if fwd in CACHE_PARTS:
        return tuple((f"{p}.", sub) for p, sub, _ in CACHE_PARTS[fwd])
    return (("", fwd),)


def cache_names(fwd):
    """Names of the elements of ``fwd``'s cache, flat: ``f``, or ``bwd.next_h`` for a part."""
    return tuple(prefix + n for prefix, sub in _parts(fwd) for n in CACHES[SEQUENCE_CACHES.get(sub) or sub])


def cache_inputs(fwd, args, returns):
    """``derive`` of a backward: the cache of forward ``fwd`` (run by the grader with the
    references) as inputs named by :data:`rnnkit.conventions.CACHES`; a sequence's step
    caches stacked over time on a first axis; a cache of parts (CACHE_PARTS) part by part
    (the elements :func:`forward_cache` reads)."""
    elements = forward_cache(fwd, args, returns, outputs=False)
    names = tuple(CACHE + n for n in cache_names(fwd))

    def derive(functions, inputs):
        return dict(zip(names, elements(functions, inputs)))
    derive.names, derive.forward = names, fwd
    return derive


def given_cache(fwd, inputs):
    """The cache of ``fwd`` in the conventions' layout, from a case's inputs (:func:`cache_inputs`)."""
    parts = []
    for prefix, sub in _parts(fwd):
        step = SEQUENCE_CACHES.get(sub)
        elements = [inputs[CACHE + prefix + n] for n in CACHES[step or sub]]
        parts.append([tuple(e[t] for e in elements) for t in range(len(elements[0]))] if step
                     else tuple(elements))
    return tuple(parts) if fwd in CACHE_PARTS else parts[0]


def _cache_tuple(cache, layout, what):
    """``cache`` as the tuple of ``layout``'s elements, or a StudentError naming the layout."""
    if not isinstance(cache, (tuple, list)) or len(cache) != len(layout):
        got = f"a {type(cache).__name__} of {len(cache)}" if isinstance(cache, (tuple, list)) \
            else type(cache).__name__
        raise StudentError(f"{what} must be a tuple of {len(layout)} elements "
                           f"({', '.join(layout)}), got {got}")
    return tuple(cache)


def _cache_elements(fwd, cache, T, what):
    """The elements of a student's cache ``cache`` of ``fwd`` (called ``what`` in messages),
    a sequence's stacked over time on a first axis; a StudentError if it misses the layout."""
    step = SEQUENCE_CACHES.get(fwd)
    layout = CACHES[step or fwd]
    if not step:
        return _cache_tuple(cache, layout, what)
    if not isinstance(cache, (tuple, list)) or len(cache) != T:
        got = f"{len(cache)} of them" if isinstance(cache, (tuple, list)) else type(cache).__name__
        raise StudentError(f"{what} must be a list of the T={T} steps' caches, got {got}")
    steps = [_cache_tuple(c, layout, f"{what}[{t}]") for t, c in enumerate(cache)]
    elements = []
    for k, name in enumerate(layout):
        values = [np.asarray(c[k]) for c in steps]
        if any(v.shape != values[0].shape for v in values):
            raise StudentError(f"{what}[t][{k}] changes shape from step to step (element {name})")
        elements.append(np.stack(values))
    return tuple(elements)


def forward_cache(fwd, args, returns, outputs=True):
    """Run forward ``fwd``; return its outputs (unless not ``outputs``) and its cache's
    elements in the layout of :data:`rnnkit.conventions.CACHES` (:func:`cache_names`)."""
    def run(functions, inputs):
        *results, cache = unpack(functions[fwd](*(inputs[k] for k in args)), returns, fwd)
        T = inputs["x"].shape[1] if "x" in inputs else None
        if fwd in CACHE_PARTS:
            names = [p for p, _, _ in CACHE_PARTS[fwd]]
            parts = _cache_tuple(cache, names, f"{fwd}'s cache")
            elements = [e for k, ((_, sub), part) in enumerate(zip(_parts(fwd), parts))
                        for e in _cache_elements(sub, part, T, f"{fwd}'s cache[{k}]")]
        else:
            elements = _cache_elements(fwd, cache, T, f"{fwd}'s cache")
        return (*results, *elements) if outputs else tuple(elements)
    return run


def cache_outputs(fwd):
    """Output names of a cache's elements (``cache.f``) and what each is (:func:`forward_cache`)."""
    names = cache_names(fwd)
    return tuple(CACHE + n for n in names), {CACHE + n: cache_element(fwd, n) for n in names}


def backward_given(fwd, name, upstream, returns, extra=()):
    """Backward function ``name(*upstream, cache, *extra)`` on the cache the conventions fix,
    built from the inputs (:func:`given_cache`): never from the student's forward. ``returns``:
    how many arrays it returns (1: a single array, not a tuple)."""
    def run(functions, inputs):
        args = [inputs[k] for k in upstream] + [given_cache(fwd, inputs)] + [inputs[k] for k in extra]
        result = functions[name](*args)
        return (result,) if returns == 1 else unpack(result, returns, name)
    return run


def plain(name, args, outputs):
    """A function returning a single array, or a flat tuple of ``outputs`` arrays."""
    def run(functions, inputs):
        result = functions[name](*(inputs[k] for k in args))
        return (result,) if len(outputs) == 1 else unpack(result, len(outputs), name)
    return run


def clipping(functions, inputs):
    """clip_by_global_norm((g0, g1, g2), max_norm) -> ((c0, c1, c2), total_norm)."""
    name = "clip_by_global_norm"
    clipped, total = unpack(functions[name]((inputs["g0"], inputs["g1"], inputs["g2"]), inputs["max_norm"]),
                            2, name)
    return (*unpack(tuple(clipped), 3, f"the clipped gradients of {name}"), total)


def clipping_inputs(case):
    """Three gradient arrays and a max_norm below (``clip``) or above their global norm."""
    rng, (D, H) = _rng(case), (case["D"], case["H"])
    g = {"g0": 3 * rng.standard_normal((D, H)), "g1": 3 * rng.standard_normal((H, H)),
         "g2": 3 * rng.standard_normal(H)}
    total = np.sqrt(sum(np.sum(a ** 2) for a in g.values()))
    return {**g, "max_norm": float(total * (0.3 if case["clip"] else 2.0))}


def gradient_check_inputs(case):
    """x (N, D) and what defines f(x) = sum(tanh(x @ W) * G): W (D, H), G (N, H); the step eps."""
    rng, (N, D, H) = _rng(case), (case["N"], case["D"], case["H"])
    return {"x": rng.standard_normal((N, D)), "W": rng.standard_normal((D, H)) / np.sqrt(D),
            "G": rng.standard_normal((N, H)), "eps": float(case["eps"])}


def gradient_check(functions, inputs):
    """numerical_gradient(f, x, eps) on the scalar function f(z) = sum(tanh(z @ W) * G)."""
    W, G = inputs["W"], inputs["G"]

    def f(z):
        return float(np.sum(np.tanh(z @ W) * G))
    return (functions["numerical_gradient"](f, inputs["x"], inputs["eps"]),)


def embedding_inputs(case):
    """ids x (N, T) from a small vocabulary (so ids repeat), W (V, D), upstream dout (N, T, D)."""
    rng, (N, T, V, D) = _rng(case), (case["N"], case["T"], case["V"], case["D"])
    return {"x": rng.integers(0, V, size=(N, T)), "W": rng.standard_normal((V, D)),
            "dout": rng.standard_normal((N, T, D))}


def affine_inputs(case):
    """h (N, T, H), W (H, V), b (V,), upstream dscores (N, T, V)."""
    rng, (N, T, H, V) = _rng(case), (case["N"], case["T"], case["H"], case["V"])
    return {"h": rng.standard_normal((N, T, H)), "W": rng.standard_normal((H, V)) / np.sqrt(H),
            "b": rng.standard_normal(V), "dscores": rng.standard_normal((N, T, V))}


def loss_inputs(case):
    """scores (N, T, V) times ``scale``, targets y (N, T), mask (N, T): about 1 in 5 steps padding,
    and the first ``masked_rows`` sequences padding throughout."""
    rng, (N, T, V) = _rng(case), (case["N"], case["T"], case["V"])
    mask = rng.random((N, T)) < 0.8
    mask[:case.get("masked_rows", 0)] = False
    return {"scores": case.get("scale", 1.0) * rng.standard_normal((N, T, V)),
            "y": rng.integers(0, V, size=(N, T)), "mask": mask}


def sampling_inputs(case):
    """scores (N, V) times ``scale``, the case's temperature, uniform draws u (N,)."""
    rng, (N, V) = _rng(case), (case["N"], case["V"])
    return {"scores": case.get("scale", 1.0) * rng.standard_normal((N, V)),
            "temperature": float(case["temperature"]), "u": rng.random(N)}


def truncated_inputs(case):
    return {**sequence_inputs("lstm", upstream=True)(case), "k": case["k"]}


TASKS = {}


def _task(**kw):
    TASKS[kw["name"]] = Task(**kw)


STEP = ("x", "prev_h")
SEQ = ("x", "h0")
RNN_P, LSTM_P, GRU_P = ("Wx", "Wh", "b"), ("Wx", "Wh", "b"), ("Wx", "Wh", "bx", "bh")
_STEP = ({"N": 2, "D": 3, "H": 4, "seed": 0}, {"N": 1, "D": 5, "H": 2, "seed": 1})
_SEQ = ({"N": 2, "T": 3, "D": 4, "H": 5, "seed": 0}, {"N": 3, "T": 1, "D": 2, "H": 3, "seed": 1})
#: A step far out where ``exp`` overflows (pre-activations in the hundreds): only a stable
#: sigmoid survives it. Public, so a student meets the overflow before the grader does.
_STEP_LARGE = _STEP + ({"N": 2, "D": 2, "H": 3, "scale": 500, "seed": 2},)

# --- 01 RNN
_task(name="rnn_step_forward", kind="rnn", outputs=("next_h",), public=_STEP, needs=("rnn_step_forward",),
      make_inputs=step_inputs("rnn"), probes=term_probes, hint=term_hint,
      run=forward("rnn_step_forward", STEP + RNN_P, 2))
_task(name="rnn_step_backward", depends=("rnn_step_forward",), kind="rnn", outputs=("dx", "dprev_h", "dWx", "dWh", "db"), public=_STEP,
      needs=("rnn_step_backward",), make_inputs=step_inputs("rnn", ("dnext_h",)),
      gated=("dWx", "dWh", "db"), probes=derivative_probes, hint=derivative_hint,
      derive=cache_inputs("rnn_step_forward", STEP + RNN_P, 2),
      run=backward_given("rnn_step_forward", "rnn_step_backward", ("dnext_h",), 5))
_task(name="rnn_forward", depends=("rnn_step_forward",), standins=("rnn_step_forward",), kind="rnn", outputs=("h",), public=_SEQ, timed=("h",), needs=("rnn_forward",),
      make_inputs=sequence_inputs("rnn"), run=forward("rnn_forward", SEQ + RNN_P, 2))
_task(name="rnn_backward", depends=("rnn_forward", "rnn_step_backward"), standins=("rnn_step_backward",),
      kind="rnn", outputs=("dx", "dh0", "dWx", "dWh", "db"), public=_SEQ,
      needs=("rnn_backward",), make_inputs=sequence_inputs("rnn", upstream=True),
      probes=prefixes, gated=("dWx", "dWh", "db"), timed=("dx",),
      derive=cache_inputs("rnn_forward", SEQ + RNN_P, 2),
      run=backward_given("rnn_forward", "rnn_backward", ("dh",), 5))

_task(name="numerical_gradient", kind="rnn", outputs=("grad",),
      public=({"N": 2, "D": 3, "H": 4, "eps": 1e-3, "seed": 0}, {"N": 1, "D": 2, "H": 2, "eps": 1e-2, "seed": 1}),
      needs=("numerical_gradient",), make_inputs=gradient_check_inputs, run=gradient_check)

# --- 02 long-term dependencies
_task(name="rnn_gradient_norms", kind="rnn", outputs=("norms",), public=_SEQ, needs=("rnn_gradient_norms",),
      make_inputs=sequence_inputs("rnn"), run=plain("rnn_gradient_norms", SEQ + RNN_P, ("norms",)))
_task(name="clip_by_global_norm", kind="rnn", outputs=("clipped_0", "clipped_1", "clipped_2", "total_norm"),
      public=({"D": 3, "H": 4, "clip": True, "seed": 0}, {"D": 2, "H": 2, "clip": False, "seed": 1}),
      needs=("clip_by_global_norm",), make_inputs=clipping_inputs, run=clipping)

# --- 03 gates
_task(name="lstm_step_forward", kind="lstm", outputs=("next_h", "next_c"), public=_STEP_LARGE,
      needs=("lstm_step_forward",), make_inputs=step_inputs("lstm"), probes=lstm_gate_probes,
      probe_outputs=LSTM_PROBE_OUTPUTS, hint=lstm_hint,
      run=forward("lstm_step_forward", STEP + ("prev_c",) + LSTM_P, 3))
_task(name="lstm_forward", depends=("lstm_step_forward",), standins=("lstm_step_forward",), kind="lstm", outputs=("h", "c"), public=_SEQ, timed=("h", "c"),
      needs=("lstm_forward",), make_inputs=sequence_inputs("lstm"),
      run=forward("lstm_forward", SEQ + ("c0",) + LSTM_P, 3))
_task(name="gru_step_forward", kind="gru", outputs=("next_h",), public=_STEP_LARGE, needs=("gru_step_forward",),
      make_inputs=step_inputs("gru"), probes=bias_probes, hint=gru_bias_hint, run=forward("gru_step_forward", STEP + GRU_P, 2))

# --- 04 backpropagation through time
#: The forwards of exercise 4 (pasted from exercise 3, and the GRU's unrolled): their outputs
#: and every element of their caches, in the layout of conventions.CACHES. Each backward is
#: graded on that cache, built by the grader (cache_inputs): a wrong forward costs these only.
_LSTM_STEP_CACHE, _LSTM_STEP_LABELS = cache_outputs("lstm_step_forward")
_LSTM_SEQ_CACHE, _LSTM_SEQ_LABELS = cache_outputs("lstm_forward")
_GRU_STEP_CACHE, _GRU_STEP_LABELS = cache_outputs("gru_step_forward")
_GRU_SEQ_CACHE, _GRU_SEQ_LABELS = cache_outputs("gru_forward")
_task(name="lstm_step_forward_cache", kind="lstm", outputs=("next_h", "next_c") + _LSTM_STEP_CACHE,
      labels=_LSTM_STEP_LABELS, public=_STEP, needs=("lstm_step_forward",), make_inputs=step_inputs("lstm"),
      run=forward_cache("lstm_step_forward", STEP + ("prev_c",) + LSTM_P, 3))
_task(name="lstm_forward_cache", depends=("lstm_step_forward_cache",), standins=("lstm_step_forward",),
      kind="lstm", outputs=("h", "c") + _LSTM_SEQ_CACHE, labels=_LSTM_SEQ_LABELS,
      public=_SEQ, timed=("h", "c"), stepped=_LSTM_SEQ_CACHE, needs=("lstm_forward",),
      make_inputs=sequence_inputs("lstm"), run=forward_cache("lstm_forward", SEQ + ("c0",) + LSTM_P, 3))
_task(name="gru_step_forward_cache", kind="gru", outputs=("next_h",) + _GRU_STEP_CACHE, labels=_GRU_STEP_LABELS,
      public=_STEP, needs=("gru_step_forward",), make_inputs=step_inputs("gru"),
      run=forward_cache("gru_step_forward", STEP + GRU_P, 2))
_task(name="gru_forward_cache", depends=("gru_step_forward_cache",), standins=("gru_step_forward",),
      kind="gru", outputs=("h",) + _GRU_SEQ_CACHE, labels=_GRU_SEQ_LABELS,
      public=_SEQ, timed=("h",), stepped=_GRU_SEQ_CACHE, needs=("gru_forward",),
      make_inputs=sequence_inputs("gru"), run=forward_cache("gru_forward", SEQ + GRU_P, 2))

_task(name="lstm_step_backward", depends=("lstm_step_forward_cache",), kind="lstm",
      outputs=("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"),
      public=_STEP, needs=("lstm_step_backward",),
      make_inputs=step_inputs("lstm", ("dnext_h", "dnext_c")), gated=("dWx", "dWh", "db"),
      derive=cache_inputs("lstm_step_forward", STEP + ("prev_c",) + LSTM_P, 3),
      run=backward_given("lstm_step_forward", "lstm_step_backward", ("dnext_h", "dnext_c"), 6))
_task(name="lstm_backward", depends=("lstm_forward_cache", "lstm_step_backward"), standins=("lstm_step_backward",),
      kind="lstm",
      outputs=("dx", "dh0", "dc0", "dWx", "dWh", "db"), public=_SEQ,
      needs=("lstm_backward",), make_inputs=sequence_inputs("lstm", upstream=True),
      probes=prefixes, gated=("dWx", "dWh", "db"), timed=("dx",),
      derive=cache_inputs("lstm_forward", SEQ + ("c0",) + LSTM_P, 3),
      run=backward_given("lstm_forward", "lstm_backward", ("dh",), 6))
_task(name="gru_step_backward", depends=("gru_step_forward_cache",), kind="gru",
      outputs=("dx", "dprev_h", "dWx", "dWh", "dbx", "dbh"), public=_STEP,
      needs=("gru_step_backward",), make_inputs=step_inputs("gru", ("dnext_h",)),
      gated=("dWx", "dWh", "dbx", "dbh"), derive=cache_inputs("gru_step_forward", STEP + GRU_P, 2),
      run=backward_given("gru_step_forward", "gru_step_backward", ("dnext_h",), 6))
_task(name="gru_backward", depends=("gru_forward_cache", "gru_step_backward"), standins=("gru_step_backward",),
      kind="gru",
      outputs=("dx", "dh0", "dWx", "dWh", "dbx", "dbh"), public=_SEQ,
      needs=("gru_backward",), make_inputs=sequence_inputs("gru", upstream=True),
      probes=prefixes, gated=("dWx", "dWh", "dbx", "dbh"), timed=("dx",),
      derive=cache_inputs("gru_forward", SEQ + GRU_P, 2),
      run=backward_given("gru_forward", "gru_backward", ("dh",), 6))
_task(name="lstm_truncated_backward", depends=("lstm_forward_cache", "lstm_step_backward"),
      standins=("lstm_step_backward",), kind="lstm",
      outputs=("dx", "dh0", "dc0", "dWx", "dWh", "db"),
      public=({"N": 2, "T": 5, "D": 3, "H": 4, "k": 2, "seed": 0}, {"N": 1, "T": 3, "D": 2, "H": 2, "k": 3, "seed": 1}),
      needs=("lstm_truncated_backward",), make_inputs=truncated_inputs,
      probes=prefixes, gated=("dWx", "dWh", "db"), timed=("dx",),
      derive=cache_inputs("lstm_forward", SEQ + ("c0",) + LSTM_P, 3),
      run=backward_given("lstm_forward", "lstm_truncated_backward", ("dh",), 6, extra=("k",)))

# --- 05 language model
_LM = ({"N": 2, "T": 3, "V": 5, "D": 4, "H": 3, "seed": 0}, {"N": 1, "T": 4, "V": 3, "D": 2, "H": 2, "seed": 1},
       {"N": 3, "T": 1, "V": 4, "D": 3, "H": 2, "seed": 2})
#: The loss also on padding throughout (every step of a batch masked: loss 0, gradient 0)
#: and on logits in the hundreds (exp overflows unless each row's maximum is subtracted).
_LOSS = _LM + ({"N": 2, "T": 3, "V": 4, "masked_rows": 2, "seed": 3},
               {"N": 2, "T": 2, "V": 5, "scale": 800, "seed": 4})
#: Sampling at temperatures below and above 1, greedy, and far out where exp overflows.
_SAMPLE = ({"N": 3, "V": 5, "temperature": 1.0, "seed": 0}, {"N": 2, "V": 4, "temperature": 0.0, "seed": 1},
           {"N": 8, "V": 5, "temperature": 0.4, "seed": 2}, {"N": 1, "V": 6, "temperature": 3.0, "seed": 3},
           {"N": 4, "V": 6, "temperature": 0.8, "scale": 2000, "seed": 4})
_task(name="embedding_forward", kind="rnn", outputs=("out",), public=_LM, timed=("out",),
      needs=("embedding_forward",), make_inputs=embedding_inputs, run=forward("embedding_forward", ("x", "W"), 2))
_task(name="embedding_backward", depends=("embedding_forward",), kind="rnn", outputs=("dW",), public=_LM,
      needs=("embedding_backward",), make_inputs=embedding_inputs,
      derive=cache_inputs("embedding_forward", ("x", "W"), 2),
      run=backward_given("embedding_forward", "embedding_backward", ("dout",), 1))
_task(name="temporal_affine_forward", kind="rnn", outputs=("scores",), public=_LM, timed=("scores",),
      needs=("temporal_affine_forward",), make_inputs=affine_inputs, probes=bias_probes, hint=bias_hint,
      run=forward("temporal_affine_forward", ("h", "W", "b"), 2))
_task(name="temporal_affine_backward", depends=("temporal_affine_forward",), kind="rnn", outputs=("dh", "dW", "db"), public=_LM, timed=("dh",),
      needs=("temporal_affine_backward",), make_inputs=affine_inputs,
      derive=cache_inputs("temporal_affine_forward", ("h", "W", "b"), 2),
      run=backward_given("temporal_affine_forward", "temporal_affine_backward", ("dscores",), 3))
_task(name="temporal_softmax_loss", kind="rnn", outputs=("loss", "dscores"), public=_LOSS, timed=("dscores",),
      needs=("temporal_softmax_loss",), make_inputs=loss_inputs,
      run=plain("temporal_softmax_loss", ("scores", "y", "mask"), ("loss", "dscores")))
_task(name="sample_next", kind="rnn", outputs=("ids",),
      public=_SAMPLE, needs=("sample_next",), ids=("ids",), make_inputs=sampling_inputs,
      run=plain("sample_next", ("scores", "temperature", "u"), ("ids",)))
