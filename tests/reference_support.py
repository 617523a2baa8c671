"""Helpers shared by the reference tests: finite differences, torch autograd runs, comparisons."""
import numpy as np

SHAPES = [(1, 1, 1, 1), (2, 3, 4, 5), (3, 5, 2, 1), (4, 2, 3, 7)]  # (N, D, H, T)
TORCH_ATOL = 1e-10
FD_EPS = 1e-6
FD_RTOL = 1e-7


def numeric_gradients(loss, inputs):
    """Centred finite differences of the scalar loss(*inputs) with respect to every input."""
    grads = []
    for k, a in enumerate(inputs):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            args = list(inputs)
            plus, minus = a.copy(), a.copy()
            plus[idx] += FD_EPS
            minus[idx] -= FD_EPS
            args[k] = plus
            f_plus = loss(*args)
            args[k] = minus
            g[idx] = (f_plus - loss(*args)) / (2 * FD_EPS)
        grads.append(g)
    return grads


def assert_fd_close(analytic, numeric):
    assert len(analytic) == len(numeric)
    for a, n in zip(analytic, numeric):
        assert a.shape == n.shape
        rel = np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-12)
        assert rel < FD_RTOL, rel


def assert_torch_close(ours, theirs):
    assert len(ours) == len(theirs)
    for a, t in zip(ours, theirs):
        assert a.shape == t.shape
        assert np.max(np.abs(a - t), initial=0.0) <= TORCH_ATOL


def torch_run(torch, fn, inputs, upstreams):
    """fn(*tensors) in float64 autograd; returns (outputs, gradients w.r.t. every input)."""
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs]
    outs = fn(*ts)
    outs = outs if isinstance(outs, tuple) else (outs,)
    torch.autograd.backward(outs, [torch.tensor(u, dtype=torch.float64) for u in upstreams])
    grads = [np.zeros_like(a) if t.grad is None else t.grad.numpy() for a, t in zip(inputs, ts)]
    return [o.detach().numpy() for o in outs], grads


def assert_equal_trees(a, b):
    """Nested tuples/lists/dicts of arrays are equal, entry by entry."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_equal_trees(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for u, v in zip(a, b):
            assert_equal_trees(u, v)
    else:
        np.testing.assert_array_equal(a, b)
