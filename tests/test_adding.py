"""Fast tests of the adding-problem experiment (autograder/experiments/adding.py)."""
from functools import partial

import numpy as np
import pytest

from autograder.experiments.adding import (
    BASELINE_MSE,
    REFERENCE_LAYERS,
    adam_update,
    init_params,
    loss_and_grads,
    make_adding_batch,
    train,
)
from autograder.reference.lstm import lstm_truncated_backward


@pytest.mark.parametrize("T", [2, 7, 10, 100])
def test_batch_shapes_markers_and_targets(T):
    N = 500
    x, y = make_adding_batch(np.random.default_rng(0), N, T)
    assert x.shape == (N, T, 2) and y.shape == (N,)
    values, marker = x[..., 0], x[..., 1]
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert set(np.unique(marker)) <= {0.0, 1.0}
    assert np.all(marker.sum(axis=1) == 2)
    assert np.all(marker[:, : T // 2].sum(axis=1) == 1)  # one marker in each half
    assert np.all(marker[:, T // 2:].sum(axis=1) == 1)
    np.testing.assert_allclose(y, (values * marker).sum(axis=1))


def test_batch_statistics_and_determinism():
    x, y = make_adding_batch(np.random.default_rng(1), 20000, 20)
    assert abs(y.mean() - 1.0) < 0.01
    assert abs(y.var() - BASELINE_MSE) < 0.01
    # every position of each half is used
    first = x[:, :10, 1].argmax(axis=1)
    second = x[:, 10:, 1].argmax(axis=1)
    assert set(first) == set(range(10)) and set(second) == set(range(10))
    x2, y2 = make_adding_batch(np.random.default_rng(1), 20000, 20)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_batch_rejects_short_sequences():
    with pytest.raises(ValueError):
        make_adding_batch(np.random.default_rng(0), 4, 1)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_gradient_matches_finite_differences(cell):
    rng = np.random.default_rng(2)
    params = init_params(cell, 3, rng, forget_bias=0.5)
    params["b"] = params["b"] + 0.1 * rng.standard_normal(params["b"].shape)
    params["c"] = np.array(0.3)
    x, y = make_adding_batch(rng, 4, 6)
    forward, backward = REFERENCE_LAYERS[cell]
    _, grads = loss_and_grads(cell, forward, backward, x, y, params)
    eps = 1e-6
    for name, p in params.items():
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            shifted = []
            for sign in (1, -1):
                q = {k: v.copy() for k, v in params.items()}
                q[name][idx] += sign * eps
                shifted.append(loss_and_grads(cell, forward, backward, x, y, q)[0])
            numeric[idx] = (shifted[0] - shifted[1]) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_train_uses_the_given_functions_and_learns_a_short_sequence(cell):
    forward, backward = REFERENCE_LAYERS[cell]
    calls = {"forward": 0, "backward": 0}

    def my_forward(*args):
        calls["forward"] += 1
        return forward(*args)

    def my_backward(*args):
        calls["backward"] += 1
        return backward(*args)

    steps = 150
    result = train(cell, T=6, steps=steps, seed=0, hidden=8, batch=32, lr=1e-2,
                   eval_every=50, eval_batch=200, forward=my_forward, backward=my_backward)
    assert calls["backward"] == steps
    assert calls["forward"] == steps + len(result["eval_step"])
    assert result["train_loss"].shape == (steps,)
    assert list(result["eval_step"]) == [0, 50, 100, 150]
    assert result["eval_mse"][-1] < 0.5 * result["eval_mse"][0]
    assert result["eval_mse"][-1] < BASELINE_MSE


def test_train_is_reproducible_and_accepts_truncated_backward():
    kwargs = dict(T=8, steps=20, seed=3, hidden=4, batch=8, eval_every=10, eval_batch=50)
    a = train("lstm", **kwargs)
    b = train("lstm", **kwargs)
    np.testing.assert_array_equal(a["eval_mse"], b["eval_mse"])
    full = train("lstm", backward=partial(lstm_truncated_backward, k=8), **kwargs)
    np.testing.assert_allclose(full["eval_mse"], a["eval_mse"], rtol=1e-12)
    truncated = train("lstm", backward=partial(lstm_truncated_backward, k=2), **kwargs)
    assert not np.allclose(truncated["eval_mse"][1:], a["eval_mse"][1:])


def test_adam_first_step_moves_each_entry_by_lr():
    params = {"w": np.array([1.0, -2.0, 3.0])}
    grads = {"w": np.array([0.5, -4.0, 1e-3])}
    state = {"t": 0, "m": {}, "v": {}}
    adam_update(params, grads, state, lr=0.1)
    np.testing.assert_allclose(params["w"], [0.9, -1.9, 2.9], rtol=1e-6)
    assert state["t"] == 1
