"""Verification in the grader's process: the kit's comparison, with references computed here.

The comparison and the report are :mod:`rnnkit.compare`, the very code a student's
check() runs; only where the expected outputs come from differs. Here they are
computed by the float64 references from the case specs in the instructor's test
cell (:func:`reference_expected`), once per case in a process (a worker meets the same
cases in every submission); a student's kit reads them from shipped data.
Hidden cases and the fresh twins of public ones are seeded from the course's secret
(:mod:`autograder.secret`) and handed to the kernel as inputs only
(:func:`sealed_source`); a public unit counts only with its twin's (:func:`require_twins`).
:func:`instructor_case` serves an instructor's own check() of hidden cases, through
the ``rnnkit.references`` entry point.
"""
import functools
import json

import numpy as np
from rnnkit import compare, wire
from rnnkit.standins import STANDINS
from rnnkit.tasks import TASKS, copy_inputs

from . import secret
from .reference import gradcheck, gru, language, long_term, lstm, rnn, seq2seq
from .reference.unroll import unroll_backward, unroll_forward

REFERENCES = {name: obj for module in (rnn, lstm, gru, long_term, language, gradcheck, seq2seq)
              for name, obj in vars(module).items() if callable(obj)}

#: Each layer that calls a student function (:attr:`rnnkit.tasks.Task.standins`) as its loop
#: over that function: the reference layer is ``LOOPS[layer](reference function, ...)``, the
#: expected outputs of its stand-in run ``LOOPS[layer](stand-in, ...)`` (:func:`standin_references`).
LOOPS = {"rnn_forward": unroll_forward, "gru_forward": unroll_forward, "lstm_forward": lstm.unroll_lstm_forward,
         "rnn_backward": unroll_backward, "gru_backward": unroll_backward,
         "lstm_backward": lstm.unroll_lstm_backward, "lstm_truncated_backward": lstm.unroll_lstm_backward,
         "birnn_forward": seq2seq.bidirectional_forward, "birnn_backward": seq2seq.bidirectional_backward}


def standin_references(task):
    """The references with ``task``'s layer built on the stand-ins of the functions it calls."""
    layer = task.needs[0]
    return {**REFERENCES, layer: functools.partial(LOOPS[layer], *(STANDINS[name] for name in task.standins))}


def reference_inputs(task, case):
    """The inputs of ``case``: made from its spec and seed, plus what the references derive
    from them (:attr:`rnnkit.tasks.Task.derive`: the cache a backward receives).

    A backward's sealed inputs thus carry the reference forward's values, on the backward's
    own inputs only: hidden and fresh cases are seeded per task (:func:`autograder.secret.seeded`),
    so they never hold the expected outputs of a forward's hidden case."""
    inputs = task.make_inputs(case)
    if task.derive is not None:
        inputs.update(task.derive(REFERENCES, copy_inputs(inputs)))
    return inputs


def reference_outputs(task, inputs, references=REFERENCES):
    """The task's outputs computed by the references, as float64 arrays."""
    return [np.asarray(out, dtype=np.float64) for out in task.run(references, copy_inputs(inputs))]


def reference_probes(task, case, inputs):
    """{probe name: reference outputs} for the diagnostic probes of ``case``, and for a task
    with stand-ins the expected outputs of its stand-in run (:data:`rnnkit.compare.STANDIN`)."""
    probes = {probe: reference_outputs(task, p) for probe, p in task.probes(case, inputs).items()}
    if task.standins:
        probes[compare.STANDIN] = reference_outputs(task, inputs, standin_references(task))
    return probes


def reference_expected(task, case):
    """``(outputs, probes)`` of ``case`` from the references, as :func:`rnnkit.compare.grade_check` takes."""
    inputs, outputs = _reference_case(task, case)
    return outputs, lambda: _kept_probes(task, case)


#: (task name, case key) -> [task, inputs, outputs, probes or None] computed in this process:
#: a batch's worker meets the same cases in every submission of an assignment.
_KEPT = {}
KEPT_CASES = 4096   # at most (the course's cases: about a hundred, 0.1 MB in all)


def _read_only(arrays):
    for array in arrays:
        if isinstance(array, np.ndarray):
            array.setflags(write=False)


