"""Diagrams of the LSTM and GRU cells, drawn from their wirings.

Every node and every wire comes from :data:`autograder.figures.wiring.WIRING`
(which a test evaluates against the reference cells); this module only says
where each node sits and which way each wire runs. ``draw(ax, kind)`` draws one
cell on a matplotlib ``Axes`` and returns what it drew: {"edges": {(source,
target)}, "wires": [(source, target, [(x, y), ...])], "nodes": {name: (x, y)}}.
Wires that cross are drawn with a white margin, so a crossing never looks like a
junction; junctions carry a dot.
"""
from matplotlib import patheffects
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from autograder.figures.wiring import OUTPUTS, WIRING

#: Smallest font in the diagrams, in points (at FIGSIZE on the page: >= 10 px).
MIN_FONT_PT = 10
FIGSIZE = {"lstm": (7.2, 5.0), "gru": (7.2, 5.6)}
WIRE, BELT = "#444444", "#2b5d8a"
FILL = {"sigmoid": "#fde9c9", "tanh": "#dbe9f6", "affine": "#eeeeee"}
SYMBOL = {"*": "⊙", "+": "+", "1-": "1−"}
ACT = {"sigmoid": "σ", "tanh": "tanh"}
OP_R, ACT_W, ACT_H = 0.24, 0.9, 0.56

