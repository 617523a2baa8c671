"""What one grading process keeps from one submission to the next (autograder/session.py).

A batch graded by one worker makes one gradebook engine per course id, one Autograde
application and one feedback exporter, whatever the number of submissions; it reads each
submitted notebook once (nbgrader once more), and validates it once per pass (not after
every preprocessor); and it gives exactly what nbgrader's API
gives with an application per call and a Gradebook per step: grades, flags, notes,
feedback pages byte for byte (but for the random id of a cell the grader re-added). The
shared gradebook never holds a transaction between uses; a notebook's grades are saved in
one commit, all or none; the kept metadata schema checks as nbgrader's CheckCellMetadata does.
"""
import builtins
import contextlib
import copy
import io
import os
import re
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import nbgrader.api
import pytest
import sqlalchemy.orm
from nbconvert.exporters import Exporter, HTMLExporter
from nbgrader.api import Gradebook, MissingEntry, Student
from nbgrader.apps import NbGraderAPI
from nbformat.v4 import new_code_cell, new_notebook, new_output
from nbgrader.converters import Autograde, GenerateFeedback
from nbgrader.preprocessors import SaveAutoGrades

from autograder import batch, gradescsv, layout, preprocessors, secret, session
from autograder.preprocessors import SaveAutoGradesAtOnce
from points import total_points
from submissions import db_mean_notebook, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_bookkeeping")   # its module-scoped fixture grades once: every test of the module on one worker
A = "01_rnn"
TOTAL = total_points(A)


def tampered_notebook():
    """The solution with a locked cell edited and a test cell deleted: flagged, graded."""
    nb = student_notebook(A, {"md_step_forward": "## 1. My own words"})
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_rnn_forward"]
    return nb


STUDENTS = {"a_solution": student_notebook(A), "blank": student_notebook(A, released=True),
            "db_mean": db_mean_notebook(), "tampered": tampered_notebook()}
BROKEN = "broken"   # a notebook cut short: scores 0 without being run


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    root = write_submissions(tmp_path_factory.mktemp("bookkeeping") / "submissions", A, STUDENTS)
    good = (root / "a_solution" / A / f"{A}.ipynb").read_text()
    (root / BROKEN / A).mkdir(parents=True)
    (root / BROKEN / A / f"{A}.ipynb").write_text(good[:400])
    return root


def graded(course, submissions):
    """Grade with one worker: (outcomes, grade rows, feedback pages) of every student.

    A cell re-added by the grader gets a random id: pages are compared without cell ids.
    """
    pairs = layout.prepare_course(course, submissions)
    outcomes = batch.autograde(course, pairs, workers=1)
    pages = {s: re.sub(rb'id="cell-id=[^"]*"', b"", p.read_bytes())
             for s, _ in pairs for p in (course / "feedback" / s / A).glob("*.html")}
    return [(o.student, o.ok, o.notes, o.retry) for o in outcomes], gradescsv.grade_rows(course), pages


@pytest.fixture(scope="module", autouse=True)
def one_secret(tmp_path_factory):
    """Both ways grade with one secret (as two courses they would draw two): the same fresh and
    hidden inputs, so the same messages."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(secret.SECRET_ENV, str(tmp_path_factory.mktemp("secret") / "secret"))
        yield


@pytest.fixture(scope="module")
def per_call(submissions, tmp_path_factory):
    """The class graded as nbgrader's API does: an application per call, a Gradebook per step."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(session, "CourseAPI", NbGraderAPI)
        mp.setattr(session, "sharing", contextlib.nullcontext)
        mp.setattr(session, "gradebook", Gradebook)
        return graded(tmp_path_factory.mktemp("per_call") / "course", submissions)


def _counting(monkeypatch, counts, owner, name, key):
    real = getattr(owner, name)

    def counted(*args, **kwargs):
        counts[key] += 1
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, counted)


