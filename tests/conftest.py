"""Shared by every test module: the skip count (none allowed on CI), and work done once per session.

* Skips: every skip is counted; with CI=true (tests/ci.py) a run with any skip fails, and the
  count is written to $RNN_SKIP_COUNT_FILE when set (.ci/run prints it).
* ``class_01``: exercise 01's solution, blank release and one partial-credit bug, graded once by
  the batch in this process; tests that write into it take ``class_01_copy``.
* The jail tests' fixtures (tests/jail_support.py): ``needs_bwrap`` and ``needs_cgroups`` (skip,
  or fail on CI, where the sandbox cannot run), ``kernel_start`` (how kernels start: used by
  the jail modules), ``jail_course`` (a small nbgrader course directory for a kernel).
* ``postgres``: a PostgreSQL server of the test's own (tests/pg_server.py), stopped after it;
  ``tmpfs_disk``: a 64 MB tmpfs of the test's own (root only), to fill or make read-only.
* ``paths_class``: the class of tests/test_grader_paths.py graded once on clean code by the grade
  command (also the clean run of tests/test_guards.py).
* The order of the run: the slowest modules first (``SLOW_FIRST``); a run whose xdist groups were
  not applied stops (a group's graded class would be built on both workers).
"""
import contextlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import ci
from ci import on_ci, unavailable
from jail_support import KERNEL_START, REPO, require
from pg_server import PostgresServer, find_bin

from autograder.sandbox import CGROUP_ROOT, Sandbox, cgroup_controllers

SKIPPED = []


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject.toml): as many test processes as the grader has workers, one
    more than the cores (:func:`autograder.scheduling.default_workers`): a test waits on
    kernels, sleepers and subprocesses much of its time, so cores alone would sit idle."""
    from autograder.scheduling import default_workers
    return default_workers()


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        SKIPPED.append(report.nodeid)


# The modules of the longest work (a group, or single tests of a minute or more), longest first
# after the benchmark's (groups, in one run of 7 Dec on this 2-core machine under a load of
# about 4): the kit 200 s, the interrupts 145, "grading" (04, 06, sandbox, isolation) 145,
# throughput 135, mutations 105, "paths_class" (grader paths, guards) 105, "class_01" (its
# first module: failures_named, with the lost Dask scheduler) 120, bounds 135 (60 unloaded),
# the guide 70, semester 85 (single tests), the book 60, attacks 55. Started first
# (pyproject.toml: --no-loadscope-reorder), neither worker begins one of them while the
# other is nearly done with the rest.
SLOW_FIRST = ["test_benchmark",   # first of all: its CPU count wants a worker no test left a process in
              "test_student_kit", "test_interrupt", "test_grading_06_seq2seq", "test_grading_04_bptt",
              "test_throughput", "test_mutations", "test_grader_paths", "test_guards", "test_failures_named",
              "test_bounds", "test_instructor_guide", "test_semester", "test_book_browser", "test_attacks",
              "test_formgrader_resubmission", "test_public_catch"]


@pytest.hookimpl(trylast=True)   # after pytest-xdist's own, which marks the groups
def pytest_collection_modifyitems(config, items):
    """The slowest modules first (SLOW_FIRST), the rest in their order. An xdist group that
    pytest-xdist did not apply stops the run: its tests would be spread over both workers, each
    grading the module's class again (pytest 9.2 ignores how pytest-xdist 3.8 marks a group,
    pytest-xdist#1386: requirements.txt pins pytest 9.1.1)."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))   # stable: the rest keep their order
    if not (hasattr(config, "workerinput") and config.getvalue("loadgroup")):
        return
    lost = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        raise pytest.UsageError(f"pytest-xdist did not group {len(lost)} tests marked xdist_group "
                                f"(first: {lost[0]}): install the pytest of requirements.txt")


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):   # a pytest-xdist worker: the controller counts and decides
        return
    path = os.environ.get("RNN_SKIP_COUNT_FILE")
    if path:
        Path(path).write_text(f"{len(SKIPPED)}\n")
    if on_ci() and SKIPPED and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if hasattr(terminalreporter.config, "workerinput"):
        return
    terminalreporter.write_line(f"skipped: {len(SKIPPED)}" + (" (CI=true: the run fails)" if on_ci() and SKIPPED
                                                              else ""))


