"""Build student submissions from the source notebooks: the solution with some cells rewritten."""
import re
from pathlib import Path

import nbformat

from autograder import batch, gradescsv, layout

REPO = Path(__file__).resolve().parent.parent


def solution_cells(assignment):
    """grade_id -> source of each solution cell of ``solutions/<a>/<a>.ipynb``."""
    nb = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def mutate(source, old, new, count=1):
    """Replace ``old`` by ``new`` in ``source``; fail loudly if ``old`` is not there."""
    if source.count(old) < count:
        raise AssertionError(f"mutation anchor not found: {old!r}")
    return source.replace(old, new, count)


def student_notebook(assignment, replacements=None, released=False):
    """The solution (or the blank release) with solution cells replaced by grade_id."""
    folder = "exercises" if released else "solutions"
    nb = nbformat.read(REPO / folder / assignment / f"{assignment}.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if replacements and gid in replacements:
            cell.source = replacements[gid]
    return nb


def db_mean_notebook():
    """Exercise 1 with one partial-credit bug: the bias gradient averaged over the batch, not summed."""
    step_backward = solution_cells("01_rnn")["rnn_step_backward"]
    return student_notebook("01_rnn", {"rnn_step_backward": mutate(step_backward, "db = da.sum(axis=0)",
                                                                   "db = da.mean(axis=0)")})


def strip_solution_markers(source):
    return re.sub(r"^\s*### (BEGIN|END) SOLUTION\n", "", source, flags=re.M)


def write_submissions(root, assignment, students):
    """students: name -> notebook. Writes root/<name>/<assignment>/<assignment>.ipynb."""
    for name, nb in students.items():
        path = Path(root) / name / assignment / f"{assignment}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
    return Path(root)


def grade_students(root, assignment, students, **autograde):
    """Write ``students`` (name -> notebook) to root/submissions, lay out root/course and grade
    it with the batch (``autograde``: its keyword arguments). Returns (course, outcomes by
    student, grades.csv rows by student)."""
    course = Path(root) / "course"
    subs = write_submissions(Path(root) / "submissions", assignment, students)
    outcomes = {o.student: o for o in batch.autograde(course, layout.prepare_course(course, subs), **autograde)}
    return course, outcomes, {r["student"]: r for r in gradescsv.grade_rows(course)}


def assert_hides_hidden_tests(page, assignment):
    """A feedback page shows no hidden test to a reader, and loads nothing from the web (tests/page_text.py)."""
    from page_text import assert_offline_feedback
    assert_offline_feedback(page, assignment)
