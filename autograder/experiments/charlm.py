"""The character language model of book chapter 5, trained with the course's references.

The model, its training loop, sampling and the count yardsticks are the student
kit's (:mod:`rnnkit.charlm`), so exercise 5 trains a student's functions with the
very code the book uses; here every model function is a reference unless ``fns``
names a replacement, and the gradient is clipped to global norm ``clip``.
"""
import functools

from rnnkit import charlm
from rnnkit.charlm import (BIGRAM_ALPHAS, LAYER_PARAMS, init_params, ngram_losses, ngram_token_losses,
                           zero_state)

from autograder.reference.gru import gru_backward, gru_forward
from autograder.reference.language import (embedding_backward, embedding_forward, sample_next,
                                           temporal_affine_backward, temporal_affine_forward,
                                           temporal_softmax_loss)
from autograder.reference.long_term import clip_by_global_norm
from autograder.reference.lstm import lstm_backward, lstm_forward
from autograder.reference.rnn import rnn_backward, rnn_forward

__all__ = ["BIGRAM_ALPHAS", "LAYER_PARAMS", "REFERENCE_FUNCTIONS", "evaluate", "forward", "functions",
           "generate", "init_params", "loss_and_grads", "ngram_losses", "ngram_token_losses", "train",
           "zero_state"]

#: The functions the model is built from, by name: the references.
REFERENCE_FUNCTIONS = {
    "embedding_forward": embedding_forward, "embedding_backward": embedding_backward,
    "temporal_affine_forward": temporal_affine_forward,
    "temporal_affine_backward": temporal_affine_backward,
    "temporal_softmax_loss": temporal_softmax_loss, "sample_next": sample_next,
    "rnn_forward": rnn_forward, "rnn_backward": rnn_backward,
    "lstm_forward": lstm_forward, "lstm_backward": lstm_backward,
    "gru_forward": gru_forward, "gru_backward": gru_backward,
}


def functions(fns=None):
    """REFERENCE_FUNCTIONS with those named in the dict fns replaced."""
    unknown = sorted(set(fns or {}) - set(REFERENCE_FUNCTIONS))
    if unknown:
        raise ValueError(f"unknown function names {unknown}; choose from {sorted(REFERENCE_FUNCTIONS)}")
    return {**REFERENCE_FUNCTIONS, **(fns or {})}


def _with_references(kit_function):
    """``kit_function`` with its ``fns`` made of the references, less those ``fns=`` replaces."""
    @functools.wraps(kit_function)
    def call(*args, fns=None, **kwargs):
        return kit_function(*args, fns=functions(fns), **kwargs)
    return call


forward = _with_references(charlm.forward)
loss_and_grads = _with_references(charlm.loss_and_grads)
evaluate = _with_references(charlm.evaluate)
generate = _with_references(charlm.generate)


def train(cell, train_ids, val_ids, V, epochs, seed, clip=5.0, fns=None, **settings):
    """:func:`rnnkit.charlm.train` with the references (unless ``fns`` replaces some) and the
    gradient clipped to global norm ``clip``; ``settings``: hidden, embed, batch, T, lr, ...

    With the chapter's settings an LSTM on the Tang poems took about 15 s of one CPU
    core for 6 epochs and reached a validation perplexity near 330.
    """
    return charlm.train(cell, train_ids, val_ids, V, epochs, seed, functions(fns),
                        clip=lambda grads: clip_by_global_norm(grads, clip)[0], **settings)
