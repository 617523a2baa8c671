"""nbgrader preprocessors of the course: grading decided outside the student's kernel.

Sanitize stage: ``ReviewSubmission`` flags tampered cells and suspicious code before
nbgrader's OverwriteCells restores the instructor's cells.
Autograde stage: ``SealTests`` hands the kernel hidden cases (and fresh twins of the
public ones) as inputs only; ``GradingExecute`` runs the notebook in the sandboxed kernel (see
:mod:`autograder.sandbox`) that knows it is being graded, so ``check()`` only emits
results, under a wall-clock limit and an output byte limit; ``VerifyResults`` then
replaces the outputs of every autograded test cell by the verdict of
:mod:`autograder.verify` and a partial score, which ``SaveAutoGradesAtOnce``
(nbgrader's SaveAutoGrades, in one transaction) records.
"""
import ast
import copy
import hashlib
import json
import os
import re
import signal
import threading
import types
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat

from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, SaveAutoGrades
from rnnkit import wire
from rnnkit.compare import STANDIN, case_key
from rnnkit.probe import GRADING_ENV
from rnnkit.tasks import TASKS
from traitlets import Integer, Unicode

from . import flags, secret
from .outcome import NOTE
from .sandbox import SandboxedKernelManager
from .verify import HIDDEN, fresh_purpose, grade_check, require_twins, sealed_source


class ReviewSubmission(NbGraderPreprocessor):
    """Flag deleted or edited instructor cells and suspicious student code (sanitize stage).

    Cells the release tags ``SKIP_TAG`` are optional: never run under the grader, so
    deleting or editing them is not flagged (:func:`autograder.flags.tampering`).
    """

    release_root = Unicode("", help="the course's release directory").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        optional = skipped_cells(Path(self.release_root) / info["assignment"] / f"{info['notebook']}.ipynb")
        found = {}
        with Gradebook(info["db_url"]) as gb:
            try:
                notebook = gb.find_notebook(info["notebook"], info["assignment"])
            except MissingEntry:
                return nb, resources
            solutions = {c.name for c in notebook.solution_cells}
            for cell in notebook.source_cells:
                meta = {"locked": cell.locked, "solution": cell.name in solutions}
                grade = next((g for g in notebook.grade_cells if g.name == cell.name), None)
                if grade is not None:
                    meta.update(points=grade.max_score, grade=True)
                found[cell.name] = (cell.source, meta)
        code = flags.student_code(nb, flags.instructor_sources(found))   # each cell parsed once
        flags.add(nb, flags.tampering(nb, found, optional) + flags.suspicious_source(nb, code=code)
                  + flags.numerical_backward(nb, code=code))
        return nb, resources


#: Seconds a whole notebook (one student's assignment) may run under the grader.
NOTEBOOK_TIMEOUT = 300

#: Tag of instructor cells that only demonstrate (plots, training runs) or are optional
#: (exercise 5's LSTM paste): never run under the grader, never flagged when deleted.
SKIP_TAG = "skip-in-grading"

#: What a dead kernel's flag says when its process's end could not be read.
UNKNOWN_DEATH = "how it ended is unknown: graded again by the next run"

#: Signals a process gets from its own faults (a bad access, an abort, a refused syscall,
#: a file over its size limit), never from the machine.
OWN_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT, signal.SIGSYS,
               signal.SIGXFSZ, signal.SIGXCPU, signal.SIGPIPE, signal.SIGTRAP}


