"""Seeded bugs in the language-model functions of autograder/reference/language.py.

Each mutant is a plain function with the signature of the reference it imitates, the
kind of mistake a student makes. ``MUTANTS`` lists them with the reference's name, the
bug in words and the input case (in ``CASES``) on which it must disagree with the
reference beyond rnnkit.conventions' tolerance. Exercise 5's grading can wire them in
as wrong student submissions.
"""
from dataclasses import dataclass

import numpy as np

from autograder.reference import language as ref


# ---------------------------------------------------------------- embedding


def embedding_forward_column_major(x, W):
    """Ids read in column-major order: the rows of the output belong to the wrong (n, t)."""
    N, T = x.shape
    return W[x.ravel(order="F")].reshape(N, T, -1), (x, W.shape[0])


def embedding_backward_no_accumulation(dout, cache):
    """dW[x] = dout: of repeated ids, only the last occurrence's gradient survives."""
    x, V = cache
    dW = np.zeros((V, dout.shape[-1]), dtype=dout.dtype)
    dW[x] = dout
    return dW


def embedding_backward_fancy_add(dout, cache):
    """dW[x] += dout: looks like accumulation, but numpy buffers it (same bug as above)."""
    x, V = cache
    dW = np.zeros((V, dout.shape[-1]), dtype=dout.dtype)
    dW[x] += dout
    return dW


def embedding_backward_mean(dout, cache):
    """Repeated ids averaged instead of summed."""
    x, V = cache
    dW = np.zeros((V, dout.shape[-1]), dtype=dout.dtype)
    np.add.at(dW, x, dout)
    counts = np.bincount(x.ravel(), minlength=V)
    return dW / np.maximum(counts, 1)[:, None]


# ---------------------------------------------------------------- temporal affine


def temporal_affine_forward_no_bias(h, W, b):
    """Bias forgotten."""
    return h @ W, (h, W)


def temporal_affine_backward_last_step_dW(dscores, cache):
    """dW from the last time step only (forgot to sum over time)."""
    h, W = cache
    return dscores @ W.T, h[:, -1].T @ dscores[:, -1], dscores.sum(axis=(0, 1))


def temporal_affine_backward_db_mean(dscores, cache):
    """db averaged over the N*T positions instead of summed."""
    dh, dW, db = ref.temporal_affine_backward(dscores, cache)
    return dh, dW, db / (dscores.shape[0] * dscores.shape[1])


# ---------------------------------------------------------------- masked loss


def _unshifted_log_softmax(scores):
    return scores - np.log(np.exp(scores).sum(axis=-1, keepdims=True))


def _loss(scores, y, mask, log_softmax=ref.log_softmax, divide_by=None, grad_divide_by=None):
    """The reference's computation, with the division and the log-softmax swappable."""
    mask = np.asarray(mask, dtype=bool)
    count = max(int(mask.sum()), 1)
    logp = log_softmax(scores)
    n, t = np.nonzero(mask)
    loss = -logp[n, t, y[n, t]].sum() / (count if divide_by is None else divide_by)
    dscores = np.exp(logp)
    dscores[n, t, y[n, t]] -= 1.0
    dscores *= mask[..., None] / (count if grad_divide_by is None else grad_divide_by)
    return float(loss), dscores


def temporal_softmax_loss_mask_ignored(scores, y, mask):
    """Every position counts, padding included."""
    return ref.temporal_softmax_loss(scores, y, np.ones(y.shape, dtype=bool))


def temporal_softmax_loss_summed(scores, y, mask):
    """Loss and gradient summed over the tokens instead of averaged."""
    return _loss(scores, y, mask, divide_by=1, grad_divide_by=1)


def temporal_softmax_loss_mean_over_all(scores, y, mask):
    """Masked tokens left out of the sum but counted in the average (divides by N*T)."""
    return _loss(scores, y, mask, divide_by=y.size, grad_divide_by=y.size)


def temporal_softmax_loss_no_shift(scores, y, mask):
    """exp of the raw scores: overflows to inf, then nan, for large logits."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _loss(scores, y, mask, log_softmax=_unshifted_log_softmax)


def temporal_softmax_loss_gradient_not_averaged(scores, y, mask):
    """The loss is averaged but its gradient is not."""
    return _loss(scores, y, mask, grad_divide_by=1)


def temporal_softmax_loss_fully_masked_nan(scores, y, mask):
    """Divides by the raw count of unmasked tokens: 0/0 = nan when everything is masked."""
    count = np.asarray(mask, dtype=bool).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return _loss(scores, y, mask, divide_by=count, grad_divide_by=count)


# ---------------------------------------------------------------- softmax and sampling


def softmax_no_shift(scores, temperature=1.0):
    """exp of the raw scaled scores: inf / inf = nan for large logits."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(scores / temperature)
        return e / e.sum(axis=-1, keepdims=True)


def softmax_temperature_after(scores, temperature=1.0):
    """Temperature applied to the probabilities after the softmax (then renormalised): no effect."""
    p = ref.softmax(scores) / temperature
    return p / p.sum(axis=-1, keepdims=True)


def softmax_temperature_multiplies(scores, temperature=1.0):
    """Logits multiplied by the temperature instead of divided."""
    return ref.softmax(scores * temperature)


