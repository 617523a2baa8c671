"""Grading at scale: PostgreSQL gradebook, Dask and worker processes, resumable batches.

Every way of running a batch must give the scores of the plain one-process run.
"""
import os
import re
import subprocess
import sys

import nbformat
import pytest

from autograder import batch, cli, gradescsv, grader, layout
from ci import require_module
from dask_support import dask_cluster
from points import total_points
from submissions import db_mean_notebook, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("class_01")   # reads the session's class_01 (conftest.py): graded on one worker only
A = "01_rnn"
TOTAL = total_points(A)
STUDENTS = {
    "solution": student_notebook(A),
    "blank": student_notebook(A, released=True),
    "db_mean": db_mean_notebook(),
}


def scores(rows):
    """student -> (score, max score, per-cell scores): what must not depend on how a batch ran."""
    return {r["student"]: (r["score"], r["max_score"], r["cells"]) for r in rows}


def check_expected(by_student):
    assert by_student["solution"][:2] == (TOTAL, TOTAL)
    assert by_student["blank"][0] == 0
    assert 0 < by_student["db_mean"][0] < TOTAL
    assert by_student["db_mean"][2]["test_rnn_step_backward"] < by_student["solution"][2]["test_rnn_step_backward"]


def graded_files(course, student):
    return [p for stage in ("autograded", "feedback") for p in (course / stage / student / A).glob("*")]


def mtimes(course):
    return {s: (course / "autograded" / s / A / f"{A}.ipynb").stat().st_mtime_ns for s in STUDENTS}


@pytest.fixture
def submissions(class_01):
    return class_01["submissions"]


@pytest.fixture
def reference(class_01):
    """The three submissions graded in one process, one at a time (tests/conftest.py): (course, scores)."""
    check_expected(class_01["scores"])
    return class_01["course"], class_01["scores"]


@pytest.fixture
def graded_copy(class_01_copy):
    """A private copy of the graded reference course (its SQLite gradebook and done markers included)."""
    return class_01_copy


def test_postgresql_gradebook(postgres, submissions, tmp_path, request):
    import sqlalchemy as sa

    reference = request.getfixturevalue("reference")   # after the server: no grading when skipped
    course = tmp_path / "course"
    pairs = layout.prepare_course(course, submissions)
    outcomes = batch.autograde(course, pairs, workers=2, db_url=postgres.url)
    assert all(o.ok for o in outcomes), outcomes
    by_student = scores(gradescsv.grade_rows(course, postgres.url))
    check_expected(by_student)
    assert by_student == reference[1]
    assert not list(course.rglob("gradebook.db")), "a SQLite gradebook was written next to PostgreSQL"
    engine = sa.create_engine(postgres.url)
    try:
        with engine.connect() as db:
            assert db.execute(sa.text("select count(*) from submitted_assignment")).scalar() == 3
    finally:
        engine.dispose()


def test_dask_local_cluster_gives_the_same_scores(submissions, reference, tmp_path):
    require_module("dask.distributed", "pip install -r requirements.txt (dask, distributed)")
    course = tmp_path / "course"
    pairs = layout.prepare_course(course, submissions)
    outcomes = batch.autograde(course, pairs, workers=2, scheduler="local")
    assert all(o.ok for o in outcomes), outcomes
    assert sorted((o.student, o.assignment) for o in outcomes) == sorted(pairs)
    assert scores(gradescsv.grade_rows(course)) == reference[1]


@pytest.fixture
def dask_cluster_with_threads(tmp_path):
    require_module("dask.distributed", "pip install -r requirements.txt (dask, distributed)")
    with dask_cluster(tmp_path, nthreads=2) as address:
        yield address


def test_dask_worker_with_two_threads_gives_the_same_scores(dask_cluster_with_threads, submissions, reference,
                                                           tmp_path):
    # nbgrader's autograde sets and deletes NBGRADER_EXECUTION in os.environ: two grades in
    # threads of one process used to race on it and score 0. Each task has its own process now.
    course = tmp_path / "course"
    pairs = layout.prepare_course(course, submissions)
    outcomes = batch.autograde(course, pairs, scheduler=dask_cluster_with_threads)
    assert all(o.ok and not o.retry for o in outcomes), outcomes
    assert scores(gradescsv.grade_rows(course)) == reference[1]


