"""The course remembers its settings (#20 item 2): gradebook URL, timeouts, late penalty and due
dates in ``COURSE/course_settings.json``, set by ``python -m autograder course set ...``; ``grade``,
``stats`` and stock nbgrader commands in the course directory agree without an environment variable;
a due date or policy changed after grading counts at the next ``grade`` without ``--force``.
"""
import csv
import json
import os
import re
import subprocess
import sys

import pytest

from autograder import cli, coursesettings, gradescsv
from page_text import visible_text
from points import total_points
from submissions import student_notebook, write_submissions

A = "01_rnn"
TOTAL = total_points(A)
#: What nbgrader's own commands run with: no gradebook or course variable of ours.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("RNN_GRADER", "NBGRADER"))}
ENV["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


def penalty_on_page(course, student):
    """The late penalty the student's feedback page shows ("-2"), or None."""
    text = visible_text((course / "feedback" / student / A / f"{A}.html").read_text())
    found = re.search(r"Late submission penalty \(Score: (-[\d.]+)\)", text)
    return found and found.group(1).removesuffix(".0")


def course_cli(course, *args):
    return cli.main(["course", "--course", str(course), *args])


def test_settings_are_set_shown_and_checked_by_the_command(tmp_path, capsys):
    course = tmp_path / "course"
    assert cli.main(["init", "--course", str(course)]) == 0
    assert course_cli(course, "set", "due", A, "2026-03-01T18:00+01:00") == 0
    assert course_cli(course, "set", "penalty", "1", "per", "hour", "cap", "2") == 0
    assert course_cli(course, "set", "cell-timeout", "30") == 0
    capsys.readouterr()
    bad = [("due", A, "2026-03-01 18:00"), ("due", "09_nope", "2026-03-01T18:00Z"), ("due", A, "tomorrow"),
           ("penalty", "1", "per", "week"), ("penalty", "-1", "per", "hour"), ("penalty", "half"),
           ("cell-timeout", "0"), ("db", "not a url")]
    for args in bad:
        assert course_cli(course, "set", *args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, (args, err)
    settings = coursesettings.load(course)
    assert settings.due == {A: "2026-03-01T18:00+01:00"} and settings.cell_timeout == 30
    assert settings.penalty == {"method": "linear", "points": 1.0, "per": "hour", "cap": 2.0}
    assert str(settings.due_utc()[A]) == "2026-03-01 17:00:00"
    assert course_cli(course, "show") == 0
    out = capsys.readouterr().out
    assert "1 point(s) off per started hour late, at most 2" in out and "cell-timeout: 30" in out
    # grade and init rewrite nbgrader_config.py, never the settings
    before = (course / coursesettings.FILE).read_bytes()
    (course / "nbgrader_config.py").unlink()
    assert cli.main(["init", "--course", str(course)]) == 0
    assert (course / coursesettings.FILE).read_bytes() == before
    assert (course / "nbgrader_config.py").is_file()


def test_a_broken_settings_file_is_one_line_for_every_command(tmp_path, capsys):
    course = tmp_path / "course"
    assert cli.main(["init", "--course", str(course)]) == 0
    subs = write_submissions(tmp_path / "submissions", A, {"ana": student_notebook(A)})
    for text in ('{"penalty": {"method": "linear", "per": "hour"}}', '{"due": {"01_rnn": "soon"}}',
                 "{not json", '{"cell_timeout": "x"}', '{"colour": 1}'):
        (course / coursesettings.FILE).write_text(text)
        for argv in (["grade", str(subs), "--course", str(course)], ["stats", str(course)],
                     ["course", "--course", str(course), "show"]):
            capsys.readouterr()
            assert cli.main(argv) == 2, (text, argv)
            err = capsys.readouterr().err
            assert err.startswith("error: ") and coursesettings.FILE in err and err.count("\n") == 1, (text, err)
    assert not (course / "submitted").exists()   # refused before any work
    # nbgrader's own commands there stop too, never run with half the course's configuration
    run = subprocess.run(["nbgrader", "db", "assignment", "list"], cwd=course, env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode != 0 and f"error: {course / coursesettings.FILE}: unknown setting" in run.stderr, run.stderr


def nbgrader(course, *args):
    run = subprocess.run(["nbgrader", *args], cwd=course, env=ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def exported(course):
    """``nbgrader export`` in the course directory, stock, no environment variable: student -> row."""
    nbgrader(course, "export", "--to", "export.csv")
    with open(course / "export.csv", newline="") as fh:
        return {row["student_id"]: row for row in csv.DictReader(fh)}


def grades_csv(course):
    with open(course / "grades.csv", newline="") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


def canvas(course, tmp_path):
    path = tmp_path / "canvas.csv"
    assert cli.main(["stats", str(course), "--canvas", str(path), "--points", f"{A}=20"]) == 0
    lines = list(csv.reader(path.open(newline="")))
    return {line[3]: float(line[-1]) for line in lines[2:]}


def test_due_date_and_penalty_set_after_grading_count_at_the_next_grade_without_force(tmp_path, capsys):
    course = tmp_path / "course"
    subs = write_submissions(tmp_path / "submissions", A, {"on_time": student_notebook(A),
                                                           "late": student_notebook(A)})
    (subs / "on_time" / A / "timestamp.txt").write_text("2026-03-01 16:59:00 UTC\n")
    (subs / "late" / A / "timestamp.txt").write_text("2026-03-01 11:30:00 PST\n")   # 19:30 UTC: 2.5 h late
    grade = ["grade", str(subs), "--course", str(course), "--workers", "1"]
    assert cli.main(grade) == 0
    assert {s: float(r["late_penalty"]) for s, r in grades_csv(course).items()} == {"on_time": 0, "late": 0}

    assert course_cli(course, "set", "due", A, "2026-03-01 17:00 UTC") == 0
    assert course_cli(course, "set", "penalty", "1", "per", "hour", "cap", "2") == 0
    export = exported(course)   # the gradebook has them at once: nbgrader's own commands agree
    assert float(export["late"]["late_submission_penalty"]) == 2 and export["late"]["duedate"].startswith("2026-03-01 17:00")
    assert "1 feedback page(s) written again" in capsys.readouterr().out
    assert penalty_on_page(course, "late") == "-2" and penalty_on_page(course, "on_time") is None   # pages follow
    capsys.readouterr()
    assert cli.main(grade) == 0
    out = capsys.readouterr().out
    assert "2 submission(s) graded before and unchanged were not regraded" in out
    assert "-2 late" in out
    rows = grades_csv(course)
    assert {s: (float(r["score"]), float(r["late_penalty"])) for s, r in rows.items()} == {
        "on_time": (TOTAL, 0), "late": (TOTAL, 2)}
    assert canvas(course, tmp_path) == {"on_time": 20.0, "late": round(20.0 * (TOTAL - 2) / TOTAL, 2)}

    assert course_cli(course, "set", "penalty", "zero") == 0   # the policy nbgrader ships, by the command
    assert course_cli(course, "set", "due", A, "2026-03-01T21:00+01:00") == 0   # 20:00 UTC: none is late
    assert cli.main(grade) == 0
    assert {s: float(r["late_penalty"]) for s, r in grades_csv(course).items()} == {"on_time": 0, "late": 0}
    assert course_cli(course, "set", "due", A, "2026-03-01 18:00 Europe/Berlin") == 0   # 17:00 UTC
    assert cli.main(grade) == 0
    assert {s: float(r["late_penalty"]) for s, r in grades_csv(course).items()} == {"on_time": 0, "late": TOTAL}
    assert canvas(course, tmp_path) == {"on_time": 20.0, "late": 0.0}
    assert penalty_on_page(course, "late") == f"-{TOTAL:g}"   # the page the student reads, not stale
    # stock autograde in the course directory takes the same penalty
    nbgrader(course, "autograde", A, "--student", "late", "--force")
    assert float(exported(course)["late"]["late_submission_penalty"]) == TOTAL


def test_the_course_remembers_its_postgresql_gradebook_for_every_command(postgres, tmp_path, capsys):
    course = tmp_path / "course"
    subs = write_submissions(tmp_path / "submissions", A, {"solution": student_notebook(A),
                                                           "blank": student_notebook(A, released=True)})
    grade = ["grade", str(subs), "--course", str(course), "--workers", "1"]
    assert cli.main([*grade, "--db", postgres.url]) == 0
    assert "the course now remembers its gradebook" in capsys.readouterr().out
    assert json.loads((course / coursesettings.FILE).read_text())["db_url"] == postgres.url
    assert (course / coursesettings.FILE).stat().st_mode & 0o077 == 0
    # no --db, no environment variable: the same gradebook everywhere
    assert cli.main(grade) == 0
    assert canvas(course, tmp_path) == {"solution": 20.0, "blank": 0.0}
    assert {s: float(r["score"]) for s, r in exported(course).items()} == {"solution": TOTAL, "blank": 0.0}
    nbgrader(course, "generate_feedback", A, "--force")
    assert sorted(p.parent.parent.name for p in (course / "feedback").glob(f"*/{A}/*.html")) == ["blank", "solution"]
    assert not (course / "gradebook.db").exists(), "a SQLite gradebook was written beside PostgreSQL"
    rows = {r["student"]: r["score"] for r in gradescsv.grade_rows(course)}
    assert rows == {"solution": TOTAL, "blank": 0.0}
    # another gradebook named on the command line: refused, the course's kept
    capsys.readouterr()
    assert cli.main([*grade, "--db", f"sqlite:///{tmp_path / 'other.db'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "names another gradebook" in err
    assert json.loads((course / coursesettings.FILE).read_text())["db_url"] == postgres.url


def test_a_password_in_the_gradebook_url_stays_in_the_environment(tmp_path, monkeypatch, capsys):
    course = tmp_path / "course"
    course.mkdir()
    url = "postgresql+psycopg2://grader:${GRADEBOOK_PASSWORD}@127.0.0.1:1/rnn"
    monkeypatch.delenv("GRADEBOOK_PASSWORD", raising=False)
    coursesettings.save(course, coursesettings.Settings(db_url=url))
    with pytest.raises(coursesettings.GradingError, match="needs the environment variable GRADEBOOK_PASSWORD"):
        coursesettings.load(course).gradebook_url()
    monkeypatch.setenv("GRADEBOOK_PASSWORD", "s3cret")
    assert coursesettings.load(course).gradebook_url() == url.replace("${GRADEBOOK_PASSWORD}", "s3cret")
    assert "s3cret" not in (course / coursesettings.FILE).read_text()
    assert course_cli(course, "show") == 0
    assert "db: postgresql+psycopg2://grader:***@127.0.0.1:1/rnn" in capsys.readouterr().out
    assert coursesettings.remember_db_url(course, url.replace("${GRADEBOOK_PASSWORD}", "s3cret")) is False
