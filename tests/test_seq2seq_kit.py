"""The kit's encoder-decoder (rnnkit.seq2seq): its batches, its gradient, its refusals."""
import numpy as np
import pytest
from rnnkit import seq2seq

from autograder.experiments.seq2seq import REFERENCE_FUNCTIONS, past_only_accuracy, tagging_batch


def test_batches_hold_the_reversal_padded_on_the_left_of_the_source():
    x, x_mask, y, y_mask = seq2seq.make_batch(np.random.default_rng(0), 50, [1, 4, 7], K=5)
    lengths = y_mask.sum(axis=1)
    assert set(lengths) == {1, 4, 7} and x.shape == y.shape == (50, 7)
    for n, L in enumerate(lengths):
        assert np.all(x[n, :7 - L] == 5) and np.all(x_mask[n] == (np.arange(7) >= 7 - L))
        np.testing.assert_array_equal(y[n, :L], x[n, 7 - L:][::-1])
        assert np.all(y[n, L:] == 0) and np.all(y[n, :L] < 5)


@pytest.mark.parametrize("attention", [True, False])
def test_gradient_matches_finite_differences(attention):
    rng = np.random.default_rng(1)
    params = seq2seq.init_params(5, 3, 4, 6, 5, rng, attention)
    batch = seq2seq.make_batch(rng, 4, [2, 3, 5], 5)
    _, grads = seq2seq.loss_and_grads(params, *batch, REFERENCE_FUNCTIONS, attention)
    for name, value in params.items():
        for idx in list(np.ndindex(value.shape))[:6]:
            shifted = []
            for step in (1e-6, -1e-6):
                moved = {k: v.copy() for k, v in params.items()}
                moved[name][idx] += step
                shifted.append(seq2seq.loss_and_grads(moved, *batch, REFERENCE_FUNCTIONS, attention)[0])
            numeric = (shifted[0] - shifted[1]) / 2e-6
            assert abs(numeric - grads[name][idx]) < 1e-7 + 1e-5 * abs(numeric), (name, idx)


def test_a_missing_function_is_named():
    with pytest.raises(ValueError, match="birnn_backward"):
        seq2seq.train(range(1, 3), 1, 0, {k: v for k, v in REFERENCE_FUNCTIONS.items() if k != "birnn_backward"})
    fns = {k: v for k, v in REFERENCE_FUNCTIONS.items() if not k.startswith("attention")}
    assert seq2seq.train(range(1, 3), 2, 0, fns, attention=False)["loss"].shape == (2,)


def test_tags_say_whether_the_digit_recurs_later_and_the_past_only_bound():
    x, y = tagging_batch(np.random.default_rng(2), 100, 6, 3)
    for n in range(100):
        for t in range(6):
            assert y[n, t] == (x[n, t] in x[n, t + 1:])
    assert y[:, -1].sum() == 0
    assert past_only_accuracy(K=2, T=2) == 0.75     # position 0: repeat with p 1/2; last: never
