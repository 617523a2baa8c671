"""The course's single source of truth for shapes, weight layout, gate order and tolerance.

Every reference implementation, every exercise and every chapter of the book quotes
this module; nothing else restates these facts.

Shapes (batch-major, as in the exercises):
    x   (N, T, D)   input sequence: N sequences, T time steps, D features
    h0  (N, H)      initial hidden state
    h   (N, T, H)   hidden states h_1 .. h_T
    Wx  (D, G*H)    input-to-hidden weights, used as ``x_t @ Wx``
    Wh  (H, G*H)    hidden-to-hidden weights, used as ``h_{t-1} @ Wh``
    b   (G*H,)      bias (the GRU has two, bx and bh, because its reset gate
                    multiplies ``h_{t-1} @ Wh + bh`` before the candidate's tanh,
                    as torch's ``nn.GRUCell`` does)

G is the number of gate blocks: 1 for the vanilla RNN, 4 for the LSTM, 3 for the GRU.
Block k occupies columns ``k*H:(k+1)*H`` of Wx, Wh and b, in the order of ``GATES``.
"""
import numpy as np

GATES = {
    "rnn": ("h",),
    "lstm": ("i", "f", "g", "o"),
    "gru": ("r", "z", "n"),
}

GATE_NAMES = {
    "h": "hidden (tanh)",
    "i": "input gate",
    "f": "forget gate",
    "g": "candidate",
    "o": "output gate",
    "r": "reset gate",
    "z": "update gate",
    "n": "candidate",
}

SHAPES = {
    "x": "(N, T, D)",
    "h0": "(N, H)",
    "c0": "(N, H)",
    "h": "(N, T, H)",
    "Wx": "(D, G*H)",
    "Wh": "(H, G*H)",
    "b": "(G*H,)",
    "bx": "(3*H,)",
    "bh": "(3*H,)",
}

#: Tolerance of every comparison between a student's array and the reference:
#: element-wise ``|student - reference| <= ATOL + RTOL * |reference|``.
#: Loose enough for an implementation that computes in float32, tight enough that
#: every seeded bug in the test suite fails it by orders of magnitude.
RTOL = 1e-4
ATOL = 1e-5

#: The cache each forward returns, element by element, where the course fixes it: its
#: backward receives exactly this. The grader builds it from a case's inputs and the
#: reference forward's outputs, so a backward is graded on its own: a wrong forward costs
#: its own points only (rnnkit.tasks: backward_given). A sequence forward's cache is the
#: list of its steps' caches, in time order (SEQUENCE_CACHES: sequence -> step).
#: The exercises state these layouts in code outside the part a student writes.
CACHES = {
    "rnn_step_forward": ("x", "prev_h", "Wx", "Wh", "next_h"),
    "lstm_step_forward": ("x", "prev_h", "prev_c", "Wx", "Wh", "i", "f", "g", "o", "tanh_c"),
    "gru_step_forward": ("x", "prev_h", "Wx", "Wh", "r", "z", "n", "ah_n"),
    "embedding_forward": ("x", "V"),
    "temporal_affine_forward": ("h", "W"),
    "attention_forward": ("q", "enc", "Wq", "Wk", "v", "u", "alpha"),
}
SEQUENCE_CACHES = {"rnn_forward": "rnn_step_forward", "lstm_forward": "lstm_step_forward",
                   "gru_forward": "gru_step_forward"}
#: Caches made of other forwards' caches: forward -> its parts in order, each (name, the
#: forward whose cache it is, what it covers). Exercise 6's bidirectional layer runs
#: rnn_forward twice from a zero state; its output h (N, T, 2H) holds the forward
#: direction in ``h[..., :H]``, the backward one in ``h[..., H:]``, both in time order.
CACHE_PARTS = {"birnn_forward": (
    ("fwd", "rnn_forward", "forward direction, rnn_forward over x"),
    ("bwd", "rnn_forward", "backward direction, rnn_forward over x[:, ::-1]"),
)}

