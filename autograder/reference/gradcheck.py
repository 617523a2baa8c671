"""Numerical gradients: the centred finite differences every backward pass is checked with."""
import numpy as np


def numerical_gradient(f, x, eps=1e-5):
    """Centred differences of a scalar function f at x (any shape, float64).

    Returns grad, shaped like x: grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps),
    with e_i the unit array at index i. x is left as it was.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad
