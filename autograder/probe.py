"""``check()``: the one call in every test cell, run inside the student's kernel.

It runs the student's functions on a list of cases and collects what they
return. What happens next depends on where the kernel runs:

* on the student's machine, the results are verified right away against the
  references (the very code the grader uses) and a report is printed; a failure
  raises AssertionError, so ``nbgrader validate`` agrees;
* under the grader (environment variable ``RNN_COURSE_GRADING=1``), the results
  are only *emitted* as a display message; the grader process verifies them and
  decides the points. Nothing computed in the kernel decides a grade.
"""
import json
import os
import sys
import traceback

import numpy as np

from . import wire
from .tasks import TASKS, StudentError, copy_inputs

GRADING_ENV = "RNN_COURSE_GRADING"


def case_key(case):
    """Stable name of a case, identical in the kernel and in the grader."""
    return json.dumps(case, sort_keys=True)


def check(task_name, cases=None):
    """Run the tests of ``task_name`` (e.g. ``"rnn_step_forward"``) on ``cases``.

    ``cases`` defaults to the public cases every student can see.
    """
    if task_name not in TASKS:
        raise KeyError(f"unknown test {task_name!r}; known: {', '.join(TASKS)}")
    task = TASKS[task_name]
    cases = task.public if cases is None else cases
    namespace = sys._getframe(1).f_globals
    results = collect(task, cases, namespace)
    if os.environ.get(GRADING_ENV) == "1":
        _emit(task_name, results)
        return None
    from .verify import grade_check  # references are loaded only on a student's machine
    report = grade_check(task_name, cases, results)
    if report.passed < report.total:
        raise AssertionError(report.text())  # the message is what nbgrader validate shows
    print(report.text())
    return None


def collect(task, cases, namespace):
    """Run ``task`` with the functions found in ``namespace`` on every case and probe."""
    missing = [name for name in task.needs if not callable(namespace.get(name))]
    results = {}
    for case in cases:
        inputs = task.make_inputs(case)
        key = case_key(case)
        if missing:
            results[key] = {"error": f"{', '.join(missing)} is not defined: run the cell that defines it"}
            continue
        results[key] = _run_one(task, namespace, inputs)
        for probe, probe_inputs in task.probes(case, inputs).items():
            results[f"{key}|{probe}"] = _run_one(task, namespace, probe_inputs)
    return results


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
    return f"raised {type(exc).__name__}: {exc}{where}"


def _emit(task_name, results):
    from IPython.display import display
    bundle = {wire.MIME: {"task": task_name, "results": results},
              "text/plain": f"{task_name}: {len(results)} results recorded for grading"}
    display(bundle, raw=True)
