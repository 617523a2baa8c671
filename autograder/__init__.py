"""RNNs and LSTMs, from scratch: reference implementations and the autograder.

Kept import-light on purpose: the student's kernel imports :mod:`autograder.probe`
and must not pay for torch, nbgrader or matplotlib.
"""
