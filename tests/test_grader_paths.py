"""Paths of the grader that no other test takes, each through the real command or batch:

the whole-notebook time limit (``--student-timeout``); a cell after the test cells that prints
what the kernel saw of them shows no hidden case (SealTests); kernels started one by one
(``Sandbox.fork_kernels = False``) and the fall-back when the zygote fails; ``Sandbox.required`` in a batch; late penalties from real
timestamps and a real due date into the Canvas CSV; ``grade --csv``; ``grade --db`` and
``stats --db`` on PostgreSQL. Each grades a class of one or two, in this process
(``--workers 1``), so a configuration set the way the instructors' guide says (in
``configure``) reaches the batch as it would. The checks are tests/guards.py's.
"""
import csv
import os
import subprocess
import sys

import pytest
from nbformat.v4 import new_code_cell

from autograder import cli, forkserver, gradescsv, grader, sandbox, verdicts
from ci import require
from guards import (assert_every_student_graded, assert_feedback_hides_hidden_tests, assert_later_cells_saw_no_hidden_case,
                    assert_stopped_at_time_limit)
from points import total_points
from submissions import solution_cells, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("paths_class")   # reads the session's paths_class (conftest.py): graded on one worker only
A = "01_rnn"
TOTAL = total_points(A)
SOL = solution_cells(A)
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}

STUDENT_TIMEOUT = 5
SLEEPER = student_notebook(A, {"rnn_forward": "import time\ntime.sleep(10)\n" + SOL["rnn_forward"]})
#: The test cells of 01 after rnn_forward: never reached once the time limit stopped the notebook there.
AFTER_SLEEP = ("test_rnn_forward", "test_rnn_backward")
LATE_MARKER = "LATE-CELL-SAYS"
LATE = student_notebook(A)
LATE.cells.append(new_code_cell(   # prints what the kernel saw of the test cells: their source, hidden or not
    "print('LATE-CELL' + '-SAYS', [line for line in In if 'check(' in line])"))
CLASS = {"sleeper": SLEEPER, "late": LATE}


def configured(monkeypatch, **settings):
    """The batch's configuration with ``settings`` ("Class.trait": value) added, as in ``configure``."""
    real = grader.configure

    def configure(c, *args, **kwargs):
        c = real(c, *args, **kwargs)
        for name, value in settings.items():
            owner, trait = name.split(".")
            setattr(getattr(c, owner), trait, value)
        return c
    monkeypatch.setattr(grader, "configure", configure)


def kernel_starts(monkeypatch):
    """A list that gets, for every grading kernel started, whether the zygote forked it."""
    seen, real = [], sandbox.SandboxedKernelManager.format_kernel_cmd

    def format_kernel_cmd(self, extra_arguments=None):
        argv = real(self, extra_arguments)
        seen.append(self.server is not None)
        return argv
    monkeypatch.setattr(sandbox.SandboxedKernelManager, "format_kernel_cmd", format_kernel_cmd)
    return seen


def grade(tmp_path, students, *options):
    """``python -m autograder grade`` (its main, in this process) on ``students``: (course, exit code)."""
    subs = write_submissions(tmp_path / "submissions", A, students)
    course = tmp_path / "course"
    code = cli.main(["grade", str(subs), "--course", str(course), "--workers", "1", *options])
    return course, code


def scores(course, db_url=""):
    return {r["student"]: r["score"] for r in gradescsv.grade_rows(course, db_url)}


def grade_class(tmp_path):
    """The sleeper (over its time limit) and the late printer graded by the command, with ``--csv``."""
    own_csv = tmp_path / "marks.csv"
    course, code = grade(tmp_path, CLASS, "--student-timeout", str(STUDENT_TIMEOUT), "--timeout", "60",
                         "--csv", str(own_csv))
    return course, code, own_csv


def check_class(course):
    """What tests/guards.py demands of that class (tests/test_guards.py plants what each check is for)."""
    return {"every student graded": lambda: assert_every_student_graded(course, CLASS, A),
            "the time limit stops a notebook": lambda: assert_stopped_at_time_limit(
                course, "sleeper", A, STUDENT_TIMEOUT, AFTER_SLEEP),
            "later cells see no hidden case": lambda: assert_later_cells_saw_no_hidden_case(
                course, "late", A, LATE_MARKER),
            "no hidden test in feedback": lambda: assert_feedback_hides_hidden_tests(course, CLASS, A)}


def test_student_timeout_late_outputs_and_csv_through_the_command(paths_class):
    course, own_csv = paths_class["course"], paths_class["csv"]
    assert paths_class["code"] == 0, paths_class["err"]
    for check in check_class(course).values():
        check()
    assert scores(course)["late"] == TOTAL          # the other student: unaffected by the sleeper
    assert not [f for f in verdicts.review_flags(course, "late", A) if "after hidden tests" in f]   # nothing ran after them
    # grade --csv: the grades go where it says, not to the course's default
    with own_csv.open(newline="") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(CLASS) and float(rows["late"]["score"]) == TOTAL
    assert float(rows["sleeper"]["score"]) < TOTAL and not (course / "grades.csv").exists()
    assert f"grades written to {own_csv}" in paths_class["out"]


