"""The optional, ungraded parts of a notebook never flag a submission (issue 21, item 4).

Exercise 5's LSTM paste and its demo cells (training, sampling) are tagged
``skip-in-grading`` in the source: the grader never runs them, so a student who
skips, deletes or edits them keeps every point and gets no review flag. Deleting a
graded function's cell is still flagged.
"""
import nbformat
import pytest

from autograder import batch, gradescsv, layout
from autograder.preprocessors import SKIP_TAG
from submissions import REPO, mutate, solution_cells, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_optional_cells")   # its module-scoped fixture grades once: every test of the module on one worker

A = "05_language_model"
OPTIONAL = ("lstm", "train", "sample_poems")


def released_source(gid):
    nb = nbformat.read(REPO / "exercises" / A / f"{A}.ipynb", as_version=4)
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def without(nb, *gids):
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in gids]
    return nb


def edited(nb, gid, old, new):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == gid:
            cell.source = mutate(cell.source, old, new)
    return nb


STUDENTS = {
    "solution": lambda: student_notebook(A),
    "lstm_skipped": lambda: student_notebook(A, {"lstm": released_source("lstm")}),
    "lstm_deleted": lambda: without(student_notebook(A), "lstm"),
    "lstm_endless": lambda: student_notebook(A, {"lstm": "while True:\n    pass\n"}),
    "demos_deleted": lambda: without(student_notebook(A, {"lstm": released_source("lstm")}), "train", "sample_poems"),
    "demo_edited": lambda: edited(student_notebook(A), "sample_poems", "(0.0, 0.6, 1.0)", "(0.3,)"),
    "graded_deleted": lambda: without(student_notebook(A), "embedding_forward"),
}


def test_optional_cells_are_tagged_in_source_and_release():
    for folder in ("solutions", "exercises"):
        nb = nbformat.read(REPO / folder / A / f"{A}.ipynb", as_version=4)
        tagged = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                  if SKIP_TAG in c.metadata.get("tags", []) and "nbgrader" in c.metadata}
        assert tagged == set(OPTIONAL), (folder, tagged)
    assert "lstm" in solution_cells(A)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("optional")
    write_submissions(root / "subs", A, {name: make() for name, make in STUDENTS.items()})
    course = root / "course"
    outcomes = batch.autograde(course, layout.prepare_course(course, root / "subs"), workers=2)
    assert all(o.ok for o in outcomes), outcomes
    return {r["student"]: r for r in gradescsv.grade_rows(course)}


@pytest.mark.parametrize("student", [s for s in STUDENTS if s != "graded_deleted"])
def test_skipping_an_optional_part_costs_nothing_and_flags_nothing(graded, student):
    row = graded[student]
    assert row["score"] == row["max_score"] == graded["solution"]["max_score"] > 0, row
    assert row["flags"] == [], row["flags"]


def test_deleting_a_graded_function_is_still_flagged(graded):
    row = graded["graded_deleted"]
    assert row["score"] < row["max_score"]
    assert any(f.startswith("deleted cell embedding_forward") for f in row["flags"]), row["flags"]