def test_worker_processes_and_cli_progress_bar(submissions, reference, tmp_path):
    course = tmp_path / "course"
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    run = subprocess.run([sys.executable, "-m", "autograder", "grade", str(submissions), "--course", str(course),
                          "--workers", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert scores(gradescsv.grade_rows(course)) == reference[1]
    # tqdm's bar on stderr, ending at 3 of 3; the table on stdout, not mixed with the bar
    assert "autograding" in run.stderr and "3/3" in run.stderr and "notebook" in run.stderr, run.stderr
    assert "autograding" not in run.stdout
    table = run.stdout.splitlines()
    assert table[0].split()[:3] == ["student", "assignment", "score"], run.stdout
    for student, line in [(s, next(ln for ln in table if ln.startswith(s + " "))) for s in STUDENTS]:
        assert f"{reference[1][student][0]:.2f} / {TOTAL:g}" in line


def test_resume_skips_unchanged_submissions(graded_copy, reference, tmp_path, monkeypatch):
    course, by_student = graded_copy, reference[1]
    pairs = [(s, A) for s in sorted(STUDENTS)]
    before = mtimes(course)

    graded_now, grade_submission = [], batch.grade_submission   # the work done, not the time it took
    monkeypatch.setattr(batch, "grade_submission", lambda g, s, a: graded_now.append(s) or grade_submission(g, s, a))
    outcomes = batch.autograde(course, pairs, workers=1, force=False)
    monkeypatch.undo()
    assert all(o.skipped and o.ok for o in outcomes), outcomes
    assert graded_now == [], "an unchanged submission was graded again"
    assert mtimes(course) == before, "a skipped submission was graded again"
    assert scores(gradescsv.grade_rows(course)) == by_student

    # The blank submission is handed in again, now complete: only it is graded again.
    changed = tmp_path / "resubmitted"
    write_submissions(changed, A, {**STUDENTS, "blank": student_notebook(A)})
    assert layout.prepare_course(course, changed) == pairs
    outcomes = {o.student: o for o in batch.autograde(course, pairs, workers=1, force=False)}
    assert [s for s, o in outcomes.items() if not o.skipped] == ["blank"]
    after = mtimes(course)
    assert after["blank"] != before["blank"]
    assert {s: t for s, t in after.items() if s != "blank"} == {s: t for s, t in before.items() if s != "blank"}
    now = scores(gradescsv.grade_rows(course))
    assert now["blank"] == by_student["solution"]
    assert {s: v for s, v in now.items() if s != "blank"} == {s: v for s, v in by_student.items() if s != "blank"}

    outcomes = batch.autograde(course, pairs, workers=1, force=True)
    assert not any(o.skipped for o in outcomes) and all(o.ok for o in outcomes), outcomes
    assert all(t != after[s] for s, t in mtimes(course).items()), "force=True did not grade everything again"
    assert scores(gradescsv.grade_rows(course)) == now


def test_failed_regrade_leaves_no_stale_score(graded_copy, reference):
    course = graded_copy
    assert scores(gradescsv.grade_rows(course))["solution"][:2] == (TOTAL, TOTAL)
    assert graded_files(course, "solution")
    path = course / "submitted" / "solution" / A / f"{A}.ipynb"
    path.write_text(nbformat.writes(STUDENTS["solution"])[:500])   # cut short: not a notebook any more

    outcomes = {o.student: o for o in batch.autograde(course, [(s, A) for s in sorted(STUDENTS)], force=False)}
    failed = outcomes["solution"]
    assert not failed.ok and not failed.skipped and "not a valid notebook" in failed.message, failed
    assert all(o.skipped for s, o in outcomes.items() if s != "solution")
    by_student = scores(gradescsv.grade_rows(course))
    assert by_student["solution"][0] == 0, "the score of the earlier, correct notebook is still there"
    assert by_student["solution"][1] == TOTAL
    assert not any(by_student["solution"][2].values())
    assert graded_files(course, "solution") == [], "stale autograded or feedback files left behind"
    assert {s: v for s, v in by_student.items() if s != "solution"} == \
           {s: v for s, v in reference[1].items() if s != "solution"}


def test_a_grader_failure_is_never_done(graded_copy, submissions, reference, monkeypatch, tmp_path):
    course, pairs = graded_copy, [(s, A) for s in sorted(STUDENTS)]
    real = grader.Grading.api

    class Failing:
        """The grader's own failure for one student (a busy sandbox), as nbgrader reports it."""
        def __init__(self, api):
            self.api = api

        def __getattr__(self, name):
            return getattr(self.api, name)

        def autograde(self, assignment, student, **kwargs):
            if student == "solution":
                return {"success": False, "log": "[ERROR] cannot create the sandbox's cgroup: device busy"}
            return self.api.autograde(assignment, student, **kwargs)

    monkeypatch.setattr(grader.Grading, "api", lambda self: Failing(real(self)))
    # A forced regrade that fails keeps the earlier grade, its files and its done marker.
    outcomes = {o.student: o for o in batch.autograde(course, pairs, workers=1, force=True)}
    failed = outcomes["solution"]
    assert not failed.ok and failed.retry, failed
    assert "the grader failed: cannot create the sandbox's cgroup: device busy" in failed.message
    assert scores(gradescsv.grade_rows(course)) == reference[1], "the earlier grade was not kept"
    assert graded_files(course, "solution"), "the earlier feedback was not kept"
    # A first grade that fails records nothing and is not done: the next plain run grades it.
    fresh = tmp_path / "fresh"
    outcomes = {o.student: o for o in batch.autograde(fresh, layout.prepare_course(fresh, submissions), workers=1)}
    assert outcomes["solution"].retry and not outcomes["solution"].ok
    assert "solution" not in scores(gradescsv.grade_rows(fresh)) and not graded_files(fresh, "solution")
    table = cli.format_table(gradescsv.grade_rows(fresh), fresh, list(outcomes.values()))
    assert re.search(r"^solution\s+01_rnn\s+-\s+not graded, the grader failed", table, re.M), table

    monkeypatch.undo()
    outcomes = batch.autograde(fresh, pairs, workers=1, force=False)
    assert [o.student for o in outcomes if not o.skipped] == ["solution"]
    assert all(o.ok for o in outcomes)
    assert scores(gradescsv.grade_rows(fresh)) == reference[1]
