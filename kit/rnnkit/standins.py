"""Stand-ins: public functions that replace, for one extra run, a function a layer calls.

A layer (``rnn_forward``, ``lstm_backward``, ``birnn_forward`` ...) is checked twice
per case: as written, and with the function it calls (its step, or the pasted
``rnn_forward``) bound to a stand-in of the same signature and return form
(:func:`bound`). A unit is right if either run is right (:mod:`rnnkit.compare`),
so a layer that chains its steps right keeps its points whatever the step does.

A stand-in is deliberately NOT the cell's formula (it reveals nothing), but it uses
every argument, its values are O(1) over any number of steps, and it reads and
returns caches in the layouts of :data:`rnnkit.conventions.CACHES`: every chaining
mistake (the initial state reused, the wrong x_t, prev_h stored for next_h, time
reversed, a missing carried gradient, parameter gradients not summed) changes the
layer's result. The stand-in layers (``rnn_forward``, ``rnn_backward``, for the
bidirectional layer) are not loops over the stand-in steps: no stand-in shows how a
graded function is written. Shapes as in the conventions: x (N, D), prev_h (N, H), Wx (D, G*H),
Wh (H, G*H); a sequence's x (N, T, D), dh (N, T, H).
"""
from contextlib import contextmanager

import numpy as np

from .conventions import CACHES


def _affine(x, prev_h, Wx, Wh):
    """sin(x @ Wx) + 0.5 cos(prev_h @ Wh): (N, G*H), every entry in [-1.5, 1.5]."""
    return np.sin(x @ Wx) + 0.5 * np.cos(prev_h @ Wh)


def _blocks(a, count):
    return np.split(a, count, axis=-1)


def _pack(step, values):
    """The cache of ``step`` in the layout of :data:`rnnkit.conventions.CACHES`, from ``values``."""
    return tuple(values[name] for name in CACHES[step])


def _unpack(step, cache):
    """A cache of ``step`` as {element name: value}."""
    return dict(zip(CACHES[step], cache))


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """Returns next_h (N, H) and cache (x, prev_h, Wx, Wh, next_h)."""
    next_h = _affine(x, prev_h, Wx, Wh) + b
    return next_h, _pack("rnn_step_forward", locals())