# Where the nodes sit (x from 0 to 10) and the route of every wire, from the
# source node's edge to the target node's edge. Blocks are ports on the top of
# their affine map. LABELS: text beside a node; SYMBOLS: how inputs and
# outputs are named.
LAYOUT = {
    "lstm": {
        "xlim": (-0.2, 10.4), "ylim": (-0.9, 6.5),
        "nodes": {"x": (3.0, -0.45), "h_prev": (-0.1, 1.0),
                  "c_prev": (-0.1, 5.8), "a": (4.5, 1.0),
                  "a.f": (2.6, 1.35), "a.i": (3.8, 1.35),
                  "a.g": (5.4, 1.35), "a.o": (6.6, 1.35),
                  "f": (2.6, 2.6), "i": (3.8, 2.6), "g": (5.4, 2.6),
                  "o": (6.6, 2.6), "f*c": (2.6, 5.8), "i*g": (4.6, 4.2),
                  "c": (4.6, 5.8), "tanh c": (7.6, 4.7), "h": (7.6, 3.4)},
        "box": {"a": (5.2, 0.7)},
        "routes": {
            ("x", "a"): [(3.0, -0.25), (3.0, 0.65)],
            ("h_prev", "a"): [(0.3, 1.0), (1.9, 1.0)],
            ("a.f", "f"): [(2.6, 1.35), (2.6, 2.32)],
            ("a.i", "i"): [(3.8, 1.35), (3.8, 2.32)],
            ("a.g", "g"): [(5.4, 1.35), (5.4, 2.32)],
            ("a.o", "o"): [(6.6, 1.35), (6.6, 2.32)],
            ("c_prev", "f*c"): [(0.35, 5.8), (2.36, 5.8)],
            ("f", "f*c"): [(2.6, 2.88), (2.6, 5.56)],
            ("i", "i*g"): [(3.8, 2.88), (3.8, 4.2), (4.36, 4.2)],
            ("g", "i*g"): [(5.4, 2.88), (5.4, 4.2), (4.84, 4.2)],
            ("f*c", "c"): [(2.84, 5.8), (4.36, 5.8)],
            ("i*g", "c"): [(4.6, 4.44), (4.6, 5.56)],
            ("c", "tanh c"): [(4.84, 5.8), (7.6, 5.8), (7.6, 4.98)],
            ("tanh c", "h"): [(7.6, 4.42), (7.6, 3.64)],
            ("o", "h"): [(6.6, 2.88), (6.6, 3.4), (7.36, 3.4)],
        },
        "out": {"c": [(4.84, 5.8), (9.3, 5.8)], "h": [(7.84, 3.4), (9.3, 3.4)]},
        "labels": {"f": "$f_t$", "i": "$i_t$", "g": "$g_t$", "o": "$o_t$",
                   "a.f": "f", "a.i": "i", "a.g": "g", "a.o": "o"},
        "symbols": {"x": "$x_t$", "h_prev": "$h_{t-1}$",
                    "c_prev": "$c_{t-1}$", "c": "$c_t$", "h": "$h_t$",
                    "a": "$a_t = x_t W_x + h_{t-1} W_h + b$\n"
                         "columns: i | f | g | o"},
        "belt": {"c_prev", "f*c", "c"},
        "dots": [(7.6, 5.8)],
    },
    "gru": {
        "xlim": (-0.2, 10.4), "ylim": (-1.2, 6.6),
        "nodes": {"x": (2.4, -0.55), "h_prev": (-0.1, 5.9),
                  "ax": (2.4, 0.9), "ah": (6.6, 0.9),
                  "ax.r": (1.4, 1.25), "ax.z": (2.4, 1.25),
                  "ax.n": (3.4, 1.25), "ah.r": (5.6, 1.25),
                  "ah.z": (6.6, 1.25), "ah.n": (7.6, 1.25),
                  "r+": (4.5, 2.0), "r": (4.5, 2.8),
                  "r*ah.n": (7.6, 2.8), "n+": (7.6, 3.6), "n": (7.6, 4.4),
                  "z+": (2.4, 4.4), "z": (2.4, 5.1), "1-z": (4.5, 5.1),
                  "z*h": (2.4, 5.9), "(1-z)*n": (7.6, 5.1), "h": (7.6, 5.9)},
        "box": {"ax": (3.0, 0.7), "ah": (3.0, 0.7)},
        "routes": {
            ("x", "ax"): [(2.4, -0.35), (2.4, 0.55)],
            ("h_prev", "ah"): [(0.25, 5.9), (0.45, 5.9), (0.45, -1.0), (8.6, -1.0),
                               (8.6, 0.9), (8.1, 0.9)],
            ("h_prev", "z*h"): [(0.25, 5.9), (2.16, 5.9)],
            ("ax.r", "r+"): [(1.4, 1.25), (1.4, 2.0), (4.26, 2.0)],
            ("ah.r", "r+"): [(5.6, 1.25), (5.6, 2.0), (4.74, 2.0)],
            ("r+", "r"): [(4.5, 2.24), (4.5, 2.52)],
            ("ah.n", "r*ah.n"): [(7.6, 1.25), (7.6, 2.56)],
            ("r", "r*ah.n"): [(4.95, 2.8), (7.36, 2.8)],
            ("r*ah.n", "n+"): [(7.6, 3.04), (7.6, 3.36)],
            ("ax.n", "n+"): [(3.4, 1.25), (3.4, 3.6), (7.36, 3.6)],
            ("n+", "n"): [(7.6, 3.84), (7.6, 4.12)],
            ("ax.z", "z+"): [(2.4, 1.25), (2.4, 4.16)],
            ("ah.z", "z+"): [(6.6, 1.25), (6.6, 4.4), (2.64, 4.4)],
            ("z+", "z"): [(2.4, 4.64), (2.4, 4.82)],
            ("z", "z*h"): [(2.4, 5.38), (2.4, 5.66)],
            ("z", "1-z"): [(2.85, 5.1), (4.26, 5.1)],
            ("1-z", "(1-z)*n"): [(4.74, 5.1), (7.36, 5.1)],
            ("n", "(1-z)*n"): [(7.6, 4.68), (7.6, 4.86)],
            ("z*h", "h"): [(2.64, 5.9), (7.36, 5.9)],
            ("(1-z)*n", "h"): [(7.6, 5.34), (7.6, 5.66)],
        },
        "out": {"h": [(7.84, 5.9), (9.3, 5.9)]},
        "labels": {"r": "$r_t$", "z": "$z_t$", "n": "$n_t$",
                   "ax.r": "r", "ax.z": "z", "ax.n": "n",
                   "ah.r": "r", "ah.z": "z", "ah.n": "n"},
        "symbols": {"x": "$x_t$", "h_prev": "$h_{t-1}$", "h": "$h_t$",
                    "ax": "$a^x_t = x_t W_x + b_x$",
                    "ah": "$a^h_t = h_{t-1} W_h + b_h$"},
        "belt": {"h_prev", "z*h", "h"},
        "dots": [(0.45, 5.9)],
        "note": ("n+", r"$a^{x(n)}_t + r_t \odot a^{h(n)}_t$"),
    },
}


