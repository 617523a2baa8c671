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
layer's result. Shapes as in the conventions: x (N, D), prev_h (N, H), Wx (D, G*H),
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
    """x (N, T, D), h0 (N, H). Returns h (N, T, H) and the T steps' caches in time order:
    the stand-in step (:func:`rnn_step_forward`) unrolled, so each state depends on
    every earlier input."""
    h, caches, prev_h = [], [], h0
    for t in range(x.shape[1]):
        prev_h, cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        h.append(prev_h)
        caches.append(cache)
    return np.stack(h, axis=1), caches


def rnn_backward(dh, cache):
    """dh (N, T, H), cache: T step caches (x, prev_h, Wx, Wh, next_h). Returns dx (N, T, D),
    dh0 (N, H), dWx, dWh, db: the stand-in step backward unrolled from T-1 down to 0, its
    gradient carried from step to step."""
    dx, carried, dparams = [], np.zeros_like(dh[:, 0]), None
    for t in reversed(range(dh.shape[1])):
        dx_t, carried, *step_grads = rnn_step_backward(dh[:, t] + carried, cache[t])
        dx.insert(0, dx_t)
        dparams = step_grads if dparams is None else [a + g for a, g in zip(dparams, step_grads)]
    return (np.stack(dx, axis=1), carried, *dparams)


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
