"""Hand grading is a step of its own: points awaiting it are never shown as zeros.

Exercise 02 has a written answer (``answer_plot``, 2 points) graded by hand. Two students
are graded by the batch; the answer then awaits grading in the table, grades.csv, the
statistics and the Canvas CSV. The formgrader's REST API (a real Jupyter server with
nbgrader's formgrader, in the course directory) gives it 2 points; it then counts as
graded, survives a ``--force`` regrade, and stock ``nbgrader generate_feedback`` run in
the course directory writes feedback without hidden tests, readable and offline (the
course's template: MathJax shared, the page small). The formgrader's pages, in Chromium:
tests/test_formgrader_browser.py.
"""
import csv
import re
import shutil
import subprocess

import pytest
from nbgrader.api import Gradebook

from autograder import batch, cli, gradescsv, grader, stats
from formgrader_support import ENV, api
from formgrader_support import formgrader as running_formgrader
from page_text import visible_text
from submissions import assert_hides_hidden_tests, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_hand_grading")   # its module-scoped fixture grades once: every test of the module on one worker
A = "02_long_term"
ANSWER = "answer_plot"
CLASS = {"written": student_notebook(A, {ANSWER: "For small rho the gradient norm shrinks geometrically with "
                                                 "the lag; tanh saturates, so it cannot grow like rho^k; a "
                                                 "dependency 50 steps back gets almost no gradient."}),
         "blank": student_notebook(A, released=True)}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("hand")
    subs = write_submissions(root / "submissions", A, CLASS)
    course = root / "course"
    assert cli.main(["grade", str(subs), "--course", str(course), "--workers", "1"]) == 0
    return course


def rows(course):
    return {r["student"]: r for r in gradescsv.grade_rows(course)}


def test_points_awaiting_hand_grading_are_not_zeros(course, capsys, tmp_path):
    by_student = rows(course)
    assert by_student["written"]["awaiting"] == {ANSWER: 2.0} and by_student["written"]["cells"][ANSWER] is None
    assert by_student["written"]["score"] == 5 and by_student["written"]["max_score"] == 7
    # An answer left as released is worth 0 without a look (nbgrader's rule): nothing awaits.
    assert by_student["blank"]["awaiting"] == {} and by_student["blank"]["cells"][ANSWER] == 0
    table = cli.format_table(gradescsv.grade_rows(course), course)
    assert re.search(r"^written\s+02_long_term\s+5\.00 / 7\s+\+2 by hand", table, re.M), table
    with open(course / "grades.csv", newline="") as fh:
        written = {r["student"]: r for r in csv.DictReader(fh)}["written"]
    assert written[ANSWER] == gradescsv.AWAITING and written["awaiting_points"] == "2.0"
    (s,) = stats.class_stats(course)
    assert s.awaiting == {"written": 2.0}
    assert "1 with zero. 1 have answers awaiting hand grading (2 points in all)" in stats.summary(s)
    assert cli.main(["stats", str(course), "--canvas", str(tmp_path / "canvas.csv")]) == 0
    assert "written/02_long_term: 2 points await hand grading" in capsys.readouterr().err
    lines = list(csv.reader((tmp_path / "canvas.csv").open(newline="")))
    assert {line[3]: line[-1] for line in lines[2:]} == {"written": "", "blank": "0.0"}


@pytest.fixture
def course_copy(course, tmp_path):
    """A copy of the graded course, for a test that writes into it."""
    copy = tmp_path / "course"
    shutil.copytree(course, copy)
    return copy


@pytest.fixture
def formgrader(course_copy):
    """nbgrader's formgrader running in a copy of the course: its base URL and token."""
    with running_formgrader(course_copy) as server:
        yield server


def test_formgrader_grade_counts_survives_force_and_stock_feedback_leaks_nothing(course_copy, formgrader):
    course = course_copy
    url, token = formgrader
    with Gradebook(grader.default_db_url(course)) as gb:
        grade_id = gb.find_grade(ANSWER, A, A, "written").id
    # What the formgrader's page sends when the instructor types 2 into the answer's score box.
    assert api(url, token, f"grade/{grade_id}")["needs_manual_grade"] is True
    saved = api(url, token, f"grade/{grade_id}", {"manual_score": 2, "extra_credit": 0})
    assert saved["manual_score"] == 2 and saved["needs_manual_grade"] is False
    by_student = rows(course)
    assert by_student["written"]["awaiting"] == {} and by_student["written"]["score"] == 7
    assert by_student["written"]["cells"][ANSWER] == 2

    # A forced regrade keeps the hand grade and its status.
    batch.autograde(course, [(s, A) for s in CLASS], workers=1, force=True)
    by_student = rows(course)
    assert by_student["written"]["awaiting"] == {} and by_student["written"]["score"] == 7
    assert by_student["written"]["cells"][ANSWER] == 2

    # The formgrader's "Autograde" button: the course's pipeline, the same grades, the hand grade kept.
    before = rows(course)
    assert api(url, token, f"submission/{A}/written/autograde", method="POST")["success"] is True
    after = rows(course)
    assert after["written"]["score"] == 7 and after["written"]["cells"] == before["written"]["cells"]
    assert after["written"]["awaiting"] == {}

    # Stock nbgrader in the course directory, as the formgrader's "Generate Feedback" button runs it.
    run = subprocess.run(["nbgrader", "generate_feedback", A, "--force"], cwd=course, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for student in CLASS:
        page = (course / "feedback" / student / A / f"{A}.html").read_text()
        assert_hides_hidden_tests(page, A)
        assert "Partial score of this test cell" in visible_text(page)
        assert len(page.encode()) < 100_000 and '"../../_mathjax/tex-svg.js"' in page   # the course's template
    page = (course / "feedback" / "written" / A / f"{A}.html").read_text()
    assert re.search(r"Score:\s*7(\.0)?\s*/\s*7", visible_text(page)), "the hand grade is not in the feedback"