def _wire(ax, points, color, lw, head=True):
    """A polyline with a white margin (crossings read as bridges)."""
    margin = [patheffects.withStroke(linewidth=lw + 4, foreground="white")]
    xs, ys = zip(*points)
    line, = ax.plot(xs, ys, color=color, lw=lw, solid_capstyle="butt",
                    zorder=1)
    line.set_path_effects(margin + [patheffects.Normal()])
    if head:
        ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>",
                                     mutation_scale=14, lw=0, color=color,
                                     shrinkA=0, shrinkB=0, zorder=2))


def _node(ax, op, xy, text=None):
    x, y = xy
    if op in SYMBOL:
        ax.add_patch(Circle(xy, OP_R, fc="white", ec=WIRE, lw=1.2, zorder=3))
        ax.text(x, y, SYMBOL[op], ha="center", va="center", zorder=4,
                fontsize=MIN_FONT_PT + 1)
    elif op in ACT:
        ax.add_patch(FancyBboxPatch(
            (x - ACT_W / 2, y - ACT_H / 2), ACT_W, ACT_H, fc=FILL[op],
            ec=WIRE, lw=1.1, zorder=3,
            boxstyle="round,pad=0.02,rounding_size=0.1"))
        ax.text(x, y, ACT[op], ha="center", va="center", zorder=4,
                fontsize=MIN_FONT_PT + 2)


def draw(ax, kind):
    """Draw the ``kind`` ("lstm" or "gru") cell of WIRING on ``ax``."""
    lay = LAYOUT[kind]
    pos, sym, lab = lay["nodes"], lay["symbols"], lay["labels"]
    ax.set_xlim(*lay["xlim"])
    ax.set_ylim(*lay["ylim"])
    ax.set_aspect("equal")
    ax.axis("off")
    drawn = {"edges": set(), "wires": [], "nodes": dict(pos)}
    for name, op, inputs in WIRING[kind]:
        x, y = pos[name]
        if op == "affine":
            w, h = lay["box"][name]
            ax.add_patch(FancyBboxPatch(
                (x - w / 2, y - h / 2), w, h, fc=FILL["affine"], ec=WIRE,
                lw=1.1, zorder=3, boxstyle="round,pad=0.02,rounding_size=0.1"))
            ax.text(x, y, sym[name], ha="center", va="center", zorder=4,
                    fontsize=MIN_FONT_PT, linespacing=1.5)
        elif op == "input":
            ax.text(x, y, sym[name], ha="center", va="center",
                    fontsize=MIN_FONT_PT + 3,
                    color=BELT if name in lay["belt"] else "black")
        else:
            _node(ax, op, (x, y))
        for src in inputs:
            if op == "block":  # a port of its map: drawn with the map
                ax.text(x + 0.08, y + 0.02, lab[name], ha="left",
                        va="bottom", fontsize=MIN_FONT_PT, color="#555555")
            else:
                belt = src in lay["belt"] and name in lay["belt"]
                route = lay["routes"][src, name]
                _wire(ax, route, BELT if belt else WIRE, 2.6 if belt else 1.4)
                drawn["wires"].append((src, name, route))
            drawn["edges"].add((src, name))
        if op in ACT and name in lab:  # above the box, left of its wire
            ax.text(x - ACT_W / 2, y + ACT_H / 2 + 0.02, lab[name],
                    ha="left", va="bottom", fontsize=MIN_FONT_PT + 2)
    for name in OUTPUTS[kind]:
        route = lay["out"][name]
        belt = name in lay["belt"]
        _wire(ax, route, BELT if belt else WIRE, 2.6 if belt else 1.4)
        x, y = route[-1]
        ax.text(x + 0.1, y, f"{sym[name]}\nto step $t+1$", ha="left",
                va="center", fontsize=MIN_FONT_PT, linespacing=1.3,
                color=BELT if belt else "black")
    for xy in lay["dots"]:  # where a wire branches
        ax.add_patch(Circle(xy, 0.07, color=WIRE, zorder=2))
    if "note" in lay:
        name, text = lay["note"]
        x, y = pos[name]
        ax.text(x + 0.35, y, text, ha="left", va="center",
                fontsize=MIN_FONT_PT)
    return drawn


def draw_lstm(ax):
    """The LSTM cell: one affine map of (x_t, h_{t-1}), four gates, the belt."""
    return draw(ax, "lstm")


def draw_gru(ax):
    """The GRU cell: two affine maps, r on the h-side product only."""
    return draw(ax, "gru")
