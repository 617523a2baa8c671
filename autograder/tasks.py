"""What each graded function is asked: inputs made from a case spec, how it is called, what it returns.

A *case* is a small dict such as ``{"N": 2, "T": 3, "D": 4, "H": 5, "seed": 7}``.
The same :class:`Task` runs the student's functions in the kernel and the
reference functions in the grader process: ``task.run(functions, inputs)``
with ``functions`` a mapping of names to callables. Nothing here imports
the references, so the kernel side stays light (numpy only).
"""
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from .conventions import GATES, DTYPE


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

    def describe(self, case):
        return ", ".join(f"{k}={v}" for k, v in case.items() if k != "seed")


class StudentError(Exception):
    """A student's function returned something of the wrong form."""


def unpack(result, count, what):
    """Check that ``result`` is a tuple of ``count`` values (the documented return)."""
    if not isinstance(result, tuple) or len(result) != count:
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise StudentError(f"{what} must return a tuple of {count} values, got {got}")
    return result


# ---------------------------------------------------------------- inputs

def _rng(case):
    return np.random.default_rng(case["seed"])


def _params(rng, D, H, gates, biases=("b",)):
    """Weights scaled so that pre-activations are O(1): no saturation, no vanishing."""
    p = {"Wx": rng.standard_normal((D, gates * H)) / np.sqrt(D),
         "Wh": rng.standard_normal((H, gates * H)) / np.sqrt(H)}
    for name in biases:
        p[name] = 0.5 * rng.standard_normal(gates * H)
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
        inputs.update(_params(rng, D, H, gates, biases))
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
    """The same sequence cut after 1 .. T-1 steps: locates the first wrong time step."""
    return {f"prefix{t}": {k: (v[:, :t] if k in ("x", "dh") else v) for k, v in inputs.items()}
            for t in range(1, case["T"])}


def lstm_gate_probes(case, inputs):
    """Inputs that isolate one LSTM gate each.

    All other gates are driven to 1 by a large bias (sigmoid and tanh agree there)
    and prev_c is 0, so the outputs depend on the probed gate alone: probing i gives
    next_c = i, probing g gives next_c = g, probing o gives next_h = o * tanh(1).
    The forget gate is probed last, with prev_c kept and i*g = 0 via g's pre-activation 0.
    """
    H = case["H"]
    probes = {}
    for gate in GATES["lstm"]:
        p = {k: v.copy() for k, v in inputs.items()}
        k = GATES["lstm"].index(gate)
        for other, name in enumerate(GATES["lstm"]):
            if name == gate:
                continue
            cols = slice(other * H, (other + 1) * H)
            p["Wx"][:, cols] = 0.0
            p["Wh"][:, cols] = 0.0
            p["b"][cols] = 0.0 if (gate == "f" and name == "g") else 30.0
        if gate != "f":
            p["prev_c"][:] = 0.0
        probes[f"gate_{gate}"] = p
        del k
    return probes


# ---------------------------------------------------------------- runners

def _call(functions, name, *args, returns):
    return unpack(functions[name](*args), returns, name) if returns > 1 else (functions[name](*args),)


def _first(functions, name, *args, returns):
    """Outputs of a forward function without its cache."""
    return _call(functions, name, *args, returns=returns)[:-1]


TASKS = {}


def _task(**kw):
    TASKS[kw["name"]] = Task(**kw)


_STEP = ({"N": 2, "D": 3, "H": 4, "seed": 0}, {"N": 1, "D": 5, "H": 2, "seed": 1})
_SEQ = ({"N": 2, "T": 3, "D": 4, "H": 5, "seed": 0}, {"N": 3, "T": 1, "D": 2, "H": 3, "seed": 1})

# --- 01 RNN
_task(name="rnn_step_forward", kind="rnn", outputs=("next_h",), public=_STEP,
      needs=("rnn_step_forward",), make_inputs=step_inputs("rnn"),
      run=lambda f, a: _first(f, "rnn_step_forward", a["x"], a["prev_h"], a["Wx"], a["Wh"], a["b"], returns=2))
_task(name="rnn_step_backward", kind="rnn", outputs=("dx", "dprev_h", "dWx", "dWh", "db"), public=_STEP,
      needs=("rnn_step_forward", "rnn_step_backward"), make_inputs=step_inputs("rnn", ("dnext_h",)),
      gated=("dWx", "dWh", "db"),
      run=lambda f, a: _call(f, "rnn_step_backward", a["dnext_h"],
                             _call(f, "rnn_step_forward", a["x"], a["prev_h"], a["Wx"], a["Wh"], a["b"],
                                   returns=2)[1], returns=5))
_task(name="rnn_forward", kind="rnn", outputs=("h",), public=_SEQ, timed=("h",),
      needs=("rnn_forward",), make_inputs=sequence_inputs("rnn"),
      run=lambda f, a: _first(f, "rnn_forward", a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], returns=2))
_task(name="rnn_backward", kind="rnn", outputs=("dx", "dh0", "dWx", "dWh", "db"), public=_SEQ,
      needs=("rnn_forward", "rnn_backward"), make_inputs=sequence_inputs("rnn", upstream=True),
      probes=prefixes, gated=("dWx", "dWh", "db"), timed=("dx",),
      run=lambda f, a: _call(f, "rnn_backward", a["dh"],
                             _call(f, "rnn_forward", a["x"], a["h0"], a["Wx"], a["Wh"], a["b"],
                                   returns=2)[1], returns=5))