def death_of(km):
    """How the kernel of ``km`` ended, in the grader's words (None while it runs), read from
    its process's exit status and its memory cgroup, never from the kernel's messages. The
    words contain :data:`flags.OWN_DEATH` when the kernel itself is the cause (GradingExecute)."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    try:
        status = process.poll() if process is not None else None
    except Exception:
        return UNKNOWN_DEATH
    if status is None:
        return None
    # a signal, or 128 + a signal as the zygote and bubblewrap say it; any other status is an exit
    signum = -status if status < 0 else status - 128 if 128 < status < 128 + signal.NSIG else 0
    if not signum:
        return f"it exited with status {status}: {flags.OWN_DEATH}"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    if signum in OWN_SIGNALS:
        return f"ended by {name}: {flags.OWN_DEATH}"
    if signum == signal.SIGKILL and _memory_limit_reached(km):
        return f"killed at its memory limit: {flags.OWN_DEATH}"
    return f"killed by {name} from outside the kernel: graded again by the next run"


def _memory_limit_reached(km):
    for folder in getattr(getattr(km, "cgroup", None), "dirs", ()):
        try:
            if (folder / "memory.failcnt").exists() and int((folder / "memory.failcnt").read_text()) > 0:
                return True
        except (OSError, ValueError):
            pass
    return False


def skipped_cells(release_path):
    """Grade ids of the cells the released notebook at ``release_path`` tags ``SKIP_TAG``."""
    try:
        cells = nbformat.read(release_path, as_version=4).cells
    except (OSError, ValueError):
        return set()
    return {_grade_id(c) for c in cells if _grade_id(c) and SKIP_TAG in c.metadata.get("tags", [])}


#: What a part of a kernel's message that is not a JSON object is read as: a header, parent
#: header or content that names nothing the grader waits for.
MALFORMED = {"msg_type": "malformed", "msg_id": "", "session": "", "username": "", "rnn_course_malformed": True}


class GradingExecute(Execute):
    """nbgrader's Execute in the sandboxed kernel, with limits that hold whatever the student does.

    * the kernel's environment says it is being graded;
    * ``notebook_timeout``: wall-clock limit of the whole notebook, restarts included; past
      it the kernel and all its processes are killed, the cells not run earn nothing;
    * ``max_output_bytes``: outputs beyond this many bytes per notebook are dropped as
      they arrive (the grader's memory is not the student's to fill); every kind of message
      counts (see :meth:`process_message`);
    * a kernel that dies costs only the cell it died in: the grader sees the death from the
      kernel's process (never from what the kernel says), keeps that cell's outputs with a
      note of its own (a test cell: no points), starts a new kernel in a new jail with
      the same limits, replays the cells before (test cells, sealed cells, skipped cells
      and cells that killed a kernel excepted) with their outputs discarded, and goes on
      with the next cell. At most ``max_restarts`` restarts a notebook; a kernel that dies
      while cells are replayed, or once no restart is left, ends the notebook (what ran
      before keeps its results).

    Retried or final: a death is the submission's own (:data:`flags.OWN_DEATH` in its flag:
    its final grade is fair, no rerun needed) when its process exited by itself, was ended
    by a fault of its own (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSYS, SIGXFSZ, ...)
    or was killed after its memory cgroup reached its limit. A kernel killed by SIGKILL or
    SIGTERM otherwise (the host's OOM killer, an operator, a zygote that died), or whose
    status is unknown, may be the machine's doing: the later cells are still graded, and
    the submission is graded again by the next run (batch ``_RETRY_FLAGS``). A kernel that
    kills itself with SIGKILL is graded the same way on every run, so a rerun only costs time.
    """

    notebook_timeout = Integer(NOTEBOOK_TIMEOUT, help="Seconds a whole notebook may run").tag(config=True)
    max_output_bytes = Integer(1_000_000, help="Output bytes kept per notebook").tag(config=True)
    max_result_bytes = Integer(2_000_000, help="Largest message from the kernel that is decoded at all "
                                               "(a results message is far smaller)").tag(config=True)
    max_restarts = Integer(2, help="New kernels a notebook may get after its kernel died").tag(config=True)

    def __init__(self, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(**kwargs)

    async def async_start_new_kernel(self, **kwargs):
        kwargs["env"] = {**os.environ, **kwargs.get("env", {}), GRADING_ENV: "1"}
        return await super().async_start_new_kernel(**kwargs)

    start_new_kernel = run_sync(async_start_new_kernel)

    async def async_start_new_kernel_client(self):
        """The kernel's client, whose session refuses any message part over ``max_result_bytes`` undecoded."""
        kc = await super().async_start_new_kernel_client()
        kc.session.unpack = self._bounded(kc.session.unpack)
        return kc

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    async def _async_cleanup_kernel(self):
        """nbclient's, after reading how the kernel ended (its cgroup goes with it)."""
        if self.km is not None and getattr(self, "_death", None) is None:
            self._death = death_of(self.km)
        await super()._async_cleanup_kernel()

    _cleanup_kernel = run_sync(_async_cleanup_kernel)

    def _bounded(self, unpack):
        """``unpack`` that refuses a part over ``max_result_bytes`` undecoded, and gives a part
        that is not a JSON object (every part of a message is one) as :data:`MALFORMED`."""
        def bounded(data):
            if len(data) > self.max_result_bytes:
                self._refused.add(self._current_cell_name())
                note = f"[a message of {len(data)} bytes from the kernel was refused: over the grader's limit]\n"
                return {"name": "stdout", "text": note, "data": {"text/plain": note}, "metadata": {},
                        "transient": {}, "execution_count": None, "ename": "Refused", "evalue": note,
                        "traceback": [], "execution_state": "busy"}
            try:
                part = unpack(data)
            except Exception:
                part = None
            return part if isinstance(part, dict) else dict(MALFORMED)
        return bounded

    def preprocess(self, nb, resources=None, km=None):
        self._output_bytes, self._truncated, self._out_of_time, self._running = 0, set(), False, None
        self._refused, self._malformed, self._replaying, self._death, self._index = set(), set(), False, None, None
        watchdog = threading.Timer(self.notebook_timeout, self._time_is_up)
        watchdog.start()
        try:
            nb, resources = self._execute(nb, resources, km)
        except CellTimeoutError:  # the kernel ignored the interrupt: nothing more can run
            flags.add(nb, [f"timed out in {self._current_cell_name()} (the kernel ignored the interrupt)"])
        finally:
            watchdog.cancel()
            if isinstance(self.km, SandboxedKernelManager):
                self.km.release()
        flags.add(nb, [f"output over {self.max_output_bytes} bytes dropped in {c}" for c in sorted(self._truncated)])
        flags.add(nb, [f"a message over {self.max_result_bytes} bytes refused in {c}" for c in sorted(self._refused)])
        flags.add(nb, [f"a malformed message from the kernel dropped in {c}"
                       for c in sorted(self._malformed)])
        flags.add(nb, flags.execution_problems(nb))
        return nb, resources

    def _execute(self, nb, resources, km):
        """nbconvert's ExecutePreprocessor.preprocess, with a new kernel after a death (see class doc)."""
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        start, killers = 0, []
        while True:
            self._death, self._running, self._index, self._replaying = None, None, None, False
            try:
                with self.setup_kernel():
                    if self._out_of_time:   # the limit passed while this kernel started
                        self._time_is_up()
                    info_msg = self.wait_for_reply(self.kc.kernel_info())
                    self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
                    self._replay(start, killers)
                    for index in range(start, len(self.nb.cells)):
                        self.preprocess_cell(self.nb.cells[index], resources, index)
                break
            except DeadKernelError:
                cell = self._current_cell_name()
                if self._out_of_time:
                    flags.add(nb, [f"time limit of {self.notebook_timeout} s reached in {cell}"])
                    break
                if self._replaying:
                    flags.add(nb, [f"kernel died again in {cell} while the cells before "
                                   f"{self._name(killers[-1])} were replayed: the cells after it earn nothing"
                                   f" ({self._death or UNKNOWN_DEATH})"])
                    break
                if self._index is None:   # at start-up: nothing to skip
                    flags.add(nb, [f"kernel died in {cell} ({self._death or UNKNOWN_DEATH})"])
                    break
                killers.append(self._index)
                left = len(killers) <= self.max_restarts and self.owns_km
                self._mark_dead(self._index, left)
                flags.add(nb, [f"kernel died in {cell} ({self._death or UNKNOWN_DEATH}): "
                               + ("restarted, the cells after it graded" if left else
                                  f"no restart left ({self.max_restarts} a notebook): the cells after it earn nothing")])
                if not left:
                    break
                start = self._index + 1
        self.set_widgets_metadata()
        return self.nb, self.resources

    def _replay(self, stop, killers):
        """Run again, in a new kernel, the cells before ``stop`` that may define what later
        cells use, their outputs discarded; the notebook's cells are left as they were."""
        sealed = SEALED_MARK + self.resources.get("rnn_course_sealed", {}).get("nonce", "")
        self._replaying = True   # until every cell was replayed: a death meanwhile ends the notebook
        for index in range(stop):
            cell = self.nb.cells[index]
            if cell.cell_type != "code" or index in killers or _is_test_cell(cell) \
                    or SKIP_TAG in cell.metadata.get("tags", []) or cell.source.startswith(sealed):
                continue
            self._running, self._index = cell, index
            try:
                self.execute_cell(nbformat.v4.new_code_cell(cell.source, metadata=copy.deepcopy(cell.metadata)),
                                  index, store_history=True)
            finally:
                self.nb.cells[index] = cell
        self._replaying = False

    def _mark_dead(self, index, restarted):
        """The outputs of the cell a kernel died in end with the grader's note; a test cell
        that killed its kernel earns nothing (VerifyResults reads ``rnn_course_died``)."""
        cell = self.nb.cells[index]
        after = "the grader restarted it for the cells after this one" if restarted else "no restart was left"
        cell.setdefault("outputs", []).append(new_output(
            "error", ename="KernelDied", evalue="the kernel died while this cell ran",
            traceback=[f"the kernel died while this cell ran ({self._death or UNKNOWN_DEATH}); {after}"]))
        if _is_test_cell(cell):
            self.resources.setdefault("rnn_course_died", []).append(cell.metadata.nbgrader["grade_id"])

    def _name(self, index):
        """A cell's grade id, else its position (1 for the first cell)."""
        return self.nb.cells[index].metadata.get("nbgrader", {}).get("grade_id", f"cell {index + 1} (no grade id)")

    def preprocess_cell(self, cell, resources, index):
        """Cells tagged ``SKIP_TAG`` (plots, demos: never graded) are not run under the grader."""
        if SKIP_TAG in cell.metadata.get("tags", []):
            return cell, resources
        self._running, self._index = cell, index
        return super().preprocess_cell(cell, resources, index)

    def _time_is_up(self):
        self._out_of_time = True
        km = self.km
        if isinstance(km, SandboxedKernelManager):
            km.kill_all()

    def _current_cell_name(self):
        if self._running is None:
            return "startup"
        return self._name(self._index)

    def process_message(self, msg, cell, cell_index):
        """Every message of the kernel about a cell, of any kind, counts against
        ``max_output_bytes`` (a results bundle up to ``max_result_bytes`` excepted); past it,
        what would be kept is dropped. Widget (comm) messages and display updates are never
        kept (nothing graded reads them: kept, they would copy one output into many), nor is a
        message nbclient cannot read."""
        kind, content = str(msg.get("msg_type")), msg.get("content")
        if self._replaying and kind != "status":   # a replayed cell's outputs are not kept
            return None
        try:
            readable = isinstance(content, dict) and "rnn_course_malformed" not in content
            if kind in ("status", "execute_input") and readable:
                return super().process_message(msg, cell, cell_index)
            size = len(json.dumps(content, default=str))
            data = content.get("data") if isinstance(content, dict) else None
            if kind == "display_data" and isinstance(data, dict) and wire.MIME in data \
                    and size <= self.max_result_bytes:
                return super().process_message(msg, cell, cell_index)
            self._output_bytes += size
            if self._output_bytes > self.max_output_bytes:
                gid = self.nb.cells[cell_index].metadata.get("nbgrader", {}).get("grade_id", f"cell {cell_index}")
                if gid not in self._truncated:
                    self._truncated.add(gid)
                    cell.outputs.append(new_output("stream", name="stdout",
                                                   text="[output dropped: over the grader's limit]\n"))
                return None
            if not readable:
                raise ValueError("not a message")
            if kind.startswith("comm") or kind == "update_display_data":
                return None
            if isinstance(content.get("transient"), dict):   # no display id: nothing updates the output later
                msg = {**msg, "content": {**content, "transient": {}}}
            return super().process_message(msg, cell, cell_index)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            self._malformed.add(self._current_cell_name())
            return None

    async def _check_raise_for_error(self, cell, cell_index, exec_reply):
        """nbclient's, for a reply the kernel may have malformed (then no error is raised)."""
        content = (exec_reply or {}).get("content")
        if exec_reply is not None and not (isinstance(content, dict) and isinstance(content.get("status"), str)):
            self._malformed.add(self._current_cell_name())
            return None
        return await super()._check_raise_for_error(cell, cell_index, exec_reply)


class BadTestCell(ValueError):
    """An instructor's test cell that the grader cannot use."""


@dataclass(frozen=True)
class CheckCall:
    """One ``check()`` call of a test cell: a task, its cases, and whether they are hidden
    (``hidden=[specs]``, inputs from the course's secret) or visible (public or ``cases=``)."""
    task: str
    cases: list
    hidden: bool


def check_calls(source):
    """The ``check(task[, cases=...| hidden=...])`` calls of a test cell, literals only."""
    calls = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "check":
            keywords = {kw.arg: kw.value for kw in node.keywords}
            if set(keywords) - {"cases", "hidden"} or len(node.args) + len(keywords) > 2 or not node.args:
                raise BadTestCell("a test cell calls check(task), check(task, cases=[...]) "
                                  "or check(task, hidden=[specs])")
            task = ast.literal_eval(node.args[0])
            if task not in TASKS:
                raise BadTestCell(f"unknown task {task!r}")
            hidden = "hidden" in keywords
            given = node.args[1] if len(node.args) > 1 else keywords.get("cases", keywords.get("hidden"))
            cases = list(ast.literal_eval(given)) if given is not None else list(TASKS[task].public)
            if hidden and any("seed" in case for case in cases):
                raise BadTestCell(f"{task}: a hidden case has no seed (the course's secret makes it)")
            calls.append(CheckCall(task, cases, hidden))
    if not calls:
        raise BadTestCell("an autograded test cell must call check(): "
                            "no grade may be decided inside the student's kernel")
    return calls


def expected_checks(source):
    """The ``check()`` calls of a test cell: [(task, cases)] (hidden ones as specs)."""
    return [(call.task, call.cases) for call in check_calls(source)]


def _is_test_cell(cell):
    return utils.is_grade(cell) and not utils.is_solution(cell) and cell.cell_type == "code"


def _sealing(resources, secret_file):
    """(secret, student) of the notebook being graded."""
    path = secret_file or secret.instructor_secret_path()
    return secret.load(path), str(resources.get("nbgrader", {}).get("student", ""))


class SealTests(NbGraderPreprocessor):
    """Autograde stage, before GradingExecute: no kernel reads a hidden case's spec.

    Each test cell runs its visible checks where it stands, then, in the same cell, their
    *fresh twins* (same spec, inputs from the course's secret, the student and the
    submission: :mod:`autograder.secret`), without which a public case earns nothing
    (VerifyResults). The hidden checks run in cells of the grader's after the notebook's
    last cell, so every case before them ran with no hidden input in the kernel and its
    messages may be quoted. A sealed call holds only inputs under opaque keys
    (``check(task, sealed='{"h0.1": {...}}')``); VerifyResults moves the outputs of a
    sealed cell back into its test cell, removes it, and restores the test cell's source.
    """

    secret_file = Unicode("", help="the course's grading secret (default: .rnn-course/secret "
                                   "in the course directory)").tag(config=True)

    def preprocess(self, nb, resources):
        secret_key, student = _sealing(resources, self.secret_file)
        purpose = fresh_purpose(student, submission_digest(nb))
        nonce = uuid.uuid4().hex
        sources, cells, hidden_cells = {}, [], []
        for cell in nb.cells:
            cells.append(cell)
            if not _is_test_cell(cell):
                continue
            try:
                calls = check_calls(cell.source)
            except (BadTestCell, SyntaxError, ValueError):
                continue   # VerifyResults reports it
            gid = cell.metadata.nbgrader["grade_id"]
            sources[gid] = cell.source
            fresh, hidden = [], []
            for n, call in enumerate(calls):
                if call.hidden:
                    cases = [secret.seeded(secret_key, HIDDEN, call.task, spec) for spec in call.cases]
                    hidden.append(sealed_source(call.task, cases, [f"h{n}.{i}" for i in range(len(cases))],
                                                probes=True))
                else:
                    cases = [secret.seeded(secret_key, purpose, call.task, case) for case in call.cases]
                    fresh.append(sealed_source(call.task, cases, [f"f{n}.{i}" for i in range(len(cases))]))
            cell.source = "\n".join([without_hidden_tests(cell.source).rstrip("\n"), *fresh]) + "\n"
            hidden_cells += [_sealed_cell(nonce, "hidden", gid, hidden)] if hidden else []
        if not any("id" in c for c in nb.cells):   # nbformat 4.4: cells without ids
            for cell in cells + hidden_cells:
                cell.pop("id", None)
        nb.cells = cells + hidden_cells
        resources["rnn_course_sealed"] = {"nonce": nonce, "sources": sources, "fresh": purpose}
        return nb, resources


def submission_digest(nb):
    """Digest of what a notebook runs (its cells' sources, as graded): fresh inputs follow
    it, so a resubmission that quotes the last one's fresh inputs meets new ones."""
    return hashlib.sha256(json.dumps([[c.cell_type, c.source] for c in nb.cells]).encode()).hexdigest()[:16]


def without_hidden_tests(source):
    return flags.without_hidden_tests(source) + "\n"


SEALED_MARK = "# grader's sealed cases "


def _sealed_cell(nonce, kind, gid, calls):
    return nbformat.v4.new_code_cell("\n".join([f"{SEALED_MARK}{nonce} {kind} {gid}", *calls]))


def unseal(nb, resources):
    """Undo :class:`SealTests` after execution: the sealed cells' outputs appended to their
    test cell's, the sealed cells removed, the test cells' sources restored. Returns the
    purpose of the fresh twins' seeds (None if the notebook was not sealed)."""
    sealed = resources.pop("rnn_course_sealed", None)
    if not sealed:
        return None
    mark = f"{SEALED_MARK}{sealed['nonce']} "
    tests = {c.metadata.nbgrader["grade_id"]: c for c in nb.cells if _is_test_cell(c)}
    kept = []
    for cell in nb.cells:
        head = cell.source.split("\n", 1)[0] if cell.cell_type == "code" else ""
        if not head.startswith(mark):
            kept.append(cell)
            continue
        gid = head[len(mark):].split(" ", 1)[-1]
        if gid in tests:
            tests[gid].outputs = list(tests[gid].get("outputs", [])) + list(cell.get("outputs", []))
    nb.cells = kept
    for gid, source in sealed["sources"].items():
        if gid in tests:
            tests[gid].source = source
    return sealed["fresh"]


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


def verdict(source, outputs, sealing=None):
    """All check() reports of one test cell, verified here from its emitted results.

    Visible cases are named by their shapes, as the student's check() names them, and
    quote the kernel's messages (bounded); hidden ones only by their number, in the
    grader's words. ``sealing``: ``(secret, purpose of the fresh seeds)`` of a notebook graded with
    :class:`SealTests`: hidden cases are the sealed ones, and a visible case's unit counts
    only if its fresh twin's is right too. Without it (a cell checked on its own),
    hidden specs have no result and visible cases are scored alone.
    """
    results = emitted_results(outputs)
    reports = []
    for n, call in enumerate(check_calls(source)):
        got = results.get(call.task, {})
        if call.hidden:
            cases = [secret.seeded(sealing[0], HIDDEN, call.task, spec) for spec in call.cases] \
                if sealing else call.cases
            mapped = {}
            for i, case in enumerate(cases):
                prefix = f"h{n}.{i}"
                mapped.update({case_key(case) + key[len(prefix):]: result for key, result in got.items()
                               if key == prefix or key.startswith(prefix + "|")})
            reports.append(grade_check(call.task, cases, mapped, hidden=True))
            continue
        hidden = call.cases != list(TASKS[call.task].public)
        report = grade_check(call.task, call.cases, got, hidden=hidden)
        if sealing:
            twins = [secret.seeded(sealing[0], sealing[1], call.task, case) for case in call.cases]
            mapped = {case_key(case) + part: got.get(f"f{n}.{i}{part}")
                      for i, case in enumerate(twins) for part in ("", f"|{STANDIN}")}
            require_twins(report, call.cases, grade_check(call.task, twins, mapped, hidden=True))
        reports.append(report)
    return reports


def score(reports, points):
    passed, total = sum(r.passed for r in reports), sum(r.total for r in reports)
    return round(points * passed / total, 4) if total else 0.0


def verified_outputs(text, earned):
    """A test cell's outputs under the grader: its report and its score, as nbformat's
    ``new_output`` makes them but not checked one by one against the schema (nbconvert
    checks the whole notebook after the pipeline)."""
    return [NotebookNode(output_type="stream", name="stdout", text=text),
            NotebookNode(output_type="execute_result", metadata=NotebookNode(),
                         data=NotebookNode({"text/plain": repr(earned)}), execution_count=None)]


class VerifyResults(NbGraderPreprocessor):
    """Score every autograded test cell from the results its check() calls emitted
    (after :func:`unseal` has given it back its sealed cells' outputs)."""

    secret_file = Unicode("", help="the course's grading secret (as SealTests')").tag(config=True)

    def preprocess(self, nb, resources):
        self._died = set(resources.pop("rnn_course_died", []))   # test cells that killed their kernel
        fresh = unseal(nb, resources)
        # not sealed: the twins never ran, and public cases earn nothing
        self._sealing = (_sealing(resources, self.secret_file)[0], fresh or "fresh|unsealed")
        nb, resources = super().preprocess(nb, resources)
        flags.add(nb, resources.pop("rnn_course_flags", []))
        flags.add(nb, [f"output of {name} left out of the feedback: printed after hidden tests ran"
                       for _, name in flags.late_cells(nb)])
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        if not (utils.is_grade(cell) and not utils.is_solution(cell) and cell.cell_type == "code"):
            return cell, resources
        points = float(cell.metadata.nbgrader["points"])
        timed_out = any(o.get("ename") == "CellTimeoutError" for o in cell.outputs)
        reports = verdict(cell.source, cell.outputs, self._sealing)
        died = cell.metadata.nbgrader["grade_id"] in self._died
        earned = 0.0 if died else score(reports, points)
        resources.setdefault("rnn_course_flags", []).extend(
            flags.missing_results(reports, cell.metadata.nbgrader["grade_id"])
            + flags.modified_inputs(reports, cell.metadata.nbgrader["grade_id"])
            + flags.not_general(reports, cell.metadata.nbgrader["grade_id"]))
        text = "\n".join(["this cell timed out: the tests below could not finish"] * timed_out
                         + ["the kernel died while this cell ran: it earns nothing"] * died
                         + [r.text() for r in reports])
        cell.outputs = verified_outputs(text + "\n", earned)
        cell.metadata["rnn_course"] = {
            "checks": [{"task": r.task, "passed": r.passed, "total": r.total,
                        "failures": [f"[{c}] {m}" for c, m in r.failures],
                        "notes": [f"[{c}] {m}" for c, m in r.notes]} for r in reports]}
        return cell, resources


class HideLateOutputs(NbGraderPreprocessor):
    """Feedback stage: the output of cells run after a hidden test is replaced by a note.

    Before ClearHiddenTests (it finds hidden tests by their markers). What such a cell
    printed could be anything the kernel saw during the hidden tests (their inputs,
    ``In``, the cases), so it never reaches a student; VerifyResults flagged it.
    """

    def preprocess(self, nb, resources):
        for index, _ in flags.late_cells(nb):
            nb.cells[index].outputs = [new_output(
                "stream", name="stdout",
                text="[output not shown in the feedback: this cell ran after hidden tests]\n")]
        return nb, resources


def _grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


class SaveAutoGradesAtOnce(SaveAutoGrades):
    """nbgrader's SaveAutoGrades, the notebook's grades and comments committed in one
    transaction: all of them or none (stock commits after every cell, 15 commits a notebook)."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        self.notebook_id, self.assignment_id = info["notebook"], info["assignment"]
        self.student_id, self.db_url = info["student"], info["db_url"]
        with Gradebook(self.db_url) as gradebook:
            self.gradebook = CommitLater(gradebook)
            nb, resources = super(SaveAutoGrades, self).preprocess(nb, resources)   # the cells
            gradebook.db.commit()
        return nb, resources


class CommitLater:
    """A gradebook whose ``db.commit()`` does nothing: its user commits once, at the end.
    SaveAutoGrades touches ``db`` only to commit; anything else on it fails loudly."""

    def __init__(self, gradebook):
        self._gradebook = gradebook
        self.db = types.SimpleNamespace(commit=lambda: None)

    def __getattr__(self, name):
        return getattr(self._gradebook, name)


class RestoreMetadata(NbGraderPreprocessor):
    """Give back their nbgrader metadata to cells that lost it, before OverwriteCells.

    First, metadata a student edited is reset to the instructor's, and metadata on cells
    the release does not know (a copied or invented test cell) is removed: both would
    crash nbgrader or change what is graded; ReviewSubmission has flagged them already.
    Then a cell without metadata gets that of the released cell it matches, in order: locked
    cells by identical source, solution cells by the function or class they define. A
    test cell still missing after that is re-added here when nbgrader could not place it
    (its preceding cell is gone too: nbgrader 0.9.6 fails with a KeyError); every other
    missing test cell is re-added by OverwriteCells (``add_missing_cells``).
    """

    release_root = Unicode("", help="the course's release directory").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        path = Path(self.release_root) / info["assignment"] / f"{info['notebook']}.ipynb"
        if not path.is_file():
            return nb, resources
        original = copy.deepcopy(nb)
        try:
            released = [c for c in nbformat.read(path, as_version=4).cells if _grade_id(c)]
            flags.add(nb, self._normalise(nb, released))
            restored = self._restore(nb, released)
            added = self._readd(nb, released)
        except Exception as exc:  # a repair that fails must not cost the student the grade
            self.log.warning(f"{NOTE}could not repair the notebook's structure ({type(exc).__name__}: {exc})")
            return original, resources
        if restored:
            self.log.warning(f"{NOTE}nbgrader metadata missing from {len(restored)} cells: "
                             f"restored by matching the released notebook")
        for gid in added:
            self.log.warning(f"Missing grade cell {gid} encountered, adding to notebook")
        return nb, resources

    @staticmethod
    def _normalise(nb, released):
        """Reset edited nbgrader metadata, strip unknown; returns flags for what was unknown."""
        instructor = {_grade_id(c): c.metadata["nbgrader"] for c in released}
        found = []
        for cell in nb.cells:
            gid = _grade_id(cell)
            if gid in instructor:
                cell.metadata["nbgrader"] = copy.deepcopy(instructor[gid])
            elif "nbgrader" in cell.metadata:
                del cell.metadata["nbgrader"]
                found.append(f"added a cell with nbgrader metadata (grade id {gid!r}): ignored as a test")
        return found

    @staticmethod
    def _restore(nb, released):
        where = {_grade_id(c): i for i, c in enumerate(nb.cells) if _grade_id(c)}
        cursor, restored = 0, []
        for ref in released:
            gid = _grade_id(ref)
            if gid in where:
                cursor = max(cursor, where[gid] + 1)
                continue
            for i in range(cursor, len(nb.cells)):
                cell = nb.cells[i]
                if _grade_id(cell) or cell.cell_type != ref.cell_type or not _matches(cell, ref):
                    continue
                cell.metadata["nbgrader"] = copy.deepcopy(ref.metadata["nbgrader"])
                for key in ("deletable", "editable"):
                    if key in ref.metadata:
                        cell.metadata[key] = ref.metadata[key]
                where[gid], cursor = i, i + 1
                restored.append(gid)
                break
        return restored

    @staticmethod
    def _readd(nb, released):
        order = [_grade_id(c) for c in released]
        added = []
        for k, ref in enumerate(released):
            gid = _grade_id(ref)
            present = {_grade_id(c): i for i, c in enumerate(nb.cells) if _grade_id(c)}
            placeable = {_grade_id(c) for c in nb.cells if utils.is_grade(c) or utils.is_solution(c)}
            if gid in present or not utils.is_grade(ref) or k == 0 or order[k - 1] in placeable:
                continue
            before = [present[g] for g in order[:k] if g in present]
            cell = copy.deepcopy(ref)
            cell.pop("id", None)
            if any("id" in c for c in nb.cells):
                cell["id"] = uuid.uuid4().hex[:8]
            nb.cells.insert(max(before) + 1 if before else len(nb.cells), cell)
            added.append(gid)
        return added


def _matches(cell, ref):
    if not utils.is_solution(ref):
        return cell.source.strip() == ref.source.strip()
    names = re.findall(r"^(?:def|class)\s+(\w+)", ref.source, flags=re.M)
    return bool(names) and all(re.search(rf"^(?:def|class)\s+{n}\b", cell.source, flags=re.M) for n in names)