def test_one_worker_builds_once_reads_once_and_grades_the_same(submissions, per_call, tmp_path, monkeypatch):
    counts, per_submission = Counter(), []
    _counting(monkeypatch, counts, nbgrader.api, "create_engine", "gradebook engine")
    for cls in (Autograde, GenerateFeedback, HTMLExporter):
        _counting(monkeypatch, counts, cls, "__init__", cls.__name__)
    _counting(monkeypatch, counts, Exporter, "_validate_preprocessor", "notebook validated")
    course = tmp_path / "course"
    submitted = (course / "submitted").resolve()
    real_open = io.open

    def reading(file, mode="r", *args, **kwargs):
        if "r" in mode and str(file).endswith(".ipynb") and Path(file).resolve().is_relative_to(submitted):
            counts["submitted notebook read"] += 1
        return real_open(file, mode, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", reading)
    monkeypatch.setattr(io, "open", reading)
    grade_submission = batch.grade_submission

    def grade(grading, student, assignment):
        before = Counter(counts)
        outcome = grade_submission(grading, student, assignment)
        per_submission.append((student, counts - before))
        return outcome
    monkeypatch.setattr(batch, "grade_submission", grade)

    result = graded(course, submissions)
    monkeypatch.undo()

    assert len(per_submission) == len(STUDENTS) + 1
    built = sum((c for _, c in per_submission), Counter())
    assert built["gradebook engine"] <= 2, built   # one per course id (the course's, nbgrader's default)
    assert (built["Autograde"], built["GenerateFeedback"], built["HTMLExporter"]) == (1, 1, 1), built
    for student, c in per_submission:   # the student's notebook: read by us once, by nbgrader once
        assert c["submitted notebook read"] == (1 if student == BROKEN else 2), (student, c)
        # validated once per pass (sanitize, autograde, feedback), not after every preprocessor
        assert c["notebook validated"] == (0 if student == BROKEN else 3), (student, c)
    assert result == per_call
    outcomes, rows, pages = result
    by_student = {r["student"]: r for r in rows}
    assert by_student["a_solution"]["score"] == TOTAL and by_student["blank"]["score"] == 0
    assert 0 < by_student["db_mean"]["score"] < TOTAL
    assert any(f.startswith("edited locked cell md_step_forward") for f in by_student["tampered"]["flags"])
    assert any(f.startswith("deleted cell test_rnn_forward") for f in by_student["tampered"]["flags"])
    failed = [o for o in outcomes if not o[1]]
    assert [o[0] for o in failed] == [BROKEN] and "not a valid notebook" in failed[0][2][0] and not failed[0][3]
    assert set(pages) == set(STUDENTS)


@pytest.fixture
def url(tmp_path, monkeypatch):
    """A SQLite gradebook with assignment "a" of course "course"; nothing shared of it is left after."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])   # alembic
    path = tmp_path / "gradebook.db"
    with Gradebook(f"sqlite:///{path}", "course") as gb:
        gb.add_assignment("a")
    yield f"sqlite:///{path}?timeout=0"
    session.SharedGradebook.release()


def test_a_shared_gradebook_holds_no_transaction_between_uses(url):
    path = url[len("sqlite:///"):].split("?")[0]
    with session.gradebook(url, "course") as gb:
        gb.find_assignment("a")
        gb.add_student("kept")
        gb.db.commit()
    with pytest.raises(RuntimeError), session.gradebook(url, "course") as gb:
        gb.db.add(Student(id="rolled back"))   # written, not committed: the use ends in a rollback
        gb.db.flush()
        raise RuntimeError("a use that fails")
    other = sqlite3.connect(path, timeout=0)   # another process's writer does not wait for a lock
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO student (id) VALUES ('written elsewhere')")
    other.commit()
    other.close()
    with session.gradebook(url, "course") as again:
        assert again is gb
        assert sorted(s.id for s in again.students) == ["kept", "written elsewhere"]


def test_a_replaced_gradebook_file_is_opened_anew(url, tmp_path):
    with session.gradebook(url, "course") as gb:
        gb.find_assignment("a")
    (tmp_path / "gradebook.db").unlink()
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}", "course") as fresh:
        fresh.add_assignment("b")
    with session.gradebook(url, "course") as now:
        assert now is not gb
        with pytest.raises(MissingEntry):
            now.find_assignment("a")
        now.find_assignment("b")


def test_sharing_lasts_only_while_grading(url):
    from nbgrader.preprocessors import saveautogrades

    with session.sharing():
        assert saveautogrades.Gradebook is session.SharedGradebook
        assert saveautogrades.Gradebook(url, "course") is session.gradebook(url, "course")
    assert saveautogrades.Gradebook is Gradebook


def _raised(check, nb):
    try:
        check(copy.deepcopy(nb))
    except Exception as exc:   # what nbgrader's check raises is the point
        return type(exc), str(exc)
    return None


def _meta(nb, gid):
    return next(c.metadata["nbgrader"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


CORRUPT = {
    "none": lambda nb: None,
    "points not a number": lambda nb: _meta(nb, "test_rnn_forward").update(points="two"),
    "no grade id": lambda nb: _meta(nb, "test_rnn_forward").pop("grade_id"),
    "old schema": lambda nb: _meta(nb, "setup").update(schema_version=1),
    "newer schema": lambda nb: _meta(nb, "setup").update(schema_version=9),
    "duplicate grade id": lambda nb: _meta(nb, "test_rnn_forward").update(grade_id="test_rnn_backward"),
}


@pytest.mark.parametrize("corrupt", list(CORRUPT))
def test_schema_kept_checks_metadata_as_nbgrader_does(corrupt):
    from nbgrader.nbgraderformat import MetadataValidator
    from nbgrader.preprocessors import CheckCellMetadata

    nb = student_notebook(A)
    CORRUPT[corrupt](nb)
    expected = _raised(MetadataValidator().validate_nb, nb)
    assert (expected is None) == (corrupt == "none")
    assert _raised(session._KeptValidator().validate_nb, nb) == expected
    assert _raised(lambda n: session.SchemaKept().preprocess(n, {}), nb) == \
        _raised(lambda n: CheckCellMetadata().preprocess(n, {}), nb)


def _graded_cells(failed):
    """A notebook of autograded test cells, 2 points each; those in ``failed`` raised."""
    cells = []
    for i, fails in enumerate(failed):
        cell = new_code_cell(f"assert {not fails}")
        cell.metadata.nbgrader = {"grade": True, "solution": False, "locked": True, "points": 2,
                                  "grade_id": f"test{i}", "schema_version": 3}
        cell.outputs = [new_output("error", ename="AssertionError", evalue="", traceback=[])] if fails else []
        cells.append(cell)
    return new_notebook(cells=cells)


@pytest.fixture
def submission(tmp_path, monkeypatch):
    """A gradebook (nbgrader's default course) with student "s"'s submission of notebook "nb"."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])   # alembic
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(url) as gb:
        gb.add_assignment("a")
        gb.add_notebook("nb", "a")
        for i in range(3):
            gb.add_grade_cell(f"test{i}", "nb", "a", max_score=2, cell_type="code")
        gb.add_student("s")
        gb.add_submission("a", "s")
    yield {"nbgrader": {"notebook": "nb", "assignment": "a", "student": "s", "db_url": url}}
    session.SharedGradebook.release()


def _auto_scores(url):
    with Gradebook(url) as gb:
        return [gb.find_grade(f"test{i}", "nb", "a", "s").auto_score for i in range(3)]


def test_a_notebooks_grades_are_saved_in_one_commit_as_nbgrader_saves_them(submission, monkeypatch):
    commits = Counter()
    real = sqlalchemy.orm.Session.commit
    monkeypatch.setattr(sqlalchemy.orm.Session, "commit", lambda self: commits.update(["commit"]) or real(self))
    with session.sharing():
        with preprocessors.Gradebook(submission["nbgrader"]["db_url"]):   # opened once per process
            pass
        commits.clear()
        SaveAutoGradesAtOnce().preprocess(_graded_cells([False, True, False]), copy.deepcopy(submission))
    assert commits["commit"] == 1
    ours = _auto_scores(submission["nbgrader"]["db_url"])
    commits.clear()
    SaveAutoGrades().preprocess(_graded_cells([False, True, False]), copy.deepcopy(submission))
    # stock: its Gradebook commits once as it opens (the course), then once per cell
    assert commits["commit"] == 1 + 3 and _auto_scores(submission["nbgrader"]["db_url"]) == ours == [2.0, 0.0, 2.0]


def test_a_notebooks_grades_are_saved_all_or_none(submission, monkeypatch):
    real = SaveAutoGrades._add_score

    def fails_on_the_last(self, cell, resources):
        if cell.metadata.nbgrader["grade_id"] == "test2":
            raise RuntimeError("the grader stopped")
        return real(self, cell, resources)
    monkeypatch.setattr(SaveAutoGrades, "_add_score", fails_on_the_last)
    with session.sharing(), pytest.raises(RuntimeError):
        SaveAutoGradesAtOnce().preprocess(_graded_cells([False, False, False]), copy.deepcopy(submission))
    assert _auto_scores(submission["nbgrader"]["db_url"]) == [None, None, None]
