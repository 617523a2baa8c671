"""Diagrams of the LSTM and GRU cells, drawn with matplotlib from the conventions.

The gate names, their order in the weight blocks and their activations come
from :mod:`rnnkit.conventions`; nothing about the layout is restated here
except where each gate acts in the picture. Each function draws one cell on a
matplotlib ``Axes`` (x from 0 to 10, y from 0 to 6.4) and returns it.
"""
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle

from rnnkit.conventions import GATE_NAMES, GATES

BELT, WIRE, GATE_FILL, TANH_FILL = "#2b5d8a", "#444444", "#fde9c9", "#dbe9f6"
BLOCK_FILL = {"i": "#f5cba7", "f": "#f9e79f", "g": "#d5f5e3", "o": "#d6eaf8",
              "r": "#f9e79f", "z": "#f5cba7", "n": "#d5f5e3"}


def activation(gate):
    """'tanh' for a candidate, 'σ' for a gate, read from GATE_NAMES."""
    return "tanh" if GATE_NAMES[gate] == "candidate" else "σ"


def _arrow(ax, points, color=WIRE, lw=1.4, head=True):
    """A polyline through points, with an arrow head on its last segment."""
    xs, ys = zip(*points)
    ax.plot(xs[:-1], ys[:-1], color=color, lw=lw, solid_capstyle="round")
    ax.plot(xs[-2:], ys[-2:], color=color, lw=lw, alpha=0.0 if head else 1.0)
    if head:
        ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>",
                                     mutation_scale=12, lw=lw, color=color,
                                     shrinkA=0, shrinkB=0))


def _op(ax, x, y, symbol, r=0.22):
    """A point-wise operation: ⊙, + or 1-."""
    ax.add_patch(Circle((x, y), r, fc="white", ec=WIRE, lw=1.2, zorder=3))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=10, zorder=4)


def _box(ax, x, y, text, fc, w=0.9, h=0.5, fontsize=10):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, fc=fc, ec=WIRE,
                                lw=1.1, zorder=3,
                                boxstyle="round,pad=0.02,rounding_size=0.1"))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=4)


def _blocks(ax, kind, x0, width, y, label):
    """The affine map's columns as a strip of blocks in the order of GATES[kind].

    Returns {gate: x of the block's centre}.
    """
    names = GATES[kind]
    w = width / len(names)
    centre = {}
    for k, gate in enumerate(names):
        left = x0 + k * w
        ax.add_patch(Rectangle((left, y - 0.25), w, 0.5, fc=BLOCK_FILL[gate],
                               ec=WIRE, lw=1.0, zorder=2))
        ax.text(left + w / 2, y, f"{gate}  [{k}H:{k + 1}H]", ha="center",
                va="center", fontsize=8.5, family="monospace", zorder=3)
        centre[gate] = left + w / 2
    ax.text(x0 - 1.4, y - 0.5, label, ha="left", va="top", fontsize=9)
    return centre


def _frame(ax):
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.9, 6.4)
    ax.set_aspect("equal")
    ax.axis("off")


def draw_lstm(ax):
    """The LSTM cell: the belt c on top, four blocks of a_t at the bottom."""
    _frame(ax)
    belt_y, gate_y, strip_y = 5.4, 2.7, 1.1
    # where each gate acts, left to right along the belt
    at = {"f": 2.2, "i": 3.5, "g": 4.7, "o": 6.4}
    block = _blocks(ax, "lstm", 1.6, 5.6, strip_y,
                    r"$a_t = x_t W_x + h_{t-1} W_h + b$: columns in the "
                    "order of GATES['lstm']")
    # inputs into the strip
    _arrow(ax, [(0.2, strip_y), (1.6, strip_y)])
    ax.text(0.15, strip_y + 0.25, r"$h_{t-1}$", fontsize=11, ha="left")
    _arrow(ax, [(6.8, -0.85), (6.8, strip_y - 0.25)])
    ax.text(6.95, -0.8, r"$x_t$", fontsize=11)
    # the belt
    _arrow(ax, [(0.2, belt_y), (2.2 - 0.22, belt_y)], BELT, 2.6, head=False)
    ax.text(0.15, belt_y + 0.2, r"$c_{t-1}$", fontsize=11, color=BELT)
    _arrow(ax, [(2.2 + 0.22, belt_y), (4.1 - 0.22, belt_y)], BELT, 2.6, False)
    _arrow(ax, [(4.1 + 0.22, belt_y), (9.7, belt_y)], BELT, 2.6)
    ax.text(9.7, belt_y + 0.2, r"$c_t$", fontsize=11, color=BELT, ha="right")
    ax.text(5.6, belt_y + 0.2, "the belt: no matrix on it", fontsize=8.5,
            color=BELT, style="italic")
    _op(ax, 2.2, belt_y, "⊙")
    _op(ax, 4.1, belt_y, "+")
    # gates
    for k, (gate, x) in enumerate(at.items()):
        jog = 1.55 + 0.15 * k  # distinct heights: wires may cross, not overlap
        _arrow(ax, [(block[gate], strip_y + 0.25), (block[gate], jog),
                    (x, jog), (x, gate_y - 0.25)])
        _box(ax, x, gate_y, f"{activation(gate)}", GATE_FILL
             if activation(gate) == "σ" else TANH_FILL)
        ax.text(x - 0.5, gate_y + 0.32, f"${gate}_t$", fontsize=11,
                ha="right", va="bottom")
    _arrow(ax, [(at["f"], gate_y + 0.25), (at["f"], belt_y - 0.22)])
    _op(ax, 4.1, 4.0, "⊙")
    _arrow(ax, [(at["i"], gate_y + 0.25), (at["i"], 4.0), (4.1 - 0.22, 4.0)])
    _arrow(ax, [(at["g"], gate_y + 0.25), (at["g"], 4.0), (4.1 + 0.22, 4.0)])
    _arrow(ax, [(4.1, 4.22), (4.1, belt_y - 0.22)])
    # output: h_t = o_t ⊙ tanh(c_t)
    _arrow(ax, [(7.6, belt_y), (7.6, 4.25)])
    _box(ax, 7.6, 4.0, "tanh", TANH_FILL)
    _op(ax, 7.6, gate_y, "⊙")
    _arrow(ax, [(7.6, 3.75), (7.6, gate_y + 0.22)])
    _arrow(ax, [(at["o"] + 0.45, gate_y), (7.6 - 0.22, gate_y)])
    _arrow(ax, [(7.6 + 0.22, gate_y), (9.7, gate_y)])
    ax.text(9.7, gate_y + 0.15, r"$h_t$", fontsize=11, ha="right", va="bottom")
    return ax