@pytest.mark.parametrize("how", ["forked", "fork_kernels=False", "the zygote fails"])
def test_kernels_start_forked_one_by_one_or_after_the_zygote_failed(tmp_path, monkeypatch, how):
    require(not sandbox.Sandbox().problems(), "the grading sandbox is incomplete here",
            "bash scripts/system-deps.sh as root (bubblewrap), cgroup v1 pids and memory controllers")
    if how == "fork_kernels=False":
        configured(monkeypatch, **{"Sandbox.fork_kernels": False})
    elif how == "the zygote fails":   # it starts, then reports what a system without user namespaces does
        monkeypatch.setattr(forkserver.ForkServer, "_ready", lambda self, seconds: {"namespaces": False})
    forked = kernel_starts(monkeypatch)
    course, code = grade(tmp_path, {"solution": student_notebook(A)})
    assert code == 0
    assert forked == [how == "forked"], forked
    assert scores(course) == {"solution": TOTAL}
    assert_every_student_graded(course, ["solution"], A)


def test_a_required_sandbox_that_cannot_be_built_grades_nobody(tmp_path, monkeypatch, capsys):
    configured(monkeypatch, **{"Sandbox.required": True, "Sandbox.bwrap": "/nonexistent/bwrap"})
    course, code = grade(tmp_path, {"solution": student_notebook(A)})
    err = capsys.readouterr().err
    assert "solution/01_rnn: not graded" in err and "bubblewrap" in err, err
    assert scores(course).get("solution") in (None, 0)
    assert not (course / "autograded" / "solution" / A / f"{A}.ipynb").exists()


def test_a_required_sandbox_that_can_be_built_grades(tmp_path, monkeypatch):
    require(not sandbox.Sandbox().problems(), "the grading sandbox is incomplete here",
            "bash scripts/system-deps.sh as root (bubblewrap), cgroup v1 pids and memory controllers")
    configured(monkeypatch, **{"Sandbox.required": True})
    course, code = grade(tmp_path, {"solution": student_notebook(A)})
    assert code == 0 and scores(course) == {"solution": TOTAL}


def nbgrader(course, *args):
    run = subprocess.run(["nbgrader", *args], cwd=course, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def test_late_penalty_from_timestamps_and_due_date_reaches_the_canvas_csv(tmp_path, monkeypatch, capsys):
    """nbgrader's own way: due date recorded with nbgrader, timestamp.txt beside the notebooks, a plugin
    of one's own (nbgrader's SubMarks) in ``configure``: the course's policy (tests/test_course_settings.py)
    leaves it alone, and the Canvas CSV subtracts what nbgrader computed."""
    course = tmp_path / "course"
    assert cli.main(["init", "--course", str(course)]) == 0
    nbgrader(course, "db", "assignment", "add", A, "--duedate=2026-03-01 17:00:00 UTC")
    configured(monkeypatch, **{"AssignLatePenalties.plugin_class": "late_penalty.SubMarks"})
    students = {"on_time": student_notebook(A), "late": student_notebook(A)}
    subs = write_submissions(tmp_path / "submissions", A, students)
    (subs / "on_time" / A / "timestamp.txt").write_text("2026-03-01 16:59:00 UTC\n")
    (subs / "late" / A / "timestamp.txt").write_text("2026-03-01 19:30:00 UTC\n")   # 2.5 h late: 3 points
    assert cli.main(["grade", str(subs), "--course", str(course), "--workers", "1"]) == 0
    assert scores(course) == {"on_time": TOTAL, "late": TOTAL}   # raw scores in grades.csv
    canvas = tmp_path / "canvas.csv"
    assert cli.main(["stats", str(course), "--canvas", str(canvas), "--points", f"{A}=20"]) == 0
    lines = list(csv.reader(canvas.open(newline="")))
    assert {line[3]: float(line[-1]) for line in lines[2:]} == {"on_time": 20.0, "late": 20.0 * (TOTAL - 3) / TOTAL}


def test_grade_and_stats_on_postgresql_through_the_command_line(postgres, tmp_path, capsys):
    students = {"solution": student_notebook(A), "blank": student_notebook(A, released=True)}
    course, code = grade(tmp_path, students, "--db", postgres.url)
    assert code == 0, capsys.readouterr().err
    assert not list(course.rglob("gradebook.db")), "a SQLite gradebook was written beside PostgreSQL"
    assert scores(course, postgres.url) == {"solution": TOTAL, "blank": 0}
    assert_every_student_graded_in(course, postgres.url, students)
    report, canvas = tmp_path / "stats.html", tmp_path / "canvas.csv"
    assert cli.main(["stats", str(course), "--db", postgres.url, "--out", str(report), "--canvas", str(canvas)]) == 0
    assert "1 with zero" in capsys.readouterr().out
    lines = list(csv.reader(canvas.open(newline="")))
    assert {line[3]: float(line[-1]) for line in lines[2:]} == {"solution": float(TOTAL), "blank": 0.0}
    from page_text import visible_text
    assert "01_rnn" in visible_text(report.read_text())


def assert_every_student_graded_in(course, db_url, students):
    rows = {r["student"] for r in gradescsv.grade_rows(course, db_url)}
    assert rows == set(students), rows
