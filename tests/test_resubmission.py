"""Resubmissions follow the manual (#20 item 3): a written answer changed after it was graded by hand
goes back to awaiting hand grading, its old score shown as previous (formgrader comment box, stats) and
counted nowhere (table, grades.csv, stats, Canvas); an unchanged written answer keeps its grade and
comment, even when the rest of the notebook changed.

The real flow: the grade command, hand grades written through nbgrader's gradebook API (what the
formgrader's score and comment boxes save), the students hand in again, the grade command again;
then the same with stock ``nbgrader autograde`` run in the course directory (what the formgrader's
Autograde button runs): one rule, in the course's pipeline (:mod:`autograder.handgrades`).
"""
import csv
import os
import shutil
import subprocess
import sys

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import batch, cli, grader, gradescsv, handgrades, journal, layout, stats
from page_text import visible_text
from submissions import REPO, solution_cells, student_notebook, write_submissions

A = "02_long_term"
ANSWER = "answer_plot"   # the written answer, 2 points, graded by hand
FIRST = "For small rho the gradient norm shrinks geometrically with the lag."
SECOND_ANSWER = "Rewritten: tanh saturates, so the gradient cannot grow like rho^k; 50 steps back it vanishes."
CODE = next(gid for gid in solution_cells(A) if gid != ANSWER)   # a code answer, graded automatically