#: What each element of a step's cache holds, (N, H) unless said: for messages and notebooks.
CACHE_ELEMENTS = {
    "x": "the step's input x_t (N, D)",
    "prev_h": "h_{t-1}, the state the step starts from",
    "prev_c": "c_{t-1}, the cell state the step starts from",
    "Wx": "Wx (D, G*H), as given",
    "Wh": "Wh (H, G*H), as given",
    "next_h": "h_t, the step's output",
    **{gate: f"the {name}'s activation" for gate, name in GATE_NAMES.items() if gate != "h"},
    "tanh_c": "tanh(c_t), of the new cell state",
    "ah_n": "the n block of h_{t-1} @ Wh + bh, before r multiplies it",
    "q": "the query q (N, Hq), as given",
    "enc": "the encoder's states enc (N, T, He), as given",
    "Wq": "Wq (Hq, A), as given",
    "Wk": "Wk (He, A), as given",
    "v": "v (A,), as given",
    "u": "tanh(q @ Wq + enc_j @ Wk) at every position j (N, T, A)",
    "alpha": "the attention weights alpha (N, T), as returned",
}


def cache_element(fwd, name):
    """``cache[6] (f: the forget gate's activation)``; ``cache[t][6] (...)`` for a sequence;
    ``cache[1][t][4] (next_h: ...; backward direction: ...)`` for part ``bwd.next_h``."""
    where = part = ""
    if fwd in CACHE_PARTS:
        prefix, _, name = name.partition(".")
        k = [p[0] for p in CACHE_PARTS[fwd]].index(prefix)
        _, fwd, what = CACHE_PARTS[fwd][k]
        where, part = f"[{k}]", f"; {what}"
    step = SEQUENCE_CACHES.get(fwd)
    k = CACHES[step or fwd].index(name)
    return f"cache{where}{'[t]' if step else ''}[{k}] ({name}: {CACHE_ELEMENTS.get(name, name)}{part})"


def cache_layout(fwd):
    """The cache ``fwd`` returns, as lines of text: its layout, then what each element holds."""
    if fwd in CACHE_PARTS:
        parts = CACHE_PARTS[fwd]
        subs = sorted({sub for _, sub, _ in parts})
        return "\n".join([f"{fwd} returns cache = ({', '.join(f'cache_{p}' for p, _, _ in parts)}):"]
                         + [f"  cache[{k}]: {what}" for k, (_, _, what) in enumerate(parts)]
                         + [f"each as {sub} returns it:\n{cache_layout(sub)}" for sub in subs])
    step = SEQUENCE_CACHES.get(fwd)
    layout = CACHES[step or fwd]
    head = (f"{fwd} returns cache = [the cache of step t=0, ..., of step t=T-1],\n"
            f"each a tuple ({', '.join(layout)}):" if step
            else f"{fwd} returns cache = ({', '.join(layout)}):")
    return "\n".join([head] + [f"  {cache_element(fwd, name)}" for name in layout])


#: Reference implementations compute in this dtype.
DTYPE = np.float64


def gate_slice(kind, gate, H):
    """Columns of Wx, Wh and b that hold ``gate`` of a ``kind`` cell with hidden size H."""
    k = GATES[kind].index(gate)
    return slice(k * H, (k + 1) * H)


def split_gates(a, kind):
    """Split the last axis of ``a`` (..., G*H) into a dict gate -> (..., H)."""
    names = GATES[kind]
    return dict(zip(names, np.split(a, len(names), axis=-1)))


def torch_layout(kind):
    """How our parameters map onto torch's ``nn.RNNCell``/``LSTMCell``/``GRUCell``.

    torch stores ``weight_ih`` (G*H, D) and ``weight_hh`` (G*H, H) and computes
    ``x @ weight_ih.T``: ours are their transposes, with the same gate order.
    """
    return {
        "weight_ih": "Wx.T",
        "weight_hh": "Wh.T",
        "bias_ih": "b" if kind != "gru" else "bx",
        "bias_hh": "0" if kind != "gru" else "bh",
        "gate order": ", ".join(GATES[kind]),
    }


def layout_table(kind):
    """Markdown table of the weight layout of ``kind``, for the book."""
    rows = ["| block | columns | gate |", "|---|---|---|"]
    for k, gate in enumerate(GATES[kind]):
        rows.append(f"| {k} | `{k}*H:{k + 1}*H` | `{gate}`: {GATE_NAMES[gate]} |")
    return "\n".join(rows)
