"""``check()``: the one call in every test cell, run inside the student's kernel.

It runs the student's functions on a list of cases and collects what they
return. What happens next depends on where the kernel runs:

* on the student's machine, the results are compared right away with the
  expected outputs shipped in the kit (:mod:`rnnkit.expected`) by the very
  comparison the grader uses (:mod:`rnnkit.compare`); a failure raises
  :class:`CheckFailed`, whose message is the report, so ``nbgrader validate``
  shows it too;
* under the grader (environment variable ``RNN_COURSE_GRADING=1``), the results
  are only *emitted* as a display message; the grader process re-derives the
  inputs, computes the references and decides the points. Nothing computed in
  the kernel decides a grade.
"""
import functools
import json
import os
import sys
import traceback
from importlib import metadata

import numpy as np

from . import standins, wire
from .compare import case_key, depends_key, grade_check, standin_key
from .expected import ShippedData, StaleKit
from .tasks import TASKS, StudentError, copy_inputs

GRADING_ENV = "RNN_COURSE_GRADING"

#: Entry-point group through which an instructor's installation supplies expected
#: outputs for cases the kit does not ship (hidden cases in the source notebooks).
PROVIDER_GROUP = "rnnkit.references"


class CheckFailed(AssertionError):
    """A check that did not pass. Jupyter shows its message alone, without the kit's frames."""

    def _render_traceback_(self):   # IPython and nbgrader validate show these lines
        return [f"\x1b[0;31mcheck failed\x1b[0m: {line}" if i == 0 else line
                for i, line in enumerate(str(self).splitlines())]


class Check:
    """``check(task_name, cases=None, hidden=None)``; ``check.release(assignment, stamp)`` in the setup cell."""

    def __init__(self):
        self._release = None
        self._data = None

    def release(self, assignment, stamp):
        """Declare the release this notebook belongs to; checks refuse a kit of another one."""
        self._release = (assignment, stamp)

    def __call__(self, task_name, cases=None, hidden=None, sealed=None):
        """Run the tests of ``task_name`` (e.g. ``"rnn_step_forward"``) on ``cases``.

        ``cases`` defaults to the public cases every student can see. ``hidden``: specs
        without seeds (``[{"N": 3, "D": 5, "H": 2}]``) of the instructor's hidden cases,
        whose inputs only an instructor's installation makes (:data:`PROVIDER_GROUP`).
        ``sealed``: what the grader writes in place of those (inputs, no spec), run only
        under the grader.
        """
        if task_name not in TASKS:
            raise CheckFailed(f"unknown test {task_name!r}; known: {', '.join(TASKS)}")
        task = TASKS[task_name]
        namespace = sys._getframe(1).f_globals
        grading = os.environ.get(GRADING_ENV) == "1"
        if sealed is not None:
            if not grading:
                raise CheckFailed("sealed cases are run by the grader only")
            _emit(task_name, run_sealed(task, sealed, namespace))
            return None
        if hidden is not None:
            if grading:   # the grader seals hidden cases before the kernel sees them
                raise CheckFailed("hidden cases are run by the grader only")
            return self._check_hidden(task, list(hidden), namespace)
        cases = list(task.public if cases is None else cases)
        if grading:   # the kit's inputs of public cases hold what the grader derives (a given cache)
            _emit(task_name, collect(task, cases, namespace, lambda case: _kit_inputs(task, case)))
            return None
        data = self._shipped()
        shipped = [c for c in cases if data.has(task_name, c)]
        inputs = lambda case: data.inputs(task_name, case) if case in shipped else task.make_inputs(case)
        results = collect(task, cases, namespace, inputs)
        expected = _expected_for(data, shipped)
        return _report(grade_check(task_name, cases, results, expected))

    def _check_hidden(self, task, specs, namespace):
        """An instructor's check of hidden cases: inputs and expected outputs from the provider."""
        provider = _provider()
        if provider is None:
            raise CheckFailed(f"{task.name}: only the grader checks hidden cases")
        made = [provider(task, spec) for spec in specs]
        inputs = {case_key(spec): made[i][0] for i, spec in enumerate(specs)}
        expected = {case_key(spec): made[i][1] for i, spec in enumerate(specs)}
        results = collect(task, specs, namespace, lambda spec: inputs[case_key(spec)])
        return _report(grade_check(task.name, specs, results, lambda t, spec: expected[case_key(spec)],
                                   hidden=True))

    def _shipped(self):
        if self._data is None:
            self._data = ShippedData()
        if self._release is not None:
            try:
                self._data.require(*self._release, _version())
            except StaleKit as exc:
                raise CheckFailed(str(exc)) from None
        return self._data


def _report(report):
    if report.passed < report.total:
        raise CheckFailed(report.text())
    print(report.text())


check = Check()


