"""Verification in the grader's process: the kit's comparison, with references computed here.

The comparison and the report are :mod:`rnnkit.compare`, the very code a student's
check() runs; only where the expected outputs come from differs. Here they are
computed by the float64 references from the case specs in the instructor's test
cell (:func:`reference_expected`); a student's kit reads them from shipped data.
The same function serves an instructor's own check() for hidden cases, through
the ``rnnkit.references`` entry point.
"""
import numpy as np
from rnnkit import compare
from rnnkit.tasks import copy_inputs

from .reference import gradcheck, gru, language, long_term, lstm, rnn

REFERENCES = {name: obj for module in (rnn, lstm, gru, long_term, language, gradcheck)
              for name, obj in vars(module).items() if callable(obj)}


def reference_outputs(task, inputs):
    """The task's outputs computed by the references, as float64 arrays."""
    return [np.asarray(out, dtype=np.float64) for out in task.run(REFERENCES, copy_inputs(inputs))]


def reference_probes(task, case, inputs):
    """{probe name: reference outputs} for the diagnostic probes of ``case``."""
    return {probe: reference_outputs(task, p) for probe, p in task.probes(case, inputs).items()}


def reference_expected(task, case):
    """``(outputs, probes)`` of ``case`` from the references, as :func:`rnnkit.compare.grade_check` takes."""
    inputs = task.make_inputs(case)
    return reference_outputs(task, inputs), lambda: reference_probes(task, case, inputs)


def grade_check(task_name, cases, results, hidden=False):
    """The report of one check() call, verified against the references."""
    return compare.grade_check(task_name, cases, results, reference_expected, hidden)