def sample_next_temperature_after(scores, temperature, u):
    """Samples from softmax(scores) whatever the temperature."""
    if temperature == 0:
        return scores.argmax(axis=-1).astype(np.int64)
    return ref.sample_next(scores, 1.0, u)


def sample_next_always_greedy(scores, temperature, u):
    """Ignores the draws u: argmax at every temperature."""
    return scores.argmax(axis=-1).astype(np.int64)


def sample_next_reversed_draw(scores, temperature, u):
    """Uses 1 - u instead of u."""
    return ref.sample_next(scores, temperature, 1.0 - np.asarray(u))


# ---------------------------------------------------------------- input cases


def _rng(name):
    return np.random.default_rng([sum(map(ord, name)), len(name)])


def case_embedding_repeated():
    """x with repeated ids (N=3, T=4, V=5, D=3) and an upstream gradient."""
    rng = _rng("embedding")
    x = np.array([[0, 2, 2, 4], [1, 2, 0, 0], [4, 4, 4, 3]])
    W = rng.standard_normal((5, 3))
    return {"forward": (x, W), "dout": rng.standard_normal((3, 4, 3))}


def case_affine():
    rng = _rng("affine")
    h, W, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((5, 6)), rng.standard_normal(6)
    return {"forward": (h, W, b), "dout": rng.standard_normal((3, 4, 6))}


def case_loss_masked():
    """Padding at the end of rows, one row fully masked."""
    rng = _rng("loss")
    scores = rng.standard_normal((3, 5, 7))
    y = rng.integers(0, 7, size=(3, 5))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=bool)
    return {"args": (scores, y, mask)}


def case_loss_large_logits():
    """Logits in the thousands: exp overflows unless shifted."""
    rng = _rng("large")
    scores = 1000.0 * rng.standard_normal((2, 3, 5))
    return {"args": (scores, rng.integers(0, 5, size=(2, 3)), np.ones((2, 3), dtype=bool))}


def case_loss_fully_masked():
    rng = _rng("empty")
    return {"args": (rng.standard_normal((2, 3, 4)), np.zeros((2, 3), dtype=np.int64),
                     np.zeros((2, 3), dtype=bool))}


def case_softmax_large_logits():
    return {"args": (np.array([[1000.0, 999.0, -5.0], [0.0, 800.0, 801.0]]), 1.0)}


def case_softmax_temperature():
    return {"args": (_rng("softmax").standard_normal((4, 6)), 0.5)}


def case_sample_temperature():
    """Many draws at temperature 0.5: the sampled ids follow softmax(scores / 0.5)."""
    rng = _rng("sample")
    scores = np.tile(rng.standard_normal(6), (200, 1))
    return {"args": (scores, 0.5, rng.uniform(size=200))}


CASES = {
    "embedding_repeated": case_embedding_repeated,
    "affine": case_affine,
    "loss_masked": case_loss_masked,
    "loss_large_logits": case_loss_large_logits,
    "loss_fully_masked": case_loss_fully_masked,
    "softmax_large_logits": case_softmax_large_logits,
    "softmax_temperature": case_softmax_temperature,
    "sample_temperature": case_sample_temperature,
}


@dataclass(frozen=True)
class LanguageMutant:
    function: str   # name of the reference it imitates, in autograder.reference.language
    mutant: object  # the wrong function, same signature
    case: str       # key of CASES: input on which it must disagree with the reference

    @property
    def bug(self):
        return self.mutant.__doc__.strip().splitlines()[0]


MUTANTS = [
    LanguageMutant("embedding_forward", embedding_forward_column_major, "embedding_repeated"),
    LanguageMutant("embedding_backward", embedding_backward_no_accumulation, "embedding_repeated"),
    LanguageMutant("embedding_backward", embedding_backward_fancy_add, "embedding_repeated"),
    LanguageMutant("embedding_backward", embedding_backward_mean, "embedding_repeated"),
    LanguageMutant("temporal_affine_forward", temporal_affine_forward_no_bias, "affine"),
    LanguageMutant("temporal_affine_backward", temporal_affine_backward_last_step_dW, "affine"),
    LanguageMutant("temporal_affine_backward", temporal_affine_backward_db_mean, "affine"),
    LanguageMutant("temporal_softmax_loss", temporal_softmax_loss_mask_ignored, "loss_masked"),
    LanguageMutant("temporal_softmax_loss", temporal_softmax_loss_summed, "loss_masked"),
    LanguageMutant("temporal_softmax_loss", temporal_softmax_loss_mean_over_all, "loss_masked"),
    LanguageMutant("temporal_softmax_loss", temporal_softmax_loss_no_shift, "loss_large_logits"),
    LanguageMutant("temporal_softmax_loss", temporal_softmax_loss_gradient_not_averaged, "loss_masked"),
    LanguageMutant("temporal_softmax_loss", temporal_softmax_loss_fully_masked_nan, "loss_fully_masked"),
    LanguageMutant("softmax", softmax_no_shift, "softmax_large_logits"),
    LanguageMutant("softmax", softmax_temperature_after, "softmax_temperature"),
    LanguageMutant("softmax", softmax_temperature_multiplies, "softmax_temperature"),
    LanguageMutant("sample_next", sample_next_temperature_after, "sample_temperature"),
    LanguageMutant("sample_next", sample_next_always_greedy, "sample_temperature"),
    LanguageMutant("sample_next", sample_next_reversed_draw, "sample_temperature"),
]
