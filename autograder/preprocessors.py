"""nbgrader preprocessors of the course: grading decided outside the student's kernel.

Sanitize stage: ``ReviewSubmission`` flags tampered cells and suspicious code before
nbgrader's OverwriteCells restores the instructor's cells.
Autograde stage: ``GradingExecute`` runs the notebook in the sandboxed kernel (see
:mod:`autograder.sandbox`) that knows it is being graded, so ``check()`` only emits
results, under a wall-clock limit and an output byte limit; ``VerifyResults`` then
replaces the outputs of every autograded test cell by the verdict of
:mod:`autograder.verify` and a partial score, which nbgrader's stock
``SaveAutoGrades`` records.
"""
import ast
import json
import os
import threading

from nbclient.exceptions import DeadKernelError
from nbclient.util import run_sync
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer

from . import flags, wire
from .probe import GRADING_ENV
from .sandbox import SandboxedKernelManager
from .tasks import TASKS
from .verify import grade_check


class ReviewSubmission(NbGraderPreprocessor):
    """Flag deleted or edited instructor cells and suspicious student code (sanitize stage)."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        found = {}
        with Gradebook(info["db_url"]) as gb:
            try:
                notebook = gb.find_notebook(info["notebook"], info["assignment"])
            except MissingEntry:
                return nb, resources
            for cell in notebook.source_cells:
                meta = {"locked": cell.locked}
                grade = next((g for g in notebook.grade_cells if g.name == cell.name), None)
                if grade is not None:
                    meta.update(points=grade.max_score, grade=True)
                found[cell.name] = (cell.source, meta)
        flags.add(nb, flags.tampering(nb, found) + flags.suspicious_source(nb))
        return nb, resources


#: Tag of locked instructor cells that only demonstrate (plots, training runs).
SKIP_TAG = "skip-in-grading"


class GradingExecute(Execute):
    """nbgrader's Execute in the sandboxed kernel, with limits that hold whatever the student does.

    * the kernel's environment says it is being graded;
    * ``notebook_timeout``: wall-clock limit of the whole notebook; past it the
      kernel and all its processes are killed, the cells not run earn nothing;
    * ``max_output_bytes``: outputs beyond this many bytes per notebook are dropped as
      they arrive (the grader's memory is not the student's to fill);
    * a kernel that dies is recorded, not fatal: the cells run before keep their results.
    """

    notebook_timeout = Integer(300, help="Seconds a whole notebook may run").tag(config=True)
    max_output_bytes = Integer(1_000_000, help="Output bytes kept per notebook").tag(config=True)
    max_result_bytes = Integer(2_000_000, help="Size of one results message").tag(config=True)

    def __init__(self, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(**kwargs)

    async def async_start_new_kernel(self, **kwargs):
        kwargs["env"] = {**os.environ, **kwargs.get("env", {}), GRADING_ENV: "1"}
        return await super().async_start_new_kernel(**kwargs)

    start_new_kernel = run_sync(async_start_new_kernel)

    def preprocess(self, nb, resources=None, km=None):
        self._output_bytes, self._truncated, self._out_of_time = 0, set(), False
        watchdog = threading.Timer(self.notebook_timeout, self._time_is_up)
        watchdog.start()
        try:
            nb, resources = super().preprocess(nb, resources, km)
        except DeadKernelError:
            cell = self._current_cell_name(nb)
            flags.add(nb, [f"time limit of {self.notebook_timeout} s reached in {cell}" if self._out_of_time
                           else f"kernel died in {cell}"])
        finally:
            watchdog.cancel()
            if isinstance(self.km, SandboxedKernelManager):
                self.km.release()
        flags.add(nb, [f"output over {self.max_output_bytes} bytes dropped in {c}" for c in sorted(self._truncated)])
        flags.add(nb, flags.execution_problems(nb))
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        """Cells tagged ``SKIP_TAG`` (plots, demos: never graded) are not run under the grader."""
        if SKIP_TAG in cell.metadata.get("tags", []):
            return cell, resources
        return super().preprocess_cell(cell, resources, index)

    def _time_is_up(self):
        self._out_of_time = True
        if isinstance(self.km, SandboxedKernelManager):
            self.km.kill_all()

    def _current_cell_name(self, nb):
        index = getattr(self, "code_cells_executed", 0)
        code = [c for c in nb.cells if c.cell_type == "code"]
        cell = code[min(index, len(code) - 1)] if code else None
        return cell.metadata.get("nbgrader", {}).get("grade_id", f"code cell {index}") if cell else "the notebook"

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {}), default=str))
        is_result = wire.MIME in msg.get("content", {}).get("data", {})
        if is_result and size <= self.max_result_bytes:
            return super().output(outs, msg, display_id, cell_index)
        self._output_bytes += size
        if self._output_bytes > self.max_output_bytes:
            gid = self.nb.cells[cell_index].metadata.get("nbgrader", {}).get("grade_id", f"cell {cell_index}")
            if gid not in self._truncated:
                self._truncated.add(gid)
                outs.append(new_output("stream", name="stdout", text="[output dropped: over the grader's limit]\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)


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

    def preprocess(self, nb, resources):
        nb, resources = super().preprocess(nb, resources)
        flags.add(nb, resources.pop("rnn_course_flags", []))
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        if not (utils.is_grade(cell) and not utils.is_solution(cell) and cell.cell_type == "code"):
            return cell, resources
        points = float(cell.metadata.nbgrader["points"])
        reports = verdict(cell.source, cell.outputs)
        earned = score(reports, points)
        resources.setdefault("rnn_course_flags", []).extend(
            flags.missing_results(reports, cell.metadata.nbgrader["grade_id"]))
        text = "\n".join(r.text() for r in reports)
        cell.outputs = [new_output("stream", name="stdout", text=text + "\n"),
                        new_output("execute_result", data={"text/plain": repr(earned)}, execution_count=None)]
        cell.metadata["rnn_course"] = {
            "checks": [{"task": r.task, "passed": r.passed, "total": r.total,
                        "failures": [f"[{c}] {m}" for c, m in r.failures]} for r in reports]}
        return cell, resources

