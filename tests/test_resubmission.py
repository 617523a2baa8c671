"""Resubmissions follow the manual (#20 item 3): a written answer changed after it was graded by hand
goes back to awaiting hand grading, its old score shown as previous (formgrader comment box, stats) and
counted nowhere (table, grades.csv, stats, Canvas); an unchanged written answer keeps its grade and
comment, even when the rest of the notebook changed.

The real flow: the grade command, hand grades written through nbgrader's gradebook API (what the
formgrader's score and comment boxes save), the students hand in again, the grade command again.
"""
import csv

import pytest
from nbgrader.api import Gradebook

from autograder import cli, grader, gradescsv, handgrades, stats
from page_text import visible_text
from submissions import solution_cells, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("grading")
A = "02_long_term"
ANSWER = "answer_plot"   # the written answer, 2 points, graded by hand
FIRST = "For small rho the gradient norm shrinks geometrically with the lag."
SECOND = "Rewritten: tanh saturates, so the gradient cannot grow like rho^k; 50 steps back it vanishes."
CODE = next(gid for gid in solution_cells(A) if gid != ANSWER)   # a code answer, graded automatically


def hand_grade(course, student, score, comment):
    """What the formgrader saves when the instructor types a score and a comment."""
    with Gradebook(grader.default_db_url(course)) as gb:
        grade = gb.find_grade(ANSWER, A, A, student)
        grade.manual_score, grade.needs_manual_grade = score, False
        gb.find_comment(ANSWER, A, A, student).manual_comment = comment
        gb.db.commit()


def comment_of(course, student):
    with Gradebook(grader.default_db_url(course)) as gb:
        return gb.find_comment(ANSWER, A, A, student).manual_comment


def grade(tmp_path, students):
    subs = write_submissions(tmp_path / "submissions", A, students)
    return cli.main(["grade", str(subs), "--course", str(tmp_path / "course"), "--workers", "1"])


def test_a_changed_written_answer_awaits_grading_again_and_an_unchanged_one_keeps_its_grade(tmp_path, capsys):
    course = tmp_path / "course"
    code = solution_cells(A)[CODE]
    assert grade(tmp_path, {"changed": student_notebook(A, {ANSWER: FIRST}),
                            "kept": student_notebook(A, {ANSWER: FIRST})}) == 0
    hand_grade(course, "changed", 1.5, "Good start; say why tanh matters.")
    hand_grade(course, "kept", 2, "Clear.")
    before = {r["student"]: r for r in gradescsv.grade_rows(course)}
    assert before["changed"]["cells"][ANSWER] == 1.5 and before["kept"]["cells"][ANSWER] == 2

    # both hand in again: one rewrote the written answer, the other only touched a code cell
    capsys.readouterr()
    assert grade(tmp_path, {"changed": student_notebook(A, {ANSWER: SECOND}),
                            "kept": student_notebook(A, {ANSWER: FIRST, CODE: code + "\n# tidied up\n"})}) == 0
    out = capsys.readouterr().out
    rows = {r["student"]: r for r in gradescsv.grade_rows(course)}
    assert rows["changed"]["awaiting"] == {ANSWER: 2.0} and rows["changed"]["cells"][ANSWER] is None
    assert rows["changed"]["score"] == before["changed"]["score"] - 1.5   # the old hand grade is not counted
    assert rows["kept"]["awaiting"] == {} and rows["kept"]["cells"][ANSWER] == 2
    assert rows["kept"]["score"] == before["kept"]["score"]
    assert comment_of(course, "kept") == "Clear."
    assert comment_of(course, "changed") == (f"{handgrades.PREVIOUS} 1.5 / 2. "
                                             f"Its comment: Good start; say why tanh matters.")
    assert "1 submission(s) have answers to grade by hand (2 points in all)" in out
    table = [line for line in out.splitlines() if line.startswith("changed ")]
    assert table and "+2 by hand" in table[0]
    with open(course / "grades.csv", newline="") as fh:
        written = {r["student"]: r for r in csv.DictReader(fh)}
    assert written["changed"][ANSWER] == gradescsv.AWAITING and written["changed"]["awaiting_points"] == "2.0"
    assert float(written["kept"][ANSWER]) == 2
    canvas = tmp_path / "canvas.csv"
    assert cli.main(["stats", str(course), "--canvas", str(canvas), "--out", str(tmp_path / "stats.html")]) == 0
    out = capsys.readouterr().out
    assert "1 of them changed a written answer after it was graded by hand" in out
    lines = list(csv.reader(canvas.open(newline="")))
    assert {line[3]: line[-1] for line in lines[2:]}["changed"] == ""   # Canvas keeps what it has
    (s,) = stats.class_stats(course)
    assert s.awaiting == {"changed": 2.0}
    assert s.previous["changed"][ANSWER]["score"] == 1.5 and "kept" not in s.previous
    page = visible_text((tmp_path / "stats.html").read_text())
    assert "resubmitted, previous grades (not counted): answer_plot 1.5 / 2" in page

    # the instructor grades the new answer: it counts, the previous grade is gone from stats
    hand_grade(course, "changed", 2, "Now complete.")
    (s,) = stats.class_stats(course)
    assert s.awaiting == {} and s.previous == {}
    # a regrade of the same submissions (--force) keeps both hand grades and their comments
    assert cli.main(["grade", str(tmp_path / "submissions"), "--course", str(course), "--workers", "1",
                     "--force"]) == 0
    rows = {r["student"]: r for r in gradescsv.grade_rows(course)}
    assert rows["changed"]["cells"][ANSWER] == 2 and rows["kept"]["cells"][ANSWER] == 2
    assert rows["changed"]["awaiting"] == {} and rows["kept"]["awaiting"] == {}
    assert comment_of(course, "changed") == "Now complete." and comment_of(course, "kept") == "Clear."
