"""A semester without surprises (#20), through the grade and stats commands where an instructor meets it.

A release that changes nothing leaves the kit's data byte for byte; a fresh course graded
by many workers has no race, and a second grade on a course refuses while the first runs;
timestamp.txt is read in every form and zone, or graded and flagged; stats lists every
submission, ties, first problems, id collisions and roster matching; the workers die with
the command (kill -9); a full disk is named and exits non-zero.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from rnnkit import expected

from autograder import batch, gradescsv, grader, kitdata, layout, markers, verdicts
from submissions import REPO, solution_cells, student_notebook, write_submissions


def test_release_leaves_unchanged_kit_data_byte_identical(tmp_path):
    kit_data = tmp_path / "expected.npz"
    kitdata.write(REPO / "solutions", kit_data)
    first = kit_data.read_bytes()
    kit_data.touch()
    stamps = kitdata.write(REPO / "solutions", kit_data)
    assert kit_data.read_bytes() == first
    assert expected.ShippedData(kit_data).stamps == stamps
    kit_data.unlink()   # a fresh write of the same data is the same bytes (fixed zip dates, order)
    kitdata.write(REPO / "solutions", kit_data)
    assert kit_data.read_bytes() == first


def test_last_bit_noise_keeps_the_file_and_a_real_change_rewrites_it(tmp_path):
    path, K = tmp_path / "expected.npz", expected.entry_key("t", "c")
    records = {K: {"inputs": {"x": np.arange(3), "w": np.linspace(0, 1, 4)},
                       "outputs": [np.array([[0.1, 0.2], [0.3, 1e-3]])]}}
    tasks = {"01_a": ["t"]}
    stamps = expected.save(path, records, tasks)
    first = path.read_bytes()
    noisy = {K: {"inputs": {"x": np.arange(3), "w": np.linspace(0, 1, 4) * (1 + 1e-15)},
                     "outputs": [np.array([[0.1, 0.2], [0.3, 1e-3]]) + 1e-17]}}
    assert expected.save(path, noisy, tasks) == stamps
    assert path.read_bytes() == first
    changed = {K: {"inputs": records[K]["inputs"], "outputs": [np.array([[0.1, 0.2], [0.3, 2e-3]])]}}
    expected.save(path, changed, tasks)
    assert path.read_bytes() != first
    np.testing.assert_array_equal(expected.ShippedData(path).outputs("t", "c")[0], [[0.1, 0.2], [0.3, 2e-3]])
    added = {**changed, expected.entry_key("t", "d"): {"outputs": [np.zeros(2)]}}
    before = path.read_bytes()
    expected.save(path, added, tasks)
    assert path.read_bytes() != before and expected.ShippedData(path).outputs("t", "d")[0].shape == (2,)


def grade(course, submissions, *args):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run([sys.executable, "-m", "autograder", "grade", str(submissions), "--course", str(course),
                           *args], capture_output=True, text=True, env=env, timeout=900)


def blank_class(root, students, assignments):
    for a in assignments:
        write_submissions(root, a, {s: student_notebook(a, released=True) for s in students})
    return root


def test_fresh_course_graded_by_many_workers_has_no_race(tmp_path):
    students, assignments = ["ana", "bo", "cy"], ["01_rnn", "02_long_term"]
    submissions = blank_class(tmp_path / "submissions", students, assignments)
    run = grade(tmp_path / "course", submissions, "--workers", "4")
    assert run.returncode == 0, run.stderr
    assert "UNIQUE" not in run.stdout + run.stderr and "grader failed" not in run.stderr
    rows = gradescsv.grade_rows(tmp_path / "course")
    assert sorted((r["student"], r["assignment"]) for r in rows) == [(s, a) for s in students for a in assignments]


HOLDER = """
import sys, time
from autograder import courselock
with courselock.holding(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_second_grade_on_a_course_refuses_while_the_first_runs_and_a_dead_holder_blocks_nothing(tmp_path):
    course = tmp_path / "course"
    submissions = blank_class(tmp_path / "submissions", ["ana"], ["01_rnn"])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(course)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        run = grade(course, submissions)
        assert run.returncode == 2
        (said,) = run.stderr.strip().splitlines()
        assert said.startswith("error: ") and f"pid {holder.pid} on {socket.gethostname()}" in said
        assert "wait for it" in said
        assert not (course / "submitted").exists() and not (course / "gradebook.db").exists()
    finally:
        holder.kill()   # SIGKILL: the lock file stays, its lock goes with the process
        holder.wait()
    assert (course / ".rnn-course" / "grade.lock").exists()
    run = grade(course, submissions)
    assert run.returncode == 0, run.stderr
    assert [r["student"] for r in gradescsv.grade_rows(course)] == ["ana"]


class _Seen(Exception):
    pass


def test_every_student_is_in_the_gradebook_before_any_worker_starts(tmp_path, monkeypatch):
    """The race of the test above is narrow; its cause is checked here without timing."""
    course = tmp_path / "course"
    pairs = layout.prepare_course(course, blank_class(tmp_path / "submissions", ["ana", "bo"], ["01_rnn"]))

    def run(task, todo, **kwargs):
        with todo[0][0].gradebook() as gb:
            raise _Seen(sorted(s.id for s in gb.students))
    monkeypatch.setattr(batch.scheduling, "run", run)
    with pytest.raises(_Seen) as seen:
        batch.autograde(course, pairs, workers=2)
    assert seen.value.args[0] == ["ana", "bo"]


STAMPS = {   # what a timestamp.txt says -> the UTC time the gradebook must hold (None: flagged)
    "exchange_utc": ("2024-03-01 12:00:00.000000 UTC", datetime(2024, 3, 1, 12)),
    "exchange_pst": ("2024-03-01 04:00:00.250000 PST", datetime(2024, 3, 1, 12, 0, 0, 250000)),
    "cet": ("2024-03-01 13:00:00.000000 CET", datetime(2024, 3, 1, 12)),
    "plus14": ("2024-03-02 02:00:00 +14:00", datetime(2024, 3, 1, 12)),
    "iso": ("2024-03-01T07:00:00-05:00", datetime(2024, 3, 1, 12)),
    "zulu": ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12)),
    "junk": ("next tuesday, noon", None),
    "future": ("2099-01-01 00:00:00.000000 UTC", None),
}