def draw_gru(ax):
    """The GRU cell (reset after the product): h on top, r, z, n below."""
    _frame(ax)
    top_y, gate_y, strip_y = 5.4, 2.7, 1.1
    at = {"z": 2.4, "r": 4.1, "n": 5.6}
    block = _blocks(ax, "gru", 1.6, 5.4, strip_y,
                    r"$a^x_t = x_t W_x + b_x$ and $a^h_t = h_{t-1} W_h + b_h$:"
                    " columns in the order of GATES['gru']")
    _arrow(ax, [(0.2, strip_y), (1.6, strip_y)])
    ax.text(0.15, strip_y + 0.25, r"$h_{t-1}$", fontsize=11, ha="left")
    _arrow(ax, [(6.6, -0.85), (6.6, strip_y - 0.25)])
    ax.text(6.75, -0.8, r"$x_t$", fontsize=11)
    # the state line: h_t = z ⊙ h_{t-1} + (1 - z) ⊙ n
    _arrow(ax, [(0.2, top_y), (2.4 - 0.22, top_y)], BELT, 2.6, head=False)
    ax.text(0.15, top_y + 0.2, r"$h_{t-1}$", fontsize=11, color=BELT)
    _arrow(ax, [(2.4 + 0.22, top_y), (6.6 - 0.22, top_y)], BELT, 2.6, False)
    _arrow(ax, [(6.6 + 0.22, top_y), (9.7, top_y)], BELT, 2.6)
    ax.text(9.7, top_y + 0.2, r"$h_t$", fontsize=11, color=BELT, ha="right")
    _op(ax, 2.4, top_y, "⊙")
    _op(ax, 6.6, top_y, "+")
    for k, (gate, x) in enumerate(at.items()):
        jog = 1.55 + 0.15 * k  # distinct heights: wires may cross, not overlap
        _arrow(ax, [(block[gate], strip_y + 0.25), (block[gate], jog),
                    (x, jog), (x, gate_y - 0.25)])
        fill = GATE_FILL if activation(gate) == "σ" else TANH_FILL
        _box(ax, x, gate_y, activation(gate), fill)
        ax.text(x - 0.5, gate_y + 0.32, f"${gate}_t$", fontsize=11,
                ha="right", va="bottom")
    # z gates the old state and, as 1 - z, the candidate
    _arrow(ax, [(at["z"], gate_y + 0.25), (at["z"], top_y - 0.22)])
    _op(ax, 4.6, 4.0, "1-")
    _arrow(ax, [(at["z"], 4.0), (4.6 - 0.22, 4.0)])
    _op(ax, 6.6, 4.0, "⊙")
    _arrow(ax, [(4.6 + 0.22, 4.0), (6.6 - 0.22, 4.0)])
    _arrow(ax, [(at["n"], gate_y + 0.25), (at["n"], 3.4), (6.6, 3.4),
                (6.6, 4.0 - 0.22)])
    _arrow(ax, [(6.6, 4.22), (6.6, top_y - 0.22)])
    # r multiplies the n block of a^h (after the product with W_h)
    _op(ax, at["n"], 2.1, "⊙")
    _arrow(ax, [(at["r"] + 0.45, gate_y), (at["r"] + 0.75, gate_y),
                (at["r"] + 0.75, 2.1), (at["n"] - 0.22, 2.1)])
    ax.text(at["n"] + 0.3, 2.05, r"$a^{x(n)}_t + r_t \odot a^{h(n)}_t$",
            fontsize=9, ha="left", va="center")
    _arrow(ax, [(9.2, top_y), (9.2, gate_y), (9.7, gate_y)], WIRE, 1.2)
    ax.text(9.75, gate_y, "to the\nnext step", fontsize=8, va="center")
    return ax
