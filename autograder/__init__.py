"""RNNs and LSTMs, from scratch: the instructor's package.

References (float64), nbgrader configuration and preprocessors, the sandboxed
grading kernel, batch grading, feedback and statistics. The student's side
(check(), tasks, the comparison, conventions) is the :mod:`rnnkit` package, on
which this one depends; nothing of this package runs in a student's kernel.
"""