def test_timestamps_are_read_in_their_zone_and_unreadable_ones_graded_and_flagged(tmp_path):
    from nbgrader.api import Gradebook

    submissions = blank_class(tmp_path / "submissions", list(STAMPS), ["01_rnn"])
    for student, (text, _) in STAMPS.items():
        (submissions / student / "01_rnn" / "timestamp.txt").write_text(text + "\n")
    course = tmp_path / "course"
    for run_number in range(2):   # a rerun reads the same times and repeats the same flags
        run = grade(course, submissions, "--workers", "2")
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
        table = {line.split()[0]: line for line in run.stdout.splitlines()[2:] if line.split()}
        assert set(STAMPS) <= set(table)
        with Gradebook(grader.default_db_url(course), grader.nbgrader_config.COURSE_ID) as gb:
            recorded = {s: gb.find_submission("01_rnn", s).timestamp for s in STAMPS}
        assert recorded == {s: utc for s, (_, utc) in STAMPS.items()}
        for student, (text, utc) in STAMPS.items():
            problems = " ".join(verdicts.review_flags(course, student, "01_rnn"))
            assert ("timestamp unreadable" in problems) == (utc is None), (student, problems)
            assert utc or ascii(text[:40]) in problems
    copy = course / "submitted"
    assert (copy / "junk" / "01_rnn" / "timestamp.original.txt").read_text() == "next tuesday, noon\n"
    assert not (copy / "junk" / "01_rnn" / "timestamp.txt").exists()
    assert (copy / "exchange_pst" / "01_rnn" / "timestamp.txt").read_text() == "2024-03-01 12:00:00.250000 UTC\n"
    assert (copy / "exchange_pst" / "01_rnn" / "timestamp.original.txt").read_text().startswith("2024-03-01 04:00")
    assert not (copy / "exchange_utc" / "01_rnn" / "timestamp.original.txt").exists()
    out = subprocess.run([sys.executable, "-m", "autograder", "stats", str(course)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = (course / "stats.html").read_text()
    assert report.count("timestamp unreadable") >= 2


@pytest.mark.parametrize("text, utc", [
    ("2024-07-01 05:00:00.000000 PDT", "2024-07-01 12:00:00"),
    ("2024-03-01 12:00:00 UTC", "2024-03-01 12:00:00"),          # the exchange's older format
    ("2024-03-01 21:00:00 +0900", "2024-03-01 12:00:00"),
    ("2024-03-01 07:00:00 EST", "2024-03-01 12:00:00"),
    ("2024-03-01 04:00:00 America/Los_Angeles", "2024-03-01 12:00:00"),
    ("2024-03-01 17:30:00+05:30", "2024-03-01 12:00:00"),
    ("2024-03-01 12:00:00", "2024-03-01 12:00:00"),              # no zone: UTC, as nbgrader reads it
    ("2024-03-01 12:00:00 Mars/Olympus", None),
    ("2024-03-01 12:00:00 +25:00", None),
    ("2024-13-01 12:00:00 UTC", None),
    ("1999-12-31 23:00:00 UTC", None),
    ("", None),
])
def test_timestamp_formats(text, utc):
    from autograder import timestamps
    now = datetime(2025, 1, 1, tzinfo=timestamps.timezone.utc)
    if utc is None:
        with pytest.raises(timestamps.Unreadable):
            timestamps.parse(text, now)
    else:
        assert timestamps.parse(text, now).strftime("%Y-%m-%d %H:%M:%S") == utc


def test_most_blamed_gate_names_every_side_of_a_tie():
    from autograder import stats
    s = stats.AssignmentStats("03_gates", 10)
    assert stats.most_blamed(s) == ""
    for student, gates in {"a": ["forget gate (f)"], "b": ["input gate (i)", "forget gate (f)"],
                           "c": ["input gate (i)"], "d": ["output gate (o)"]}.items():
        for gate in gates:
            s.gates.add(gate, student)
    assert stats.most_blamed(s) == (" Most blamed gates, tied at 2 submission(s) each: "
                                    "forget gate (f), input gate (i).")
    s.gates.add("forget gate (f)", "d")
    assert stats.most_blamed(s) == " Most blamed gate: forget gate (f)."


def test_not_implemented_comes_before_flags_in_the_table():
    from autograder import cli
    flags = ["suspicious: the optional LSTM paste imports a module"]
    failures = ["rnn_forward: [N=2] wrong h", "lstm_forward: [N=2] not implemented yet (raises NotImplementedError)"]
    assert cli.first_problems(flags, failures) == [failures[1], flags[0], failures[0]]
    assert cli.first_problems(flags, failures[:1]) == [flags[0], failures[0]]


def test_ids_differing_in_case_or_unicode_form_are_warned_about():
    from autograder import cli
    pairs = [("Ana", "01_rnn"), ("Ana", "02_long_term"), ("ana", "01_rnn"), ("Jos\u00e9", "01_rnn"),
             ("bo", "01_rnn")]
    (warning,) = cli.same_person_warnings(pairs)
    assert warning.startswith("warning: Ana and ana differ only in case") and "2 students" in warning
    assert cli.same_person_warnings([("Jos\u00e9", "01_rnn"), ("JOSE\u0301", "01_rnn")])


def test_roster_matches_ids_in_any_case_and_unicode_form(tmp_path):
    from autograder import stats
    roster = {"Ana.Silva": {"Student": "Silva, Ana", "ID": "1", "SIS Login ID": "Ana.Silva"},
              "jos\u00e9": {"Student": "Jos\u00e9", "ID": "2", "SIS Login ID": "jos\u00e9"}}
    rows = [{"student": "ana.silva", "assignment": "01_rnn", "score": 5.0, "max_score": 10.0},
            {"student": "Jose\u0301", "assignment": "01_rnn", "score": 10.0, "max_score": 10.0}]
    problems = []
    path = stats.canvas_csv(rows, tmp_path / "canvas.csv", {"01_rnn": 100}, roster=roster, problems=problems)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert problems == [] and len(lines) == 4
    assert lines[2].startswith("\"Silva, Ana\",1,,Ana.Silva,,50")
    assert lines[3].startswith("Jos\u00e9,2,,jos\u00e9,,100")


def test_stats_lists_a_submission_without_a_grade_with_the_reason(tmp_path):
    course = tmp_path / "course"
    run = grade(course, blank_class(tmp_path / "submissions", ["ana"], ["01_rnn"]))
    assert run.returncode == 0, run.stderr
    late = course / "submitted" / "bo" / "01_rnn"    # collected after the batch, not graded yet
    late.mkdir(parents=True)
    (late / "01_rnn.ipynb").write_text((course / "submitted" / "ana" / "01_rnn" / "01_rnn.ipynb").read_text())
    out = subprocess.run([sys.executable, "-m", "autograder", "stats", str(course)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "1 submission(s) have no grade" in out.stdout
    report = (course / "stats.html").read_text()
    assert "<td>bo</td><td>no grade: not graded yet: run the grade command</td>" in report


def test_why_a_submission_has_no_grade_is_kept(tmp_path):
    grading = grader.Grading(str(tmp_path))
    outcome = batch.lost_submission(grading, "ana", "01_rnn", "killed by SIGKILL")
    assert markers.ungraded_reason(tmp_path, "ana", "01_rnn") == outcome.message
    assert "killed by SIGKILL" in outcome.message


def children(pid):
    """Live processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_9_of_the_grade_command_takes_its_workers_with_it(tmp_path):
    slow = solution_cells("01_rnn")["rnn_forward"]
    submissions = write_submissions(tmp_path / "submissions", "01_rnn", {
        f"s{k}": student_notebook("01_rnn", {"rnn_forward": "import time; time.sleep(6)\n" + slow})
        for k in range(2)})   # one per worker
    course = tmp_path / "course"
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    command = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(submissions), "--course",
                                str(course), "--workers", "2"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((course / ".rnn-course" / "inflight").glob("*/01_rnn")):
        assert command.poll() is None and time.monotonic() < deadline, "no submission ever in flight"
        time.sleep(0.2)
    workers = children(command.pid)
    assert workers
    command.kill()
    command.wait()
    deadline = time.monotonic() + 60
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    outlived = [p for p in workers if alive(p)]
    for pid in outlived:   # never left hanging, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not outlived, "a worker outlived the grade command"
    run = grade(course, submissions, "--workers", "2")   # the lock is free, the journals restored
    assert run.returncode == 0, run.stderr
    assert sorted(r["student"] for r in gradescsv.grade_rows(course)) == ["s0", "s1"]
    assert not list((course / ".rnn-course" / "inflight").glob("*/*"))


def fill(disk):
    with open(disk / "filler", "wb", buffering=0) as f:   # unbuffered: closing it writes nothing more
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass


def test_a_full_disk_is_named_exits_non_zero_and_keeps_what_was_graded(tmpfs_disk, tmp_path):
    course = tmpfs_disk / "course"
    run = grade(course, blank_class(tmp_path / "submissions", ["ana", "bo"], ["01_rnn"]), "--workers", "2")
    assert run.returncode == 0, run.stderr
    before = sorted((r["student"], r["score"]) for r in gradescsv.grade_rows(course))
    fill(tmpfs_disk)
    run = grade(course, course / "submitted", "--workers", "2", "--force")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "lost their kernel" not in run.stdout
    assert "error: no space left on device for" in run.stderr
    assert "ana/01_rnn: not graded: no space left on device" in run.stderr
    assert sorted((r["student"], r["score"]) for r in gradescsv.grade_rows(course)) == before   # kept
    (tmpfs_disk / "filler").unlink()
    run = grade(course, course / "submitted", "--workers", "2")   # a plain rerun grades what is missing
    assert run.returncode == 0, run.stderr
    assert "not graded" not in run.stderr
    assert not list((course / ".rnn-course" / "inflight").glob("*/*"))
