"""Feedback pages rewritten after a late-penalty change (:mod:`autograder.feedbackrefresh`), as the
instructor meets it: ``python -m autograder course set due ...`` on a graded class of three late
students. The pages are written by a pool of workers with a progress bar; one page that cannot be
written (its autograded notebook is gone) is named in one line, keeps the page it had, makes
the command exit 1, and is written at the next refresh; the others show the new penalty. And the late-penalty plugin, which every
stock nbgrader command in the course directory loads, imports nothing of the grading pipeline.
"""
import ast
import re
import subprocess
import sys

from autograder import cli, feedbackrefresh
from page_text import visible_text
from submissions import student_notebook, write_submissions

A = "02_long_term"
CLASS = ("ana", "bob", "cy")


def penalty_on_page(course, student):
    text = visible_text((course / "feedback" / student / A / f"{A}.html").read_text())
    found = re.search(r"Late submission penalty \(Score: (-[\d.]+)\)", text)
    return found and found.group(1).removesuffix(".0")


def test_pages_of_a_penalty_change_are_written_in_parallel_with_progress_and_a_failure_named(tmp_path, capsys):
    course = tmp_path / "course"
    subs = write_submissions(tmp_path / "submissions", A, {s: student_notebook(A) for s in CLASS})
    for student in CLASS:
        (subs / student / A / "timestamp.txt").write_text("2026-03-01 19:30:00 UTC\n")   # 2.5 h after the due date
    assert cli.main(["grade", str(subs), "--course", str(course), "--workers", "1"]) == 0
    course_set = ["course", "--course", str(course), "set"]
    assert cli.main([*course_set, "penalty", "1", "per", "hour"]) == 0   # no due date yet: nothing late
    graded = course / "autograded" / "bob" / A / f"{A}.ipynb"
    notebook = graded.read_bytes()
    graded.unlink()                                                       # bob's page cannot be written now
    bob_page = (course / "feedback" / "bob" / A / f"{A}.html").read_bytes()
    capsys.readouterr()

    assert cli.main([*course_set, "due", A, "2026-03-01 17:00 UTC"]) == 1
    out, err = capsys.readouterr()
    assert "2 feedback page(s) written again, 1 could not be" in out
    assert re.search(r"feedback pages: 100%.*3/3", err), err          # the batch's kind of progress bar
    named = [line for line in err.splitlines() if "feedback page not written again" in line]
    assert len(named) == 1 and named[0].startswith(f"bob/{A}: "), err
    assert "Traceback" not in err
    assert penalty_on_page(course, "ana") == "-3" and penalty_on_page(course, "cy") == "-3"
    assert (course / "feedback" / "bob" / A / f"{A}.html").read_bytes() == bob_page   # the page it had
    assert not any((course / feedbackrefresh.KEPT).rglob("*.html"))                   # nothing left aside

    # the cause fixed (bob's graded notebook back), the next refresh writes the page it owes
    graded.write_bytes(notebook)
    capsys.readouterr()
    assert cli.main([*course_set, "penalty", "1", "per", "hour"]) == 0       # the same value: nothing changes
    assert "1 feedback page(s) written again" in capsys.readouterr().out
    assert penalty_on_page(course, "bob") == "-3"
    assert not any((course / feedbackrefresh.OWED).rglob("*"))


def test_the_penalty_plugin_imports_nothing_of_the_pipeline():
    code = ("import sys, autograder.latepenalty; "
            "print(sorted(m for m in sys.modules if m.startswith('autograder')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    loaded = ast.literal_eval(run.stdout)
    assert "autograder.latepenalty" in loaded
    assert not {"autograder.preprocessors", "autograder.nbgrader_config", "autograder.sandbox"} & set(loaded), loaded
