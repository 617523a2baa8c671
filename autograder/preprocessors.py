"""nbgrader preprocessors of the course: grading decided outside the student's kernel.

``GradingExecute`` runs the notebook in a kernel that knows it is being graded
(so ``check()`` only emits results); ``VerifyResults`` then replaces the outputs of
every autograded test cell by the verdict of :mod:`autograder.verify` and a partial
score, which nbgrader's stock ``SaveAutoGrades`` records.
"""
import ast
import os

from nbclient.util import run_sync
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbformat.v4 import new_output

from . import wire
from .probe import GRADING_ENV
from .tasks import TASKS
from .verify import grade_check


class GradingExecute(Execute):
    """nbgrader's Execute, with the grading flag in the kernel's environment."""

    async def async_start_new_kernel(self, **kwargs):
        kwargs["env"] = {**os.environ, **kwargs.get("env", {}), GRADING_ENV: "1"}
        return await super().async_start_new_kernel(**kwargs)

    start_new_kernel = run_sync(async_start_new_kernel)


class BadTestCell(ValueError):
    """An instructor's test cell that the grader cannot use."""


def expected_checks(source):
    """The ``check(task, cases)`` calls of a test cell: [(task, cases)], cases literal only."""
    calls = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "check":
            args = list(node.args) + [kw.value for kw in node.keywords if kw.arg == "cases"]
            task = ast.literal_eval(args[0])
            if task not in TASKS:
                raise BadTestCell(f"unknown task {task!r}")
            cases = ast.literal_eval(args[1]) if len(args) > 1 else TASKS[task].public
            calls.append((task, list(cases)))
    if not calls:
        raise BadTestCell("an autograded test cell must call check(): "
                            "no grade may be decided inside the student's kernel")
    return calls


def emitted_results(outputs):
    """task -> {case key: result} from the cell's display messages; keys sent twice are dropped."""
    found, seen = {}, {}
    for out in outputs:
        payload = out.get("data", {}).get(wire.MIME) if out.get("output_type") == "display_data" else None
        if not isinstance(payload, dict) or not isinstance(payload.get("results"), dict):
            continue
        for key, result in payload["results"].items():
            slot = (payload.get("task"), key)
            seen[slot] = seen.get(slot, 0) + 1
            if isinstance(result, dict):
                found.setdefault(payload.get("task"), {})[key] = result
    for (task, key), count in seen.items():
        if count > 1:
            found[task][key] = {"error": "results were sent more than once"}
    return found


def verdict(source, outputs):
    """All check() reports of one test cell, verified here from its emitted results."""
    results = emitted_results(outputs)
    return [grade_check(task, cases, results.get(task, {})) for task, cases in expected_checks(source)]


def score(reports, points):
    passed, total = sum(r.passed for r in reports), sum(r.total for r in reports)
    return round(points * passed / total, 4) if total else 0.0


class VerifyResults(NbGraderPreprocessor):
    """Score every autograded test cell from the results its check() calls emitted."""

    def preprocess_cell(self, cell, resources, index):
        if not (utils.is_grade(cell) and not utils.is_solution(cell) and cell.cell_type == "code"):
            return cell, resources
        points = float(cell.metadata.nbgrader["points"])
        reports = verdict(cell.source, cell.outputs)
        earned = score(reports, points)
        text = "\n".join(r.text() for r in reports)
        cell.outputs = [new_output("stream", name="stdout", text=text + "\n"),
                        new_output("execute_result", data={"text/plain": repr(earned)}, execution_count=None)]
        cell.metadata["rnn_course"] = {
            "checks": [{"task": r.task, "passed": r.passed, "total": r.total,
                        "failures": [f"[{c}] {m}" for c, m in r.failures]} for r in reports]}
        return cell, resources

