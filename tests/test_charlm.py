"""autograder.experiments.charlm: gradients of the whole model, yardsticks, training, sampling."""
import numpy as np
import pytest

from autograder.experiments import charlm
from reference_support import assert_fd_close, numeric_gradients


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_model_gradient_matches_finite_differences(cell):
    rng = np.random.default_rng(1)
    V, D, H, N, T = 5, 3, 4, 2, 6
    params = charlm.init_params(cell, V, D, H, rng)
    for v in params.values():
        v += 0.1 * rng.standard_normal(v.shape)
    x, y = rng.integers(0, V, size=(N, T)), rng.integers(0, V, size=(N, T))
    mask = np.ones((N, T), dtype=bool)
    mask[1, 4:] = False
    state = tuple(rng.standard_normal((N, H)) for _ in charlm.zero_state(cell, N, H))
    names = list(params)
    _, grads, _ = charlm.loss_and_grads(cell, params, x, y, mask, state)

    def loss(*arrays):
        return charlm.loss_and_grads(cell, dict(zip(names, arrays)), x, y, mask, state)[0]

    assert_fd_close([grads[k] for k in names], numeric_gradients(loss, [params[k] for k in names]))


def test_ngram_yardsticks_on_a_periodic_text():
    ids = np.tile([0, 1, 2], 200)
    losses = charlm.ngram_losses(ids, ids[:30], V=4)
    assert losses["uniform"] == pytest.approx(np.log(4))
    assert losses["unigram"] == pytest.approx(-np.log(201 / 604), rel=1e-9)
    assert losses["bigram"] < 0.01 < losses["unigram"]  # each id determines the next
    assert losses["alpha"] == 0.01


def test_training_learns_a_periodic_text_and_generation_continues_it():
    ids = np.tile(np.arange(7), 120)
    history = charlm.train("lstm", ids, ids[:200], V=7, epochs=8, seed=0, hidden=16, embed=4,
                           batch=4, T=20, lr=2e-2)
    assert history["val_loss"][0] > 1.5 > 0.1 > history["val_loss"][-1]
    out = charlm.generate("lstm", history["params"], np.array([2, 3]), 9, 0.0, np.random.default_rng(0))
    assert out.tolist() == [4, 5, 6, 0, 1, 2, 3, 4, 5]
    again = charlm.generate("lstm", history["params"], np.array([2]), 5, 1.0, np.random.default_rng(3))
    assert np.array_equal(again, charlm.generate("lstm", history["params"], np.array([2]), 5, 1.0,
                                                 np.random.default_rng(3)))


def test_own_functions_replace_the_references():
    ids = np.tile(np.arange(5), 40)
    calls = []

    def my_lstm_forward(*args):
        calls.append(1)
        return charlm.REFERENCE_FUNCTIONS["lstm_forward"](*args)

    def buggy_embedding_backward(dout, cache):  # dW[x] = dout: repeated ids lose gradient
        x, V = cache
        dW = np.zeros((V, dout.shape[-1]))
        dW[x] = dout
        return dW

    kw = dict(V=5, epochs=1, seed=0, hidden=8, embed=3, batch=2, T=10)
    ref = charlm.train("lstm", ids, ids[:50], **kw)
    mine = charlm.train("lstm", ids, ids[:50], fns={"lstm_forward": my_lstm_forward}, **kw)
    assert calls and np.array_equal(ref["val_loss"], mine["val_loss"])
    buggy = charlm.train("lstm", ids, ids[:50], fns={"embedding_backward": buggy_embedding_backward}, **kw)
    assert not np.allclose(ref["val_loss"][1:], buggy["val_loss"][1:])
    with pytest.raises(ValueError, match="unknown function names \\['lstm_fwd'\\]"):
        charlm.train("lstm", ids, ids[:50], fns={"lstm_fwd": my_lstm_forward}, **kw)
