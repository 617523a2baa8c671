"""Student kit of "RNNs and LSTMs, from scratch": ``from rnnkit import check``."""
from .probe import check

__all__ = ["check"]