def rnn_step_backward(dnext_h, cache):
    """Returns dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,)."""
    c = _unpack("rnn_step_forward", cache)
    s = dnext_h * np.cos(c["next_h"])
    return (np.sin(s @ c["Wx"].T), 0.5 * np.tanh(s @ c["Wh"].T), c["x"].T @ s, c["prev_h"].T @ s,
            s.sum(axis=0) + 0.1)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """Returns next_h, next_c (N, H) and cache (x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c)."""
    a_i, a_f, a_g, a_o = _blocks(_affine(x, prev_h, Wx, Wh) + b, 4)
    i, f, g, o = np.sin(a_i), 0.5 * np.cos(a_f), np.cos(a_g), np.sin(a_o)
    next_c = f * prev_c + 0.5 * (i + g)
    tanh_c = np.cos(next_c)
    next_h = o + 0.5 * tanh_c
    return next_h, next_c, _pack("lstm_step_forward", locals())


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Returns dx (N, D), dprev_h, dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,)."""
    c = _unpack("lstm_step_forward", cache)
    s = dnext_h * np.cos(c["tanh_c"]) + 0.5 * dnext_c
    da = np.concatenate([s * c[gate] for gate in ("i", "f", "g", "o")], axis=1)
    return (np.sin(da @ c["Wx"].T), 0.5 * np.tanh(da @ c["Wh"].T), 0.5 * np.tanh(s) * np.cos(c["prev_c"]),
            c["x"].T @ da, c["prev_h"].T @ da, da.sum(axis=0) + 0.1)


def gru_step_forward(x, prev_h, Wx, Wh, bx, bh):
    """Returns next_h (N, H) and cache (x, prev_h, Wx, Wh, r, z, n, ah_n)."""
    x_r, x_z, x_n = _blocks(np.sin(x @ Wx) + bx, 3)
    h_r, h_z, h_n = _blocks(0.5 * np.cos(prev_h @ Wh) + bh, 3)
    r, z = np.sin(x_r + h_r), 0.5 * np.cos(x_z + h_z)
    n, ah_n = np.sin(x_n) + r * h_n, h_n
    next_h = z * prev_h + n
    return next_h, _pack("gru_step_forward", locals())


def gru_step_backward(dnext_h, cache):
    """Returns dx (N, D), dprev_h (N, H), dWx, dWh (., 3H), dbx, dbh (3H,)."""
    c = _unpack("gru_step_forward", cache)
    s = dnext_h * np.cos(c["n"])
    dax = np.concatenate([s * c["r"], s * c["z"], s], axis=1)
    dah = np.concatenate([s * c["z"], s * c["r"], s * c["ah_n"]], axis=1)
    return (np.sin(dax @ c["Wx"].T), 0.5 * np.tanh(dah @ c["Wh"].T), c["x"].T @ dax, c["prev_h"].T @ dah,
            dax.sum(axis=0) + 0.1, dah.sum(axis=0) - 0.1)


def rnn_forward(x, h0, Wx, Wh, b):
    """x (N, T, D), h0 (N, H). Returns h (N, T, H) and T step caches in time order
    (x_t, h_{t-1}, Wx, Wh, h_t). Not a recurrence: h_t is the running mean of
    sin(x_s @ Wx) over s <= t, plus terms of h0 and b, so it depends on the order of
    time and on every argument."""
    T = x.shape[1]
    h = (np.cumsum(np.sin(x @ Wx), axis=1) / np.arange(1, T + 1)[:, None]
         + 0.5 * np.cos(h0 @ Wh)[:, None] + b)
    before = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
    return h, [_pack("rnn_step_forward", {"x": x[:, t], "prev_h": before[:, t], "Wx": Wx, "Wh": Wh,
                                          "next_h": h[:, t]}) for t in range(T)]


def rnn_backward(dh, cache):
    """dh (N, T, H), cache: T step caches (x, prev_h, Wx, Wh, next_h). Returns dx (N, T, D),
    dh0 (N, H), dWx (D, H), dWh (H, H), db (H,). Not backpropagation: r_t, the mean of
    dh_s cos(h_s) over s >= t, feeds every result, so each depends on the
    order of time and on the cache."""
    steps = [_unpack("rnn_step_forward", c) for c in cache]
    x, before, after = (np.stack([s[name] for s in steps], axis=1) for name in ("x", "prev_h", "next_h"))
    T = dh.shape[1]
    r = np.cumsum((dh * np.cos(after))[:, ::-1], axis=1)[:, ::-1] / np.arange(T, 0, -1)[:, None]
    Wx, Wh = steps[0]["Wx"], steps[0]["Wh"]
    return (np.sin(r @ Wx.T), 0.5 * np.tanh(r[:, 0] @ Wh.T), np.einsum("ntd,nth->dh", x, r),
            np.einsum("nti,nth->ih", before, np.tanh(r)), r.sum(axis=(0, 1)) + 0.1)


#: function name -> its stand-in.
STANDINS = {f.__name__: f for f in (rnn_step_forward, rnn_step_backward, lstm_step_forward,
                                    lstm_step_backward, gru_step_forward, gru_step_backward,
                                    rnn_forward, rnn_backward)}

_ABSENT = object()


@contextmanager
def bound(namespace, names):
    """``namespace[name]`` bound to the stand-in of each of ``names`` for the block; then
    restored as it was (removed if it was not there), even if the block raises or a
    function rebound the name itself."""
    saved = {name: namespace.get(name, _ABSENT) for name in names}
    try:
        namespace.update({name: STANDINS[name] for name in names})
        yield
    finally:
        for name, value in saved.items():
            if value is _ABSENT:
                namespace.pop(name, None)
            else:
                namespace[name] = value