def _version():
    try:
        return metadata.version("rnnkit")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _provider():
    """The instructor's ``(task, case) -> (inputs, (outputs, probes))``, or None (a student's kit)."""
    found = [ep for ep in metadata.entry_points(group=PROVIDER_GROUP)]
    return found[0].load() if found else None


def _expected_for(data, shipped):
    """Expected outputs: shipped data for the kit's cases, an instructor's references for others."""
    providers = {}

    def expected(task, case):
        if case in shipped or (case in task.public and data.has(task.name, case)):
            return data.expected(task, case)
        if "references" not in providers:
            providers["references"] = _provider()
        if providers["references"] is None:
            raise CheckFailed(f"{task.name}: the kit has no expected outputs for the case "
                              f"{task.describe(case)}: only the grader checks cases beyond the public ones")
        return providers["references"](task, case)[1]
    return expected


def collect(task, cases, namespace, make_inputs, probes=True):
    """Run ``task`` with the functions found in ``namespace`` on every case (and its probes,
    its dependencies' first public case), a layer with stand-ins twice (:func:`_run_standin`)."""
    missing = _missing(task, namespace)
    results = {}
    for case in cases:
        key = case_key(case)
        if missing:
            results[key] = {"error": missing}
            continue
        inputs = make_inputs(case)
        results[key] = _run_one(task, namespace, inputs)
        if task.standins:
            results[standin_key(key)] = _run_standin(task, namespace, inputs)
        for probe, probe_inputs in (task.probes(case, inputs) if probes else {}).items():
            results[f"{key}|{probe}"] = _run_one(task, namespace, probe_inputs)
    for name in task.depends if probes and not missing else ():
        dep = TASKS[name]   # on its first public case, with the kit's inputs (a given cache included)
        if _missing(dep, namespace) is None:
            inputs = _kit_inputs(dep, dep.public[0])
            results[depends_key(name)] = _run_one(dep, namespace, inputs)
            if dep.standins:
                results[standin_key(depends_key(name))] = _run_standin(dep, namespace, inputs)
    return results


@functools.lru_cache(maxsize=1)
def _kit_data():
    return ShippedData()


def _kit_inputs(task, case):
    """The inputs of a public case as the kit ships them (what the grader derives included)."""
    data = _kit_data()
    return data.inputs(task.name, case) if data.has(task.name, case) else task.make_inputs(case)


def _missing(task, namespace):
    missing = [name for name in task.needs if not callable(namespace.get(name))]
    return f"{', '.join(missing)} is not defined: run the cell that defines it" if missing else None


def run_sealed(task, sealed, namespace):
    """Run ``task`` on the inputs the grader sealed into a cell: ``{key: inputs}`` as JSON
    (:func:`rnnkit.wire.seal_inputs`), keys ``key|probe`` for probes. A case's stand-in run
    (:attr:`rnnkit.tasks.Task.standins`) is scoring too: it runs here, under ``key|standin``."""
    try:
        if not isinstance(sealed, str) or len(sealed) > wire.MAX_SEALED_CHARS:
            raise wire.WireError("malformed inputs")
        cases = {str(key): wire.unseal_inputs(value) for key, value in json.loads(sealed).items()}
    except (ValueError, TypeError, AttributeError):
        return {}
    missing = _missing(task, namespace)
    results = {}
    for key, inputs in cases.items():
        results[key] = {"error": missing} if missing else _run_one(task, namespace, inputs)
        if task.standins and "|" not in key:
            results[standin_key(key)] = {"error": missing} if missing else _run_standin(task, namespace, inputs)
    return results


def _run_standin(task, namespace, inputs):
    """:func:`_run_one` with the functions the layer calls bound to their stand-ins."""
    with standins.bound(namespace, task.standins):
        return _run_one(task, namespace, inputs)


def _run_one(task, namespace, inputs):
    given = copy_inputs(inputs)
    try:
        outputs = task.run(namespace, given)
    except StudentError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # the student's code may raise anything
        return {"error": _describe(exc)}
    if len(outputs) != len(task.outputs):
        return {"error": f"{task.name} returned {len(outputs)} values, expected {len(task.outputs)}"}
    return {
        "outputs": {name: wire.encode(value) for name, value in zip(task.outputs, outputs)},
        "modified": sorted(k for k in inputs if not np.array_equal(inputs[k], given[k], equal_nan=True)),
    }


def _describe(exc):
    """The exception and the student's own frames; frames of this package are left out."""
    if isinstance(exc, NotImplementedError):
        return "not implemented yet (raises NotImplementedError)"
    here = os.path.dirname(__file__)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(here)]
    where = "".join(f"\n    line {f.lineno} in {f.name}: {f.line}" for f in frames[-3:])
    return f"raised {type(exc).__name__}: {str(exc)[:200]}{where}"


def _emit(task_name, results):
    from IPython.display import display
    bundle = {wire.MIME: {"task": task_name, "results": results},
              "text/plain": f"{task_name}: {len(results)} results recorded for grading"}
    display(bundle, raw=True)