def _kept(task, case):
    key = (task.name, compare.case_key(case))
    kept = _KEPT.get(key)
    if kept is None or kept[0] is not task:
        if len(_KEPT) >= KEPT_CASES:
            _KEPT.clear()
        inputs = reference_inputs(task, case)
        outputs = reference_outputs(task, inputs)
        _read_only([*inputs.values(), *outputs])
        kept = _KEPT[key] = [task, inputs, outputs, None]
    return kept


def _reference_case(task, case):
    """The case's inputs and the references' outputs for them, read-only, computed once per
    process: both follow from the task and the case (its seed) alone."""
    kept = _kept(task, case)
    return kept[1], kept[2]


def _kept_probes(task, case):
    """:func:`reference_probes` of the case, read-only, computed once per process when first
    asked for (a wrong case's diagnosis, a stand-in run's expected outputs), like its outputs."""
    kept = _kept(task, case)
    if kept[3] is None:
        probes = reference_probes(task, case, kept[1])
        _read_only([a for outputs in probes.values() for a in outputs])
        kept[3] = probes
    return kept[3]


def grade_check(task_name, cases, results, hidden=False, kernel_text=True):
    """The report of one check() call, verified against the references."""
    return compare.grade_check(task_name, cases, results, reference_expected, hidden, kernel_text)


def instructor_case(task, case):
    """``(inputs, (outputs, probes))`` of ``case`` for an instructor's check() (the
    ``rnnkit.references`` entry point): a hidden case's spec gets the seed of the
    course's secret (:func:`autograder.secret.instructor_secret_path`), as under the grader."""
    if "seed" not in case:
        case = secret.seeded(secret.load(secret.instructor_secret_path()), HIDDEN, task.name, case)
    inputs, _ = _reference_case(task, case)
    return copy_inputs(inputs), reference_expected(task, case)


#: Purposes of the seeds of sealed cases (see :func:`autograder.secret.seeded`).
HIDDEN = "hidden"


def fresh_purpose(student, submission):
    """Fresh twins of public cases are the student's own, for one submission (``submission``:
    a digest of it): stable across regrades, and quoting them helps nobody, not even the
    student's next submission."""
    return f"fresh|{student}|{submission}"


#: sealed_source's calls of hidden cases, the same in every submission: (task, cases, keys) -> call
_SEALED = {}


def sealed_source(task_name, cases, keys, probes=False):
    """The call the grader writes into a cell for ``cases`` (seeded): their inputs under
    opaque ``keys`` (and, with ``probes``, their probes' under ``key|probe``), no spec and
    no seed. Calls with probes (hidden cases) are made once per process."""
    memo = (task_name, tuple(compare.case_key(case) for case in cases), tuple(keys)) if probes else None
    if memo in _SEALED:
        return _SEALED[memo]
    task = TASKS[task_name]
    sealed = {}
    for key, case in zip(keys, cases):
        inputs = _reference_case(task, case)[0]
        sealed[key] = wire.seal_inputs(inputs)
        for probe, probe_inputs in (task.probes(case, inputs) if probes else {}).items():
            sealed[f"{key}|{probe}"] = wire.seal_inputs(probe_inputs)
    call = f"check({task_name!r}, sealed={json.dumps(sealed, separators=(',', ':'))!r})"
    if memo is not None:
        if len(_SEALED) >= KEPT_CASES:
            _SEALED.clear()
        _SEALED[memo] = call
    return call


#: Said of a public output that is right while the same output on fresh inputs is not.
NOT_GENERAL = ("right here, but wrong on fresh inputs of the same shapes: the grader reruns "
               "every public case on new inputs, and the answer must be computed, not known")
NOT_CONFIRMED = ("not confirmed: the rerun of this case on fresh inputs of the same shapes "
                 "did not finish")


def require_twins(report, cases, twin_report):
    """A public unit counts only if its fresh twin's is right too: ``report`` loses the
    others, each with a message of the grader's own."""
    task = TASKS[report.task]
    unfinished = {int(where.split()[-1]) - 1 for where, msg in twin_report.failures if msg == compare.NO_RESULT}
    for i, name in sorted(twin_report.lost - report.lost, key=lambda unit: (unit[0], task.outputs.index(unit[1]))):
        report.passed -= 1
        report.lost.add((i, name))
        report.failures.append((task.describe(cases[i]),
                                f"{name}: {NOT_CONFIRMED if i in unfinished else NOT_GENERAL}"))
    return report
