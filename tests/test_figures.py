"""The cell diagrams match the equations they are drawn from.

The wiring (autograder.figures.wiring) is evaluated and compared with the
reference cells; the drawing (autograder.figures.cells) must draw exactly the
wiring's edges, each wire from its source node to its target node, the LSTM
with no crossing wires, every text at least MIN_FONT_PT, every carried state
with an arrow to the next step.
"""
import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from autograder.figures import cells, wiring  # noqa: E402
from autograder.reference.gru import gru_step_forward  # noqa: E402
from autograder.reference.lstm import lstm_step_forward  # noqa: E402

N, D, H = 3, 4, 5


def _random(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((N, D)),
        "h_prev": rng.standard_normal((N, H)),
        "c_prev": rng.standard_normal((N, H)),
        "Wx": rng.standard_normal((D, 4 * H)),
        "Wh": rng.standard_normal((H, 4 * H)),
        "b": rng.standard_normal(4 * H),
        "gWx": rng.standard_normal((D, 3 * H)),
        "gWh": rng.standard_normal((H, 3 * H)),
        "bx": rng.standard_normal(3 * H),
        "bh": rng.standard_normal(3 * H),
    }


def _lstm(p, wires=None):
    out = wiring.evaluate(
        "lstm", {k: p[k] for k in ("x", "h_prev", "c_prev")},
        {"a": {"x": p["Wx"], "h_prev": p["Wh"], "b": p["b"]}}, wires)
    return out["h"], out["c"]


def _gru(p, wires=None):
    out = wiring.evaluate(
        "gru", {"x": p["x"], "h_prev": p["h_prev"]},
        {"ax": {"x": p["gWx"], "b": p["bx"]},
         "ah": {"h_prev": p["gWh"], "b": p["bh"]}}, wires)
    return out["h"]


@pytest.mark.parametrize("seed", [0, 1])
def test_lstm_wiring_is_the_reference_cell(seed):
    p = _random(seed)
    h, c = _lstm(p)
    ref_h, ref_c, _ = lstm_step_forward(p["x"], p["h_prev"], p["c_prev"],
                                        p["Wx"], p["Wh"], p["b"])
    np.testing.assert_allclose(h, ref_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, ref_c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_gru_wiring_is_the_reference_cell(seed):
    p = _random(seed)
    ref, _ = gru_step_forward(p["x"], p["h_prev"], p["gWx"], p["gWh"],
                              p["bx"], p["bh"])
    np.testing.assert_allclose(_gru(p), ref, rtol=1e-12, atol=1e-12)


def _rewired(kind, name, op, inputs):
    return tuple((n, op, inputs) if n == name else (n, o, i)
                 for n, o, i in wiring.WIRING[kind])


def test_a_wrong_wiring_fails_the_comparison():
    """Old Fig. 3.6: r on the whole n pre-activation, tanh(r(a^x_n + a^h_n))."""
    p = _random(0)
    ref, _ = gru_step_forward(p["x"], p["h_prev"], p["gWx"], p["gWh"],
                              p["bx"], p["bh"])
    wrong = tuple(
        ("r*ah.n", "+", ("ax.n", "ah.n")) if n == "r*ah.n"
        else ("n+", "*", ("r", "r*ah.n")) if n == "n+" else (n, o, i)
        for n, o, i in wiring.WIRING["gru"])
    got = _gru(p, wrong)
    assert np.abs(got - ref).max() > 1e-3
    # and an LSTM whose gates see x only is not the reference either
    h, _ = _lstm(p, _rewired("lstm", "a", "affine", ("x",)))
    ref_h, _, _ = lstm_step_forward(p["x"], p["h_prev"], p["c_prev"],
                                    p["Wx"], p["Wh"], p["b"])
    assert np.abs(h - ref_h).max() > 1e-3


def test_gru_has_two_maps_and_resets_only_the_h_side():
    affine = {n: i for n, o, i in wiring.WIRING["gru"] if o == "affine"}
    assert affine == {"ax": ("x",), "ah": ("h_prev",)}
    assert {t for s, t in wiring.edges("gru") if s == "r"} == {"r*ah.n"}
    assert ("ax.n", "n+") in wiring.edges("gru")


def test_lstm_has_one_map_fed_by_both_inputs():
    affine = {n: set(i) for n, o, i in wiring.WIRING["lstm"]
              if o == "affine"}
    assert affine == {"a": {"x", "h_prev"}}


def _drawn(kind):
    fig, ax = plt.subplots(figsize=cells.FIGSIZE[kind])
    drawn = cells.draw(ax, kind)
    return fig, ax, drawn


def _extent(kind, name):
    """Half width and half height of a node as drawn."""
    op = {n: o for n, o, _ in wiring.WIRING[kind]}[name]
    if op in cells.SYMBOL:
        return cells.OP_R, cells.OP_R
    if op in cells.ACT:
        return cells.ACT_W / 2, cells.ACT_H / 2
    if op == "affine":
        w, h = cells.LAYOUT[kind]["box"][name]
        return w / 2, h / 2
    if op == "block":
        return 0.0, 0.0
    return 0.5, 0.45  # an input's label


def _touches(point, centre, extent, tol=0.06):
    (px, py), (cx, cy), (hx, hy) = point, centre, extent
    return max(abs(px - cx) - hx, abs(py - cy) - hy) <= tol


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_the_diagram_draws_exactly_the_wiring(kind):
    fig, _, drawn = _drawn(kind)
    plt.close(fig)
    assert drawn["edges"] == wiring.edges(kind)
    for src, dst, route in drawn["wires"]:
        assert all(a[0] == b[0] or a[1] == b[1]
                   for a, b in zip(route, route[1:])), (src, dst)
        assert _touches(route[0], drawn["nodes"][src], _extent(kind, src)), \
            f"wire {src} -> {dst} does not start at {src}"
        assert _touches(route[-1], drawn["nodes"][dst], _extent(kind, dst)), \
            f"wire {src} -> {dst} does not end at {dst}"


def _segments(route):
    return list(zip(route, route[1:]))


def _cross(s, t):
    """Axis-parallel segments s and t share a point (touching counts)."""
    (a, b), (c, d) = s, t
    x1, x2 = sorted((a[0], b[0]))
    y1, y2 = sorted((a[1], b[1]))
    x3, x4 = sorted((c[0], d[0]))
    y3, y4 = sorted((c[1], d[1]))
    return x1 <= x4 and x3 <= x2 and y1 <= y4 and y3 <= y2


def _crossings(kind):
    fig, _, drawn = _drawn(kind)
    plt.close(fig)
    found = []
    for (s1, d1, r1), (s2, d2, r2) in itertools.combinations(
            drawn["wires"], 2):
        if s1 == s2:  # branches of one value may share a stretch
            continue
        if any(_cross(a, b) for a in _segments(r1) for b in _segments(r2)):
            found.append((s1, d1, s2, d2))
    return found


def test_lstm_wires_do_not_cross():
    assert _crossings("lstm") == []


def test_the_crossing_check_sees_crossings():
    assert _crossings("gru"), "the GRU's two strips must cross somewhere"


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_text_size_and_next_step_arrows(kind):
    fig, ax, _ = _drawn(kind)
    sizes = [t.get_fontsize() for t in ax.texts]
    texts = [t.get_text() for t in ax.texts]
    plt.close(fig)
    assert min(sizes) >= cells.MIN_FONT_PT
    for name in wiring.OUTPUTS[kind]:
        symbol = cells.LAYOUT[kind]["symbols"][name]
        assert f"{symbol}\nto step $t+1$" in texts, name
