"""A kernel that dies costs only the cell it died in (autograder.preprocessors.GradingExecute).

One batch of exercise 01, graded through autograder.batch with real sandboxed kernels: the
grader sees each death from the kernel's process, starts a new kernel, replays the cells
before the one that killed it and grades the rest, hidden cases included. Bounded: a few
restarts a notebook, a death while replaying ends the notebook, and the notebook's time limit
holds across restarts. A death the kernel caused itself is final; one from outside (the host's
OOM killer, simulated by killing the kernel's processes) is graded again by the next run.
"""
import copy

import nbformat
import pytest

from autograder import flags, grader, markers, verdicts
from autograder.preprocessors import GradingExecute
from points import cell_points, total_points
from submissions import grade_students, solution_cells, student_notebook

pytestmark = pytest.mark.xdist_group("test_dead_kernel")   # its module-scoped fixture grades once: every test of the module on one worker
A = "01_rnn"
TOTAL = total_points(A)
POINTS = cell_points(A)
SOL = solution_cells(A)
OUTSIDE = "# the grader's test kills this kernel from outside\n"


def with_cells(nb, after, *sources):
    """``nb`` with new code cells after the cell of grade id ``after``."""
    nb = copy.deepcopy(nb)
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after)
    nb.cells[index + 1:index + 1] = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


SOLUTION = student_notebook(A)
NOTEBOOKS = {
    # a cell of its own between rnn_step_forward and its test: everything after is graded
    "exits": with_cells(SOLUTION, "rnn_step_forward", "import os\nos._exit(1)\n"),
    "segfault": with_cells(SOLUTION, "rnn_step_forward", "import ctypes\nctypes.string_at(0)\n"),
    # every check of rnn_step_backward kills the kernel: its test, rnn_backward's (which calls
    # it), then its hidden cases: the third death finds no restart left
    "test_cell_dies": student_notebook(A, {"rnn_step_backward": SOL["rnn_step_backward"].replace(
        "def rnn_step_backward(dnext_h, cache):\n",
        "def rnn_step_backward(dnext_h, cache):\n    import os\n    os._exit(3)\n")}),
    # a cell that runs once, and dies when replayed (the test cell before it is not replayed;
    # the string is split so that this cell's own source, in In too, does not match)
    "replay_dies": with_cells(with_cells(
        SOLUTION, "test_rnn_step_forward",
        "import os\nif not any('check(\"rnn_step_' + 'forward\")' in s for s in In):\n    os._exit(1)\n"),
        "test_rnn_step_backward", "import os\nos._exit(1)\n"),
    "killed_outside": with_cells(SOLUTION, "rnn_step_forward", OUTSIDE + "import time\ntime.sleep(60)\n"),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GradingExecute, "preprocess_cell", _killed_from_outside(GradingExecute.preprocess_cell))
        return grade_students(tmp_path_factory.mktemp("dead_kernel"), A, NOTEBOOKS, cell_timeout=30)


def _killed_from_outside(preprocess_cell):
    """GradingExecute.preprocess_cell that kills every process of the kernel (as the host's
    OOM killer would: SIGKILL, the kernel under its memory limit) a second into a cell
    marked :data:`OUTSIDE`."""
    import threading

    def wrapped(self, cell, resources, index):
        if cell.cell_type == "code" and cell.source.startswith(OUTSIDE):
            threading.Timer(1.0, self.km.kill_all).start()
        return preprocess_cell(self, cell, resources, index)
    return wrapped


def died(outcome):
    return [n for n in outcome.notes if n.startswith("kernel died")]


@pytest.mark.parametrize("student", ["exits", "segfault"])
def test_a_cell_that_kills_its_kernel_costs_no_later_points(graded, student):
    course, outcomes, rows = graded
    outcome, row = outcomes[student], rows[student]
    assert outcome.ok, outcome
    # visible and hidden cases of every test cell after the death: full marks
    assert row["score"] == TOTAL and row["cells"] == POINTS, (row, verdicts.failures(course, student, A))
    [note] = died(outcome)
    assert flags.OWN_DEATH in note and note.endswith("restarted, the cells after it graded"), note
    assert ("exited with status 1" if student == "exits" else "ended by SIGSEGV") in note, note
    assert not outcome.retry   # the submission's own doing: a rerun would grade it the same
    assert markers.finished(grader.Grading(str(course.resolve())), student, A) is not None
    assert (course / "feedback" / student / A / f"{A}.html").exists()


