"""What feeds what in one step of the LSTM and GRU cells, as data.

A wiring is a tuple of nodes ``(name, op, inputs)`` in evaluation order. Ops:
``input``; ``affine`` (sum of ``input @ W`` over the inputs, plus a bias);
``block`` (gate's columns of an affine map, in the order of
``rnnkit.conventions.GATES``); ``sigmoid``/``tanh``; ``*`` (element-wise
product), ``+`` and ``1-``. The diagrams of :mod:`autograder.figures.cells`
draw exactly these nodes and edges; :func:`evaluate` computes them, so a test
can compare a wiring with the reference implementations.
"""
import numpy as np

from rnnkit.conventions import GATE_NAMES, GATES, split_gates


def activation(gate):
    """'tanh' for a candidate, 'sigmoid' for a gate, read from GATE_NAMES."""
    return "tanh" if GATE_NAMES[gate] == "candidate" else "sigmoid"


def _lstm():
    gates = tuple((f"a.{k}", "block", ("a",)) for k in GATES["lstm"])
    acts = tuple((k, activation(k), (f"a.{k}",)) for k in GATES["lstm"])
    return (
        ("x", "input", ()), ("h_prev", "input", ()), ("c_prev", "input", ()),
        ("a", "affine", ("x", "h_prev")),
        *gates, *acts,
        ("f*c", "*", ("f", "c_prev")),
        ("i*g", "*", ("i", "g")),
        ("c", "+", ("f*c", "i*g")),
        ("tanh c", "tanh", ("c",)),
        ("h", "*", ("o", "tanh c")),
    )


def _gru():
    blocks = tuple((f"{m}.{k}", "block", (m,))
                   for m in ("ax", "ah") for k in GATES["gru"])
    return (
        ("x", "input", ()), ("h_prev", "input", ()),
        ("ax", "affine", ("x",)), ("ah", "affine", ("h_prev",)),
        *blocks,
        ("r+", "+", ("ax.r", "ah.r")), ("r", activation("r"), ("r+",)),
        ("z+", "+", ("ax.z", "ah.z")), ("z", activation("z"), ("z+",)),
        ("r*ah.n", "*", ("r", "ah.n")),
        ("n+", "+", ("ax.n", "r*ah.n")), ("n", activation("n"), ("n+",)),
        ("1-z", "1-", ("z",)),
        ("z*h", "*", ("z", "h_prev")),
        ("(1-z)*n", "*", ("1-z", "n")),
        ("h", "+", ("z*h", "(1-z)*n")),
    )


#: The wirings the diagrams are drawn from; outputs carried to the next step.
WIRING = {"lstm": _lstm(), "gru": _gru()}
OUTPUTS = {"lstm": ("h", "c"), "gru": ("h",)}


def edges(kind):
    """{(source, target)} of a wiring: every input of every node."""
    return {(src, name) for name, _, inputs in WIRING[kind] for src in inputs}


def evaluate(kind, inputs, weights, wiring=None):
    """Compute every node of a wiring.

    inputs: {"x": (N, D), "h_prev": (N, H)[, "c_prev": (N, H)]};
    weights: {affine name: {input name: (D or H, G*H) matrix, "b": (G*H,)}}.
    Returns {node name: array}.
    """
    ops = {
        "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
        "tanh": np.tanh,
        "*": lambda a, b: a * b,
        "+": lambda a, b: a + b,
        "1-": lambda a: 1.0 - a,
    }
    value = {}
    for name, op, args in wiring or WIRING[kind]:
        if op == "input":
            value[name] = inputs[name]
        elif op == "affine":
            w = weights[name]
            value[name] = sum(value[a] @ w[a] for a in args) + w["b"]
        elif op == "block":
            value[name] = split_gates(value[args[0]], kind)[name.split(".")[1]]
        else:
            value[name] = ops[op](*(value[a] for a in args))
    return value
