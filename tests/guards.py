"""The checks that stand between a defect of the grader and a student: each one is used by a test of the
real batch (tests/test_grader_paths.py) and shown to fail on its defect, planted (tests/test_guards.py).
"""
import re
from pathlib import Path

import nbformat

from autograder import gradescsv, verdicts
from page_text import assert_no_leak, visible_text

def feedback_page(course, student, assignment):
    page = Path(course) / "feedback" / student / assignment / f"{assignment}.html"
    assert page.is_file(), f"no feedback page for {student}/{assignment}"
    return page.read_text()


def autograded(course, student, assignment):
    return nbformat.read(Path(course) / "autograded" / student / assignment / f"{assignment}.ipynb", as_version=4)


def assert_feedback_hides_hidden_tests(course, students, assignment):
    """Every student's feedback page exists and shows no hidden test to a reader."""
    for student in students:
        assert_no_leak(feedback_page(course, student, assignment), assignment, f"{student}'s feedback")


def assert_later_cells_saw_no_hidden_case(course, student, assignment, marker):
    """A cell after the test cells printed what the kernel saw of its own history (the cell's output
    starts with ``marker``); since hidden cases are sealed by the grader and run after the last cell
    (autograder.preprocessors.SealTests), that output shows no hidden case, in the autograded
    notebook or on the feedback page."""
    outputs = [o.get("text", "") for c in autograded(course, student, assignment).cells
               for o in c.get("outputs", []) if marker in o.get("text", "")]
    assert outputs, f"the later cell of {student} did not run"
    assert_no_leak("<pre>" + "\n".join(outputs) + "</pre>", assignment, f"what {student}'s kernel saw")
    text = visible_text(feedback_page(course, student, assignment))
    assert marker in text, f"{student}'s feedback lost the output of its own cell"
    assert_no_leak(feedback_page(course, student, assignment), assignment, f"{student}'s feedback")


def assert_stopped_at_time_limit(course, student, assignment, seconds, later_cells):
    """The notebook was stopped by its time limit: flagged as such, and the test cells after the cell
    that was running then earn nothing."""
    flags = verdicts.review_flags(course, student, assignment)
    assert any(re.fullmatch(rf"time limit of {seconds} s reached in \w+", f) for f in flags), \
        f"{student} was not stopped by its time limit: flags {flags}"
    row = next(r for r in gradescsv.grade_rows(course) if r["student"] == student)
    assert not any(row["cells"][c] for c in later_cells), (row["cells"], "graded past the time limit")


def assert_every_student_graded(course, students, assignment, outcomes=()):
    """Every student has a grade row of ``assignment`` and an autograded notebook: none was left out."""
    rows = {r["student"] for r in gradescsv.grade_rows(course) if r["assignment"] == assignment}
    assert rows == set(students), f"not graded: grade rows {sorted(rows)}, students {sorted(students)}"
    missing = [s for s in students if not (Path(course) / "autograded" / s / assignment / f"{assignment}.ipynb").is_file()]
    assert not missing, f"not graded: {missing}"
    assert not [o for o in outcomes if o.skipped], "a first grade was skipped"
