"""Stopping a batch is safe: Ctrl-C or SIGTERM mid-batch, then a rerun, equals one uninterrupted run.

A class of 6 submissions of exercise 01 is graded by ``python -m autograder grade`` with
2 worker processes, in the students' order; the batch is stopped once some submissions are
done and others are in flight (2 done, 2 in flight: the 2 sleepers, last, not begun, and
none may start after the signal): SIGINT to the whole process group (a terminal's Ctrl-C),
SIGINT to the main process only, SIGTERM to the main process. The command must stop,
starting nothing new, print the table of what finished, and leave in the gradebook only
grades of finished submissions (no "graded with 0" for work in flight); a plain rerun
then completes it.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from autograder import gradescsv
from ci import require_module
from dask_support import dask_cluster
from points import total_points
from submissions import db_mean_notebook, solution_cells, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_interrupt")   # its module-scoped fixture grades once: every test of the module on one worker
A = "01_rnn"
TOTAL = total_points(A)
SOL = solution_cells(A)
CLASS = {
    **{f"right_{k}": student_notebook(A) for k in range(2)},
    "blank": student_notebook(A, released=True),
    "db_mean": db_mean_notebook(),
    "slow_0": student_notebook(A, {"rnn_forward": "import time; time.sleep(4)\n" + SOL["rnn_forward"]}),
    "slow_1": student_notebook(A, {"rnn_forward": "import time; time.sleep(4)\n" + SOL["rnn_forward"]}),
}


def scores(course):
    return {r["student"]: (r["score"], r["max_score"], r["cells"]) for r in gradescsv.grade_rows(course)}


def grade(course, submissions, *args, **kwargs):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(submissions), "--course", str(course),
                             "--workers", "2", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True, **kwargs)


def done_markers(course):
    return {p.parent.name for p in (course / ".rnn-course" / "done").glob(f"*/{A}.json")}


def in_flight(course):
    return {p.parent.name for p in (course / ".rnn-course" / "inflight").glob(f"*/{A}")}


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    return write_submissions(tmp_path_factory.mktemp("interrupt") / "submissions", A, CLASS)


@pytest.fixture(scope="module")
def reference(submissions, tmp_path_factory):
    """The class graded by one uninterrupted run: (course, scores)."""
    course = tmp_path_factory.mktemp("reference") / "course"
    run = grade(course, submissions)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    by_student = scores(course)
    assert by_student["right_0"][0] == TOTAL and by_student["blank"][0] == 0
    assert 0 < by_student["db_mean"][0] < TOTAL
    return course, by_student


def graded_since(course, start):
    return {p.parent.name for p in (course / ".rnn-course" / "done").glob(f"*/{A}.json")
            if p.stat().st_mtime >= start}


def stop_midway(course, submissions, send, *args):
    """Start a batch, signal it once 2+ submissions are done and others in flight.

    Returns (run, stdout, stderr, start, begun): ``begun``, the submissions done or in flight
    when the signal went (the batch may finish those, and must start no other)."""
    start = time.time() - 1
    run = grade(course, submissions, *args)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len(graded_since(course, start)) >= 2 and in_flight(course):
            break
        assert run.poll() is None, run.communicate()
        time.sleep(0.1)
    else:
        pytest.fail("the batch never had 2 submissions done and one in flight")
    begun = graded_since(course, start) | in_flight(course)
    send(run)
    begun |= in_flight(course)
    out, err = run.communicate(timeout=600)   # a hang guard, not a measure: the test is what it did
    return run, out, err, start, begun


SIGNALS = {
    "SIGINT to the process group": lambda run: os.killpg(run.pid, signal.SIGINT),
    "SIGINT to the main process": lambda run: os.kill(run.pid, signal.SIGINT),
    "SIGTERM to the main process": lambda run: os.kill(run.pid, signal.SIGTERM),
}


def check_stopped(course, reference, run, out, err, start, begun, before=None):
    assert run.returncode == 130, (out, err)
    assert graded_since(course, start) <= begun, "a submission was started after the signal"
    assert "interrupted" in err and "Traceback" not in err, err
    assert not in_flight(course), "a journal of work in flight was left behind"
    now = scores(course)
    table = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    finished = done_markers(course)
    assert finished and len(finished) < len(CLASS)
    for student, value in now.items():   # whatever is in the gradebook is a real grade
        expected = reference[student] if student in finished else (before or {}).get(student)
        assert value == expected, (student, value, expected)
    for student in finished:
        assert student in table and f"{reference[student][0]:.2f} / {TOTAL:g}" in table[student], out
    return finished


@pytest.mark.parametrize("how", list(SIGNALS))
def test_stop_then_resume_equals_one_run(how, submissions, reference, tmp_path):
    course = tmp_path / "course"
    run, out, err, start, begun = stop_midway(course, submissions, SIGNALS[how])
    finished = check_stopped(course, reference[1], run, out, err, start, begun)
    print(f"{how}: stopped with {len(finished)}/{len(CLASS)} done")

    resume = grade(course, submissions)
    out, err = resume.communicate(timeout=600)
    assert resume.returncode == 0, err
    assert f"{len(finished)} submission(s) graded before and unchanged were not regraded" in out
    assert scores(course) == reference[1]


def test_stopping_a_forced_regrade_keeps_every_earlier_grade(submissions, reference, tmp_path):
    course = tmp_path / "course"
    shutil.copytree(reference[0], course)
    run, out, err, start, begun = stop_midway(course, submissions, SIGNALS["SIGINT to the process group"], "--force")
    assert run.returncode == 130, err
    assert graded_since(course, start) <= begun, "a submission was started after the signal"
    assert not in_flight(course)
    assert scores(course) == reference[1], "a submission in flight lost its grade"
    assert done_markers(course) == set(CLASS)
    resume = grade(course, submissions)
    out, err = resume.communicate(timeout=600)
    assert resume.returncode == 0, err
    assert scores(course) == reference[1]


def test_stopping_a_dask_batch_then_resuming_equals_one_run(submissions, reference, tmp_path):
    require_module("dask.distributed", "pip install -r requirements.txt (dask, distributed)")
    course = tmp_path / "course"
    with dask_cluster(tmp_path, nthreads=2) as address:
        run, out, err, start, begun = stop_midway(course, submissions, SIGNALS["SIGINT to the process group"],
                                             "--scheduler", address)
        check_stopped(course, reference[1], run, out, err, start, begun)
        resume = grade(course, submissions, "--scheduler", address)
        out, err = resume.communicate(timeout=600)
        assert resume.returncode == 0, err
    assert scores(course) == reference[1]