def test_a_test_cell_that_kills_earns_nothing_and_restarts_are_bounded(graded):
    course, outcomes, rows = graded
    outcome, row = outcomes["test_cell_dies"], rows["test_cell_dies"]
    assert outcome.ok and not outcome.retry, outcome
    notes = died(outcome)
    assert [n.split(" (it ")[0] for n in notes] == [
        "kernel died in test_rnn_step_backward", "kernel died in test_rnn_backward",
        f"kernel died in cell {len(SOLUTION.cells) + 2} (no grade id)"], notes
    # (the third: the grader's cell of rnn_step_backward's hidden cases, after the notebook's last)
    assert all(flags.OWN_DEATH in n and "exited with status 3" in n for n in notes), notes
    assert notes[-1].endswith("no restart left (2 a notebook): the cells after it earn nothing"), notes
    assert row["cells"]["test_rnn_step_backward"] == row["cells"]["test_rnn_backward"] == 0
    # after two deaths, a new kernel graded the cells that do not call the dying function
    assert row["cells"]["test_rnn_step_forward"] == POINTS["test_rnn_step_forward"]
    assert row["cells"]["test_numerical_gradient"] > 0
    # the hidden cases of rnn_forward come after the third death: they never ran
    assert 0 < row["cells"]["test_rnn_forward"] < POINTS["test_rnn_forward"], row


def test_a_kernel_that_dies_while_replaying_ends_the_notebook(graded):
    course, outcomes, rows = graded
    outcome, row = outcomes["replay_dies"], rows["replay_dies"]
    assert outcome.ok and not outcome.retry, outcome
    first, again = died(outcome)
    assert first.startswith("kernel died in cell 10 (no grade id)") and first.endswith("restarted, the cells after it graded")
    assert again.startswith("kernel died again in cell 6 (no grade id) while the cells before cell 10 (no grade id) "
                            "were replayed: the cells after it earn nothing") and flags.OWN_DEATH in again, again
    # nothing ran after the death: the hidden cases (after the last cell) never ran
    assert row["cells"]["test_rnn_forward"] == row["cells"]["test_rnn_backward"] == 0
    assert 0 < row["cells"]["test_rnn_step_forward"] < POINTS["test_rnn_step_forward"]


def test_a_kernel_killed_from_outside_is_graded_and_graded_again(graded):
    course, outcomes, rows = graded
    outcome, row = outcomes["killed_outside"], rows["killed_outside"]
    assert outcome.ok, outcome
    [note] = died(outcome)
    assert "killed by SIGKILL from outside the kernel" in note and flags.OWN_DEATH not in note, note
    assert row["score"] == TOTAL, (row, verdicts.failures(course, "killed_outside", A))
    assert outcome.retry   # perhaps the machine's: the next run grades it again
    assert markers.finished(grader.Grading(str(course.resolve())), "killed_outside", A) is None


def test_the_notebook_time_limit_holds_across_restarts(tmp_path):
    dying = "import os, time\ntime.sleep(2)\nos._exit(1)\n"
    nb = with_cells(with_cells(SOLUTION, "test_rnn_forward", "import time\ntime.sleep(600)\n"),
                    "rnn_step_forward", dying, dying)
    course, outcomes, rows = grade_students(tmp_path, A, {"slow": nb}, cell_timeout=300, notebook_timeout=12)
    outcome = outcomes["slow"]
    notes = died(outcome)
    assert len(notes) == 2 and all(n.endswith("restarted, the cells after it graded") for n in notes), outcome
    assert any(n.startswith("time limit of 12 s reached in cell 14 (no grade id)") for n in outcome.notes), outcome
    assert outcome.retry
    row = rows["slow"]
    assert row["cells"]["test_rnn_backward"] == row["cells"]["test_numerical_gradient"] == 0


@pytest.mark.parametrize("status, memory_failures, words", [
    (1, 0, "it exited with status 1: " + flags.OWN_DEATH),
    (-11, 0, "ended by SIGSEGV: " + flags.OWN_DEATH),
    (128 + 6, 0, "ended by SIGABRT: " + flags.OWN_DEATH),           # the zygote's 128 + signal
    (128 + 9, 3, "killed at its memory limit: " + flags.OWN_DEATH),  # its cgroup hit its limit
    (-9, 0, "killed by SIGKILL from outside the kernel: graded again by the next run"),
    (128 + 15, 0, "killed by SIGTERM from outside the kernel: graded again by the next run"),
    (245, 0, "it exited with status 245: " + flags.OWN_DEATH),       # not 128 + a signal
])
def test_how_a_kernel_ended_is_read_from_its_process_and_cgroup(tmp_path, status, memory_failures, words):
    from types import SimpleNamespace
    from autograder.preprocessors import death_of
    (tmp_path / "memory.failcnt").write_text(f"{memory_failures}\n")
    km = SimpleNamespace(provisioner=SimpleNamespace(process=SimpleNamespace(poll=lambda: status)),
                         cgroup=SimpleNamespace(dirs=[tmp_path]))
    assert death_of(km) == words
    km.provisioner.process.poll = lambda: None
    assert death_of(km) is None   # still running
