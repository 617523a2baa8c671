"""autograder.experiments.variants: the first-mark task and the stacked LSTM variants."""
import numpy as np
import pytest

from ci import require_module

torch = require_module("torch", "pip install -r requirements.txt (the CPU wheel of torch)")

from autograder.experiments.variants import (  # noqa: E402
    StackedLSTM,
    clip_each_model,
    first_mark_batch,
    train_lstm_variants,
)
from rnnkit.conventions import gate_slice  # noqa: E402


def test_first_mark_batch_targets_the_earliest_marker():
    x, y = first_mark_batch(np.random.default_rng(0), 50, 12, marks=3)
    assert x.shape == (50, 12, 2) and y.shape == (50,)
    assert np.all(x[:, :, 1].sum(axis=1) == 3)
    first = np.argmax(x[:, :, 1] == 1, axis=1)
    np.testing.assert_array_equal(y, x[np.arange(50), first, 0])
    with pytest.raises(ValueError, match="marks"):
        first_mark_batch(np.random.default_rng(0), 2, 2, marks=3)


def step(x, h, c, Wx, Wh, b, peep, flags):
    """One step of one variant, written out gate by gate."""
    H = h.shape[1]
    Wh = Wh.clone()
    if not flags.get("h_in_gates", True):
        for k in "ifo":
            Wh[:, gate_slice("lstm", k, H)] = 0.0
    if not flags.get("h_in_candidate", True):
        Wh[:, gate_slice("lstm", "g", H)] = 0.0
    a = x @ Wx + h @ Wh + b
    blk = {k: a[:, gate_slice("lstm", k, H)] for k in "ifgo"}
    p = peep if flags.get("peepholes") else torch.zeros_like(peep)
    f = torch.sigmoid(blk["f"] + p[1] * c)
    if flags.get("forget_gate", True) is False:
        f = torch.ones_like(f)
    i = 1 - f if flags.get("coupled") else torch.sigmoid(blk["i"] + p[0] * c)
    c = f * c + i * torch.tanh(blk["g"])
    o = torch.sigmoid(blk["o"] + p[2] * c)
    if flags.get("output_gate", True) is False:
        o = torch.ones_like(o)
    return o * torch.tanh(c), c


VARIANTS = [{}, {"forget_gate": False}, {"output_gate": False}, {"coupled": True},
            {"peepholes": True}, {"h_in_gates": False}, {"forget_bias": 0.0},
            {"h_in_gates": False, "h_in_candidate": False}]


def test_stacked_model_computes_each_variant():
    torch.manual_seed(0)
    model = StackedLSTM(VARIANTS, list(range(len(VARIANTS))), D=2, H=3)
    with torch.no_grad():
        model.peep.normal_()
    x = torch.randn(4, 5, 2)
    y_hat = model(x)
    for v, flags in enumerate(VARIANTS):
        h = c = torch.zeros(4, 3)
        for t in range(5):
            h, c = step(x[:, t], h, c, model.Wx[v], model.Wh[v], model.b[v],
                        model.peep[v], flags)
        expected = h @ model.w[v] + model.c[v]
        torch.testing.assert_close(y_hat[v], expected, rtol=1e-5, atol=1e-6)


def test_standard_variant_is_torch_lstm():
    model = StackedLSTM([{}], [3], D=2, H=4)
    lstm = torch.nn.LSTM(2, 4, batch_first=True)
    with torch.no_grad():  # same gate order: torch's weights are our transposes
        lstm.weight_ih_l0.copy_(model.Wx[0].T)
        lstm.weight_hh_l0.copy_(model.Wh[0].T)
        lstm.bias_ih_l0.copy_(model.b[0])
        lstm.bias_hh_l0.zero_()
    x = torch.randn(3, 6, 2)
    expected = lstm(x)[0][:, -1] @ model.w[0] + model.c[0]
    torch.testing.assert_close(model(x)[0], expected, rtol=1e-5, atol=1e-6)


def test_models_train_independently():
    """Trained together, with clipping active, a variant ends where it ends alone."""
    both = train_lstm_variants({"a": {}, "b": {"coupled": True}}, [0], "adding",
                               T=6, steps=5, hidden=3, eval_every=5, clip=1e-3)
    alone = train_lstm_variants({"b": {"coupled": True}}, [0], "adding",
                                T=6, steps=5, hidden=3, eval_every=5, clip=1e-3)
    np.testing.assert_allclose(both["mse"]["b", 0], alone["mse"]["b", 0],
                               rtol=1e-4)
    assert not np.allclose(both["mse"]["a", 0], both["mse"]["b", 0])


def test_each_model_is_clipped_on_its_own():
    a = torch.zeros(3, 2, requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    a.grad = torch.tensor([[3.0, 0.0], [0.1, 0.0], [0.0, 30.0]])
    b.grad = torch.tensor([4.0, 0.0, 40.0])
    clip_each_model([a, b], 1.0)
    norms = torch.sqrt(a.grad.pow(2).sum(1) + b.grad.pow(2))
    torch.testing.assert_close(norms, torch.tensor([1.0, 0.1, 1.0]))
    torch.testing.assert_close(a.grad[0] / b.grad[0], torch.tensor([0.75, 0.0]))


def test_unknown_flag_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown variant flags"):
        StackedLSTM([{"forget_gates": False}], [0], D=2, H=2)