def set_hand_grade(course, student, score, comment, notebook=A, answer=ANSWER):
    """What the formgrader saves when the instructor types a score and a comment."""
    with Gradebook(grader.default_db_url(course)) as gb:
        grade = gb.find_grade(answer, notebook, A, student)
        grade.manual_score, grade.needs_manual_grade = score, False
        gb.find_comment(answer, notebook, A, student).manual_comment = comment
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
    set_hand_grade(course, "changed", 1.5, "Good start; say why tanh matters.")
    set_hand_grade(course, "kept", 2, "Clear.")
    before = {r["student"]: r for r in gradescsv.grade_rows(course)}
    assert before["changed"]["cells"][ANSWER] == 1.5 and before["kept"]["cells"][ANSWER] == 2

    # both hand in again: one rewrote the written answer, the other only touched a code cell
    capsys.readouterr()
    assert grade(tmp_path, {"changed": student_notebook(A, {ANSWER: SECOND_ANSWER}),
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
    set_hand_grade(course, "changed", 2, "Now complete.")
    (s,) = stats.class_stats(course)
    assert s.awaiting == {} and s.previous == {}
    # a regrade of the same submissions (--force) keeps both hand grades and their comments
    assert cli.main(["grade", str(tmp_path / "submissions"), "--course", str(course), "--workers", "1",
                     "--force"]) == 0
    rows = {r["student"]: r for r in gradescsv.grade_rows(course)}
    assert rows["changed"]["cells"][ANSWER] == 2 and rows["kept"]["cells"][ANSWER] == 2
    assert rows["changed"]["awaiting"] == {} and rows["kept"]["awaiting"] == {}
    assert comment_of(course, "changed") == "Now complete." and comment_of(course, "kept") == "Clear."


# ------------------------------------------------ stock nbgrader autograde in the course directory

SECOND = "second"   # a second notebook of the assignment: exercise 02 again, its grade ids prefixed
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
NO_RECORD = "no readable record of the answers graded before"


def as_second(nb):
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id", "setup") != "setup":   # the release stamp's cell keeps its name
            meta["grade_id"] = "b_" + meta["grade_id"]
    return nb


def submission(answer, second_answer, code=None):
    """The two notebooks of a submission: written answers ``answer`` and ``second_answer``."""
    first = student_notebook(A, {ANSWER: answer, **({CODE: code} if code else {})})
    return {f"{A}.ipynb": first, f"{SECOND}.ipynb": as_second(student_notebook(A, {ANSWER: second_answer}))}


def hand_in(folder, students):
    """``students``: id -> notebooks (file name -> notebook), written to ``folder``/<id>/<A>/."""
    for student, notebooks in students.items():
        dest = folder / student / A
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for name, nb in notebooks.items():
            nbformat.write(nb, dest / name)


def stock_autograde(course, *args):
    """``nbgrader autograde`` in the course directory; its log."""
    run = subprocess.run(["nbgrader", "autograde", A, "--force", *args], cwd=course, env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def grade_state(course, student, notebook=A, answer=ANSWER):
    with Gradebook(grader.default_db_url(course)) as gb:
        grade = gb.find_grade(answer, notebook, A, student)
        comment = gb.find_comment(answer, notebook, A, student).manual_comment
        return grade.manual_score, grade.needs_manual_grade, comment


def score_of(course, student):
    with Gradebook(grader.default_db_url(course)) as gb:
        return gb.find_submission(A, student).score


def test_stock_autograde_in_the_course_follows_the_same_rule(tmp_path):
    solutions = tmp_path / "solutions"
    shutil.copytree(REPO / "solutions", solutions)
    nbformat.write(as_second(nbformat.read(solutions / A / f"{A}.ipynb", as_version=4)),
                   solutions / A / f"{SECOND}.ipynb")
    subs, course = tmp_path / "submissions", tmp_path / "course"
    hand_in(subs, {"changed": submission(FIRST, FIRST), "kept": submission(FIRST, FIRST)})
    outcomes = batch.autograde(course, layout.prepare_course(course, subs, solutions=solutions), force=False)
    assert all(o.ok for o in outcomes), outcomes
    set_hand_grade(course, "changed", 1.5, "Good start.")
    set_hand_grade(course, "changed", 1, "Second notebook.", SECOND, "b_" + ANSWER)
    set_hand_grade(course, "kept", 2, "Clear.")
    before = score_of(course, "changed")

    # resubmissions collected into the course (as nbgrader's collect or zip_collect put them):
    # one rewrote the first notebook's written answer only, one a code cell only; one never graded
    code = solution_cells(A)[CODE] + "\n# tidied up\n"
    hand_in(course / "submitted", {"changed": submission(SECOND_ANSWER, FIRST),
                                   "kept": submission(FIRST, FIRST, code=code),
                                   "fresh": submission(FIRST, FIRST)})
    log = stock_autograde(course)
    assert NO_RECORD not in log, log
    assert grade_state(course, "changed") == (None, True, f"{handgrades.PREVIOUS} 1.5 / 2. Its comment: Good start.")
    assert grade_state(course, "changed", SECOND, "b_" + ANSWER) == (1, False, "Second notebook.")
    assert grade_state(course, "kept") == (2, False, "Clear.")
    assert grade_state(course, "fresh")[0] is None
    assert score_of(course, "changed") == pytest.approx(before - 1.5)   # the old hand grade counts nowhere
    run = subprocess.run(["nbgrader", "export", "--to", str(tmp_path / "export.csv")], cwd=course, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    with open(tmp_path / "export.csv", newline="") as fh:
        exported = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert float(exported["changed"]["raw_score"]) == pytest.approx(before - 1.5)
    (s,) = stats.class_stats(course)
    assert s.previous["changed"][ANSWER]["score"] == 1.5 and set(s.previous) == {"changed"}

    # a --force regrade of unchanged submissions keeps every hand grade, the new one too
    set_hand_grade(course, "changed", 2, "Now complete.")
    assert NO_RECORD not in stock_autograde(course, "--student", "changed")
    assert grade_state(course, "changed") == (2, False, "Now complete.")
    assert grade_state(course, "changed", SECOND, "b_" + ANSWER) == (1, False, "Second notebook.")

    # no record (lost, or unreadable): the answers count as changed, and the log says so once a notebook
    shutil.rmtree(handgrades.answers_file(course, "kept", A, A).parent)
    handgrades.answers_file(course, "changed", A, SECOND).write_text("{not json")
    log = stock_autograde(course, "--student", "kept")
    assert [line for line in log.splitlines() if NO_RECORD in line and "kept/" in line] != []
    assert len([line for line in log.splitlines() if NO_RECORD in line]) == 1, log   # only its hand-graded notebook
    assert grade_state(course, "kept") == (None, True, f"{handgrades.PREVIOUS} 2 / 2. Its comment: Clear.")
    stock_autograde(course, "--student", "changed")
    assert grade_state(course, "changed")[0] == 2
    assert grade_state(course, "changed", SECOND, "b_" + ANSWER)[:2] == (None, True)


def test_a_record_is_bounded_and_read_from_the_course_only(tmp_path):
    """A record too large to be ours is unreadable (answers count as changed); records are written
    atomically beside nothing a student hands in."""
    path = handgrades.answers_file(tmp_path, "s", A, A)
    handgrades.record_answers(tmp_path, "s", A, A, {ANSWER: handgrades.digest(FIRST)})
    assert handgrades.graded_answers(tmp_path, "s", A, A) == {ANSWER: handgrades.digest(FIRST)}
    assert [p.name for p in path.parent.iterdir()] == [path.name]   # no temporary file left
    path.write_text('{"answers": {"x": "' + "0" * handgrades.MAX_RECORD + '"}}')
    assert handgrades.graded_answers(tmp_path, "s", A, A) is None
    path.write_text('{"answers": {"x": 1}}')
    assert handgrades.graded_answers(tmp_path, "s", A, A) is None
    for student, notebook in (("..", A), ("a/../..", A), ("s", "../x")):
        with pytest.raises(ValueError):
            handgrades.answers_file(tmp_path, student, A, notebook)


def test_the_record_is_journaled_with_the_submission(tmp_path):
    """A grading that never completes (put back by the journal) puts back the record of the answers
    graded before, too: it never says an answer was judged that the gradebook does not hold."""
    course = tmp_path / "course"
    course.mkdir()
    grading = grader.Grading(str(course))
    handgrades.record_answers(course, "s", A, A, {ANSWER: "old"})
    journal.begin(grading, "s", A)
    handgrades.record_answers(course, "s", A, A, {ANSWER: "new"})   # written by an autograde cut short
    journal.restore(grading, "s", A)
    assert handgrades.graded_answers(course, "s", A, A) == {ANSWER: "old"}
    journal.begin(grading, "t", A)   # a first grading cut short: no record at all
    handgrades.record_answers(course, "t", A, A, {ANSWER: "new"})
    journal.restore(grading, "t", A)
    assert not handgrades.record_dir(course, "t", A).exists()
