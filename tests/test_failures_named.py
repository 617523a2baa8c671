"""Every failure is named and bounded (#20 item 6, the rest): a read-only course or submissions disk,
a lost Dask scheduler, an empty autograded notebook (what a failed ``--force`` regrade on a full disk
leaves), journals after failures. Each is one line, a non-zero exit where grades are missing, nothing
half written, through the grade and stats commands.
"""
import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from autograder import cli, grader, gradescsv, journal, markers, stats, verdicts
from ci import require_module
from dask_support import dask_cluster
from submissions import solution_cells, student_notebook, write_submissions

A = "01_rnn"
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def grade(course, submissions, *args, wait=True):
    argv = [sys.executable, "-m", "autograder", "grade", str(submissions), "--course", str(course), *args]
    if not wait:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=900)


def one_error_line(stderr):
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.xdist_group("class_01")   # beside the other readers of class_01 (conftest.py)
def test_an_empty_autograded_notebook_is_named_by_stats_and_grades_csv(class_01_copy, capsys):
    course = class_01_copy
    (course / "autograded" / "db_mean" / A / f"{A}.ipynb").write_text("")   # as a full disk leaves it
    assert cli.main(["stats", str(course)]) == 0
    (s,) = stats.class_stats(course)
    assert s.flags["db_mean"][0].startswith(f"{verdicts.UNREADABLE}: {A}.ipynb")
    assert "grade again with --force" in s.flags["db_mean"][0]
    assert verdicts.failures(course, "db_mean", A) == []
    rows = {r["student"]: r for r in gradescsv.grade_rows(course)}
    assert rows["db_mean"]["flags"][0].startswith(verdicts.UNREADABLE)   # grades.csv's flags column
    assert "db_mean" in cli.format_table(list(rows.values()), course)


def read_only(mount):
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)


def test_a_read_only_course_disk_is_one_line_and_changes_nothing(tmpfs_disk, tmp_path):
    subs = write_submissions(tmp_path / "submissions", A, {"ana": student_notebook(A, released=True)})
    course = tmpfs_disk / "course"
    assert grade(course, subs, "--workers", "1").returncode == 0
    csv_before = (course / "grades.csv").read_bytes()
    read_only(tmpfs_disk)
    for args in ([], ["--force"]):
        run = grade(course, subs, "--workers", "1", *args)
        assert run.returncode == 2, run.stdout + run.stderr
        assert "Read-only file system" in one_error_line(run.stderr)
    assert (course / "grades.csv").read_bytes() == csv_before
    assert {r["student"]: r["score"] for r in gradescsv.grade_rows(course)} == {"ana": 0}
    assert cli.main(["stats", str(course), "--out", str(tmp_path / "stats.html")]) == 0   # reading still works
    fresh = grade(tmpfs_disk / "new_course", subs, "--workers", "1")
    assert fresh.returncode == 2 and "Read-only file system" in one_error_line(fresh.stderr)


def test_a_read_only_submissions_disk_is_graded(tmpfs_disk, tmp_path):
    write_submissions(tmpfs_disk / "submissions", A, {"ana": student_notebook(A), "bo": student_notebook(A, released=True)})
    read_only(tmpfs_disk)
    course = tmp_path / "course"
    run = grade(course, tmpfs_disk / "submissions", "--workers", "2")
    assert run.returncode == 0, run.stderr
    assert sorted(r["student"] for r in gradescsv.grade_rows(course)) == ["ana", "bo"]


@pytest.mark.xdist_group("class_01")   # beside the other readers of class_01 (conftest.py)
def test_journals_are_moved_back_without_free_space_and_a_cut_restore_finishes(class_01_copy, monkeypatch):
    """A restore moves files (no space needed); one cut short between two moves is finished by the next."""
    course = class_01_copy
    grading = grader.Grading(str(course.resolve()))
    page = course / "feedback" / "db_mean" / A / f"{A}.html"
    kept_page, kept_nb = page.read_bytes(), (course / "autograded" / "db_mean" / A / f"{A}.ipynb").read_bytes()
    journal.begin(grading, "db_mean", A)
    (course / "autograded" / "db_mean" / A / f"{A}.ipynb").write_text("")   # a grade cut short
    page.write_text("half")
    moved = journal.journal_dir(course, "db_mean", A)
    real = os.replace
    calls = []

    def replace_once(src, dst):   # the restore dies after moving the first folder back
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", replace_once)
    with pytest.raises(OSError):
        journal.restore(grading, "db_mean", A)
    monkeypatch.setattr(os, "replace", real)
    assert moved.exists() and not (moved / "autograded").exists()
    journal.restore(grading, "db_mean", A)   # the next run's restore
    assert not moved.exists()
    assert (course / "autograded" / "db_mean" / A / f"{A}.ipynb").read_bytes() == kept_nb
    assert page.read_bytes() == kept_page
    assert markers.finished(grading, "db_mean", A) is not None


def sleeper():
    """A notebook of exercise 1 whose first answer sleeps 10 s before the solution: in flight
    from its kernel's start (the scheduler is killed then) until well after the loss is seen
    (under a second); the rerun grades it whole again, so every second of it counts twice."""
    first = next(iter(solution_cells(A)))
    return student_notebook(A, {first: "import time\ntime.sleep(10)\n" + solution_cells(A)[first]})


def scheduler_process(address):
    port = address.rsplit(":", 1)[1]
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "scheduler" in cmd and port in cmd:
            return p
    raise AssertionError(f"no Dask scheduler on {address}")


def test_a_lost_dask_scheduler_is_one_line_keeps_what_finished_and_a_rerun_grades_the_rest(tmp_path):
    require_module("dask.distributed", "pip install -r requirements.txt (dask, distributed)")
    subs = write_submissions(tmp_path / "submissions", A, {"quick": student_notebook(A, released=True),
                                                           "slow_1": sleeper(), "slow_2": sleeper()})
    course = tmp_path / "course"
    with dask_cluster(tmp_path, nthreads=2) as address:
        run = grade(course, subs, "--scheduler", address, wait=False)
        inflight = course / ".rnn-course" / "inflight"
        deadline = time.monotonic() + 300
        while not any(p.name.startswith("slow") for p in inflight.glob("*")):   # a sleeper is being graded
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()
            time.sleep(0.2)
        scheduler_process(address).kill()
        out, err = run.communicate(timeout=300)
    assert run.returncode == 1, out + err
    assert "Traceback" not in err and len(err.splitlines()) < 20, err
    lost = [line for line in err.splitlines() if "the Dask scheduler" in line and "was lost" in line]
    assert lost and all(line.startswith(("slow_", "quick")) for line in lost), err
    assert "error: " in err and "not graded (see above); run the same command again" in err
    assert "student" in out and (course / "grades.csv").is_file()   # the table and the CSV, of what finished
    for line in lost:   # stats says why, unless its task, still running on a worker, finished it since
        student = line.split("/", 1)[0]
        assert ("the Dask scheduler" in markers.ungraded_reason(course, student, A)
                or markers.done_marker(course, student, A).exists())
    rerun = grade(course, subs, "--workers", "2")   # no scheduler: journals of tasks cut off are put back first
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(r["student"] for r in gradescsv.grade_rows(course)) == ["quick", "slow_1", "slow_2"]
    assert not list(inflight.glob("*/*"))
    assert all(json.loads(markers.done_marker(course, s, A).read_text())["ok"] for s in ("quick", "slow_1", "slow_2"))
