"""The suite's guards bite: each defect class they exist for, planted in the grader, makes its guard fail.

The class of tests/test_grader_paths.py (a notebook over its time limit, a cell after the test
cells that prints what the kernel saw of them) is graded by the real command, once on clean code
and once per planted defect (the grader monkeypatched in this process, which grades with
``--workers 1``): a hidden case left in the feedback, hidden cases run in place (not sealed, so
the kernel sees them as text), a notebook over its time limit not stopped, one student's grading
skipped. On clean code every guard passes; with a defect
planted, the guard for it fails.
"""
import pytest
from nbgrader.preprocessors import ClearHiddenTests

from autograder import batch, outcome
from autograder.preprocessors import GradingExecute, SealTests
from test_grader_paths import check_class, grade_class

pytestmark = pytest.mark.xdist_group("paths_class")   # reads the session's paths_class (conftest.py): graded on one worker only


def skip_first_student(monkeypatch):
    """The batch reports the first submission it meets as graded, without grading it."""
    real, met = batch.grade_submission, []

    def grade_submission(grading, student, assignment):
        met.append(student)
        if len(met) == 1:
            return outcome.Outcome(student, assignment, ok=True)
        return real(grading, student, assignment)
    monkeypatch.setattr(batch, "grade_submission", grade_submission)


PLANTS = {   # defect -> (how it is planted, the guard that must catch it, what its failure says)
    "hidden case in feedback": (lambda mp: mp.setattr(ClearHiddenTests, "preprocess", lambda self, nb, r: (nb, r)),
                                "no hidden test in feedback", "shows hidden tests of 01_rnn"),
    "hidden cases run in place": (lambda mp: mp.setattr(SealTests, "preprocess", lambda self, nb, r: (nb, r)),
                                  "later cells see no hidden case", "what late's kernel saw shows hidden tests"),
    "notebook over its time limit not stopped": (lambda mp: mp.setattr(GradingExecute, "_time_is_up",
                                                                       lambda self: None),
                                                 "the time limit stops a notebook", "not stopped by its time limit"),
    "one student's grading skipped": (skip_first_student, "every student graded", "not graded"),
}


def test_every_guard_passes_on_clean_code(paths_class):
    assert paths_class["code"] == 0, paths_class["err"]
    checks = check_class(paths_class["course"])
    assert set(checks) == {guard for _, guard, _ in PLANTS.values()}   # every guard has its defect planted
    for check in checks.values():
        check()


@pytest.mark.parametrize("defect", list(PLANTS))
def test_a_planted_defect_makes_its_guard_fail(defect, tmp_path, monkeypatch):
    plant, guard, says = PLANTS[defect]
    plant(monkeypatch)
    course, code, _ = grade_class(tmp_path)
    monkeypatch.undo()
    assert code == 0
    with pytest.raises(AssertionError, match=says):
        check_class(course)[guard]()
