"""Student kit of "RNNs and LSTMs, from scratch": ``from rnnkit import check``."""
from . import tasks_seq2seq  # noqa: F401  (registers exercise 6's tasks)
from .probe import check

__all__ = ["check"]