@pytest.fixture(scope="session")
def class_01(tmp_path_factory):
    """Exercise 01 graded once: {"submissions", "course", "scores" (student -> (score, max, cells))}.

    Students: "solution", "blank" (the release as is), "db_mean" (one partial-credit bug).
    Read only: a test that writes takes ``class_01_copy``.
    """
    from points import total_points
    from submissions import db_mean_notebook, grade_students, student_notebook

    a = "01_rnn"
    root = tmp_path_factory.mktemp("class_01")
    course, outcomes, rows = grade_students(root, a, {"solution": student_notebook(a),
                                                      "blank": student_notebook(a, released=True),
                                                      "db_mean": db_mean_notebook()}, workers=1)
    assert all(o.ok and not o.skipped for o in outcomes.values()), outcomes
    scores = {s: (r["score"], r["max_score"], r["cells"]) for s, r in rows.items()}
    total = total_points(a)
    assert scores["solution"][:2] == (total, total) and scores["blank"][0] == 0
    assert 0 < scores["db_mean"][0] < total
    assert scores["db_mean"][2]["test_rnn_step_backward"] < scores["solution"][2]["test_rnn_step_backward"]
    return {"submissions": root / "submissions", "course": course, "scores": scores}


@pytest.fixture
def class_01_copy(class_01, tmp_path):
    """A private copy of ``class_01``'s graded course (gradebook, done markers and all)."""
    course = tmp_path / "course"
    shutil.copytree(class_01["course"], course)
    return course


@pytest.fixture(scope="session")
def paths_class(tmp_path_factory):
    """tests/test_grader_paths.py's class graded by the command: {"course", "code", "csv", "out", "err"}."""
    from test_grader_paths import grade_class

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        course, code, own_csv = grade_class(tmp_path_factory.mktemp("paths_class"))
    return {"course": course, "code": code, "csv": own_csv, "out": out.getvalue(), "err": err.getvalue()}


# ---------------------------------------------------------------- the jail tests (tests/jail_support.py)

@pytest.fixture
def needs_bwrap():
    require(shutil.which(Sandbox().bwrap), "bubblewrap (bwrap) is not installed")


@pytest.fixture
def needs_cgroups(needs_bwrap):
    require(cgroup_controllers(), f"no writable pids and memory cgroups (cgroup v1) under {CGROUP_ROOT}")


@pytest.fixture
def kernel_start(request, monkeypatch):
    """"forked" unless the test is marked ``BOTH_WAYS`` and this is its "one by one" run."""
    how = getattr(request, "param", "forked")
    monkeypatch.setitem(KERNEL_START, "forked", how == "forked")
    return how


@pytest.fixture
def jail_course(tmp_path):
    """nbgrader's layout, with the files a cheater wants; the kernel runs in autograded/alice/01_rnn."""
    root = tmp_path / "course"
    notebook = (REPO / "solutions" / "01_rnn" / "01_rnn.ipynb").read_text()
    files = {
        "gradebook.db": "SQLite format 3\0 the gradebook",
        "source/01_rnn/01_rnn.ipynb": notebook,
        "release/01_rnn/01_rnn.ipynb": notebook,
        "submitted/alice/01_rnn/01_rnn.ipynb": notebook,
        "submitted/bob/01_rnn/01_rnn.ipynb": notebook,
        "autograded/bob/01_rnn/01_rnn.ipynb": notebook,
        "autograded/alice/gradebook.db": "SQLite format 3\0 beside the notebook's folder",
        "autograded/alice/01_rnn/01_rnn.ipynb": notebook,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


# ---------------------------------------------------------------- servers and disks of a test's own

@pytest.fixture
def postgres():
    ci.require(find_bin(), "PostgreSQL server programs (initdb, pg_ctl, createdb) not installed",
               "apt-get install postgresql (scripts/system-deps.sh)")
    with PostgresServer() as server:   # stopped also when start() or the test failed
        yield server


@pytest.fixture
def tmpfs_disk(tmp_path):
    """A 64 MB tmpfs mounted at ``tmp_path / "disk"`` (root only): a disk to fill or make read-only."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode:
        unavailable(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})", "run the tests as root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
