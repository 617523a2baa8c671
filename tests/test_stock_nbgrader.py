"""The course directory is a complete nbgrader course, and re-releasing after a fix blames nobody.

After ``python -m autograder grade``, nbgrader's own ``autograde``, ``generate_feedback``
and ``export`` run in the course directory (as an instructor used to nbgrader, or the
formgrader's buttons, would) use the course's pipeline: same grades, feedback without
hidden tests. Then the instructor corrects the points of a test cell and grades again
without ``--force``: every submission of that assignment is regraded to the new maximum,
and nobody is flagged for the instructor's change.
"""
import csv
import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS

from autograder import batch, gradescsv, layout, verdicts
from ci import require, require_module
from points import cell_points, total_points
from page_text import leaks, visible_text
from submissions import REPO, assert_hides_hidden_tests, db_mean_notebook, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("class_01")   # reads the session's class_01 (conftest.py): graded on one worker only
A = "01_rnn"
TOTAL = total_points(A)
POINTS = cell_points(A)
CLASS = {
    "solution": student_notebook(A),
    "blank": student_notebook(A, released=True),
    "db_mean": db_mean_notebook(),
}
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def scores(course):
    return {r["student"]: (r["score"], r["max_score"], r["cells"]) for r in gradescsv.grade_rows(course)}


def nbgrader(course, *args):
    run = subprocess.run(["nbgrader", *args], cwd=course, env=ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


@pytest.fixture
def graded(class_01):
    """Exercise 01's class graded once by the batch (tests/conftest.py); tests copy its course."""
    by_student = class_01["scores"]
    assert set(by_student) == set(CLASS)
    return class_01["submissions"].parent, class_01["submissions"], class_01["course"], by_student


def test_stock_autograde_feedback_and_export_use_the_course_pipeline(graded, tmp_path):
    _, _, reference, by_student = graded
    course = tmp_path / "course"
    shutil.copytree(reference, course)
    nbgrader(course, "autograde", A, "--force")
    assert scores(course) == by_student       # partial credit, sandbox and verdicts: the same grades

    nbgrader(course, "generate_feedback", A, "--force")
    for student in CLASS:
        page = (course / "feedback" / student / A / f"{A}.html").read_text()
        assert_hides_hidden_tests(page, A)
    text = visible_text((course / "feedback" / "db_mean" / A / f"{A}.html").read_text())
    earned, points = by_student["db_mean"][2]["test_rnn_step_backward"], POINTS["test_rnn_step_backward"]
    assert 0 < earned < points
    said = re.findall(rf"Partial score of this test cell: ([\d.]+) of {points:g} points", text)   # not a bare Out[..]
    assert any(abs(float(x) - earned) < 0.01 for x in said), (said, earned)
    # one line per distinct problem and task (the step backward's, in all its cases); rnn_backward,
    # which calls it, keeps its points through its stand-in run and says why
    assert len(re.findall(r"db: wrong \(in \d+ cases?\)", text)) == 1
    # the cases on demand: the step's failed cases; the layer's notes, not called failures
    assert re.findall(r"every (?:failed case|note) \(\d+\)", text) == ["every failed case (3)", "every note (2)"]
    assert "your rnn_backward chains rnn_step_backward right" in " ".join(text.split())

    nbgrader(course, "export", "--to", "nbgrader_grades.csv")
    with open(course / "nbgrader_grades.csv", newline="") as fh:
        exported = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(fh)}
    assert exported == {s: v[0] for s, v in by_student.items()}


def test_rerelease_after_a_point_fix_regrades_without_force_and_flags_nobody(graded, tmp_path):
    _, subs, reference, by_student = graded
    course = tmp_path / "course"
    shutil.copytree(reference, course)
    solutions = tmp_path / "solutions"
    shutil.copytree(REPO / "solutions", solutions)
    path = solutions / A / f"{A}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_rnn_backward")
    assert cell.metadata.nbgrader["points"] == POINTS["test_rnn_backward"]
    cell.metadata.nbgrader["points"] += 1         # the instructor's fix, after the students submitted
    nbformat.write(nb, path)

    pairs = layout.prepare_course(course, subs, solutions=solutions)
    outcomes = batch.autograde(course, pairs, workers=2, force=False)
    assert not any(o.skipped for o in outcomes), "a changed source must regrade what it affects"
    now = scores(course)
    assert {s: v[1] for s, v in now.items()} == {s: TOTAL + 1 for s in CLASS}
    assert now["solution"][0] == TOTAL + 1 and now["solution"][2]["test_rnn_backward"] == POINTS["test_rnn_backward"] + 1
    for student in CLASS:
        flags = verdicts.review_flags(course, student, A)
        assert not any("changed nbgrader metadata" in f for f in flags), (student, flags)
    # A student who really changes the points is still flagged.
    tampered = student_notebook(A)
    next(c for c in tampered.cells
         if c.metadata.get("nbgrader", {}).get("grade_id") == "test_rnn_forward").metadata.nbgrader["points"] = 99
    write_submissions(tmp_path / "tampered", A, {"solution": tampered})
    pairs = layout.prepare_course(course, tmp_path / "tampered", solutions=solutions)
    outcomes = {o.student: o for o in batch.autograde(course, pairs, workers=1, force=False)}
    assert [s for s, o in outcomes.items() if not o.skipped] == ["solution"]
    assert any(re.fullmatch(rf"changed nbgrader metadata of test_rnn_forward: points {POINTS['test_rnn_forward']}"
                            r"(\.0)? -> 99", note)
               for note in outcomes["solution"].notes), outcomes["solution"]


def test_feedback_renders_equations_offline_in_a_browser(graded):
    """The feedback file alone, in Chromium with every network request refused: MathJax typesets."""
    sync_api = require_module("playwright.sync_api")
    require(os.access(CHROMIUM, os.X_OK), f"no Chromium at {CHROMIUM}", "apt-get install chromium (scripts/system-deps.sh)")
    _, _, course, _ = graded
    page_file = course / "feedback" / "db_mean" / A / f"{A}.html"
    requested = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("http*://**", lambda route: (requested.append(route.request.url), route.abort()))
            page.goto(page_file.as_uri())
            page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30000)
            page.evaluate("MathJax.startup.promise")
            typeset = page.locator("mjx-container").count()
            details = page.locator("details").count()
            text = page.inner_text("body")
        finally:
            browser.close()
    assert requested == [], requested
    assert typeset >= 3, "equations were not typeset"
    assert "$a = x_t W_x" not in text, "raw LaTeX left on the page"
    assert details == 2 and "Partial score of this test cell" in text
    assert leaks(text, A) == [], "Chromium shows hidden tests on the feedback page"
