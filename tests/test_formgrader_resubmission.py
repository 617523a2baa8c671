"""A resubmission autograded with the formgrader's own Autograde button, in headless Chromium.

The instructor grades a written answer in the formgrader (types a score and a comment); the
student hands in again with the written answer rewritten; the instructor presses *Autograde*
for that student on the formgrader's "Manage submissions" page (stock nbgrader autograde, run by
the Jupyter server with the course's pipeline). The answer is then awaiting grading again, its
score box empty, its comment box saying what the previous grade was, and the old score is
counted nowhere: not in the gradebook, ``nbgrader export`` or grades.csv after the next
``grade``. The instructor grades the new answer; a second resubmission that leaves the written
answer as it was keeps that grade and comment through the Autograde button.

Screenshots go to artifacts/screenshots/. Without Chromium or Playwright the tests skip,
except on CI (CI=true), where they fail.
"""
import csv
import re
import subprocess

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import cli, gradescsv, grader, handgrades
from browser_support import SCREENSHOTS, chromium
from formgrader_support import ENV, api, formgrader
from submissions import solution_cells, student_notebook, write_submissions

A = "02_long_term"
ANSWER = "answer_plot"
STUDENT = "written"
FIRST = "For small rho the norm shrinks geometrically."
REWRITTEN = "Rewritten: tanh saturates, so the gradient cannot grow like rho^k."
CODE = next(gid for gid in solution_cells(A) if gid != ANSWER)
LOADED = "window.formgrader && formgrader.grades && formgrader.grades.loaded && formgrader.comments.loaded"


@pytest.fixture
def course(tmp_path):
    subs = write_submissions(tmp_path / "submissions", A, {STUDENT: student_notebook(A, {ANSWER: FIRST})})
    course = tmp_path / "course"
    assert cli.main(["grade", str(subs), "--course", str(course), "--workers", "1"]) == 0
    return course


@pytest.fixture
def page():
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1200, "height": 900}, service_workers="block")
        context.set_default_timeout(60_000)
        page = context.new_page()
        page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())   # no internet here
        yield page
        context.close()


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def hand_in_again(course, answer, code=None):
    """A new submission of the student's, in the submissions folder and collected into the course."""
    nb = student_notebook(A, {ANSWER: answer, **({CODE: code} if code else {})})
    for folder in (course.parent / "submissions", course / "submitted"):
        nbformat.write(nb, folder / STUDENT / A / f"{A}.ipynb")


def grade_by_hand(page, url, token, course, score, comment):
    """The instructor opens the submission, types a score and a comment; both saved."""
    with Gradebook(grader.default_db_url(course)) as gb:
        notebook_id = gb.find_submission_notebook(A, A, STUDENT).id
        grade_id = gb.find_grade(ANSWER, A, A, STUDENT).id
        comment_id = gb.find_comment(ANSWER, A, A, STUDENT).id
    page.goto(f"{url}/formgrader/submissions/{notebook_id}/", wait_until="load")
    page.wait_for_function(LOADED)
    box, text = page.locator("input.score#answer_plot"), page.locator("textarea#answer_plot-comment")
    box.fill(str(score))
    box.press("Tab")                         # formgrade.js saves on change
    text.fill(comment)
    text.press("Tab")
    for _ in range(100):
        if (api(url, token, f"grade/{grade_id}")["manual_score"] == score
                and api(url, token, f"comment/{comment_id}")["manual_comment"] == comment):
            return
        page.wait_for_timeout(100)
    raise AssertionError("the formgrader did not save the score and comment")


def press_autograde(page, url):
    """The Autograde button of the student's row on "Manage submissions"; its success dialog."""
    page.goto(f"{url}/formgrader/manage_submissions/{A}", wait_until="load")
    row = page.locator("#main-table tr", has=page.locator("td.student-id", has_text=STUDENT))
    row.locator("td.autograde a").click()
    dialog = page.locator("#success-modal")
    dialog.wait_for(state="visible", timeout=300_000)
    assert "Successfully autograded" in dialog.inner_text()
    return dialog


def boxes(page, url, course):
    """What the submission page shows in the written answer's score and comment boxes."""
    with Gradebook(grader.default_db_url(course)) as gb:
        notebook_id = gb.find_submission_notebook(A, A, STUDENT).id
    page.goto(f"{url}/formgrader/submissions/{notebook_id}/", wait_until="load")
    page.wait_for_function(LOADED)
    return (page.locator("input.score#answer_plot").input_value(),
            page.locator("textarea#answer_plot-comment").input_value())


def exported_score(course):
    out = course / "export.csv"
    run = subprocess.run(["nbgrader", "export", "--to", str(out)], cwd=course, env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    with open(out, newline="") as fh:
        return float({r["student_id"]: r for r in csv.DictReader(fh)}[STUDENT]["raw_score"])



def test_autograde_button_sends_a_changed_written_answer_back_and_keeps_an_unchanged_one(course, page):
    with formgrader(course) as (url, token):
        page.goto(f"{url}/login", wait_until="load")
        page.fill("#password_input", token)
        with page.expect_navigation():
            page.click("#login_submit")
        grade_by_hand(page, url, token, course, 1.5, "Good start; say why tanh matters.")
        before = exported_score(course)

        hand_in_again(course, REWRITTEN)
        press_autograde(page, url)
        shot(page, "formgrader_autograde_resubmission")
        score, comment = boxes(page, url, course)
        assert score == ""
        assert comment == f"{handgrades.PREVIOUS} 1.5 / 2. Its comment: Good start; say why tanh matters."
        shot(page, "formgrader_previous_grade")
        with Gradebook(grader.default_db_url(course)) as gb:
            grade = gb.find_grade(ANSWER, A, A, STUDENT)
            assert (grade.manual_score, grade.needs_manual_grade) == (None, True)
        assert exported_score(course) == pytest.approx(before - 1.5)   # counted nowhere
        assert cli.main(["grade", str(course.parent / "submissions"), "--course", str(course), "--workers", "1"]) == 0
        with open(course / "grades.csv", newline="") as fh:
            row = {r["student"]: r for r in csv.DictReader(fh)}[STUDENT]
        assert row[ANSWER] == gradescsv.AWAITING and float(row["awaiting_points"]) == 2
        assert float(row["score"]) == pytest.approx(before - 1.5)

        # the new answer graded; a resubmission that leaves it as it is keeps the grade
        grade_by_hand(page, url, token, course, 2, "Now complete.")
        hand_in_again(course, REWRITTEN, code=solution_cells(A)[CODE] + "\n# tidied up\n")
        press_autograde(page, url)
        assert boxes(page, url, course) == ("2", "Now complete.")
        assert exported_score(course) == pytest.approx(before + 0.5)
