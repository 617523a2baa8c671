"""The instructors' guide (book/instructors.md) is tested commands, not prose only.

Every ``{code-block} bash`` of the guide with ``:class: tested`` is run, in the order of
the page, with bash in a scratch copy of the repository (the autograder package,
solutions/, exercises/, nbgrader_config.py) holding a tiny generated class in
``submissions/``; the files each step promises are then checked. Blocks run in that
copy, so ``python -m autograder release`` rewrites the copy's exercises/, never the
repository's.
"""
import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from mutants import MUTANTS, notebook
from page_text import assert_offline_feedback, visible_text
from submissions import REPO, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_instructor_guide")   # its module-scoped fixture grades once: every test of the module on one worker

GUIDE = REPO / "book" / "instructors.md"
A = "04_bptt"
CLASS = {"ana": student_notebook(A),
         "bo": notebook(next(m for m in MUTANTS if m.name == "bwd_forget_on_prev_h")),
         "li_wei": student_notebook(A, released=True)}
BLOCK = re.compile(r"^```\{code-block\} bash\n((?::[\w-]+:[^\n]*\n)*)\n?(.*?)^```", re.S | re.M)


def marked_blocks(text):
    """The bodies of the guide's bash code blocks marked ``:class: tested``, in order."""
    return [body for options, body in BLOCK.findall(text)
            if re.search(r"^:class:.*\btested\b", options, re.M)]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Run every tested block in a scratch copy; return (root, start time, [(block, result)])."""
    root = tmp_path_factory.mktemp("guide")
    for folder in ("autograder", "solutions", "exercises"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    shutil.copy(REPO / "nbgrader_config.py", root)
    (root / "_vendor").symlink_to(REPO / "_vendor")      # MathJax for the feedback (scripts/vendor_mathjax.py)
    write_submissions(root / "submissions", A, CLASS)
    # The commands run from the scratch copy: `python -m autograder` imports it (cwd comes
    # first), and the sandbox makes the grading kernel import that same copy.
    # The kit too: `release` rewrites the kit's data (rnnkit/expected.npz) where rnnkit is imported
    # from, which must be the copy's, never the repository's.
    shutil.copytree(REPO / "kit" / "rnnkit", root / "kit" / "rnnkit", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "kit"), os.environ.get("PYTHONPATH")]))}
    started = time.time()
    results = []
    for block in marked_blocks(GUIDE.read_text(encoding="utf-8")):
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=root, env=env,
                                capture_output=True, text=True, timeout=300)
        results.append((block, result))
        if result.returncode:
            break
    return root, started, results


def test_the_guide_marks_every_offline_step_as_tested():
    blocks = "\n".join(marked_blocks(GUIDE.read_text(encoding="utf-8")))
    for command in ("python -m autograder release", "nbgrader generate_assignment", "python -m autograder grade",
                    "python -m autograder stats", "--canvas", "nbgrader export", "python -m autograder course --course course set penalty",
                    "python -m autograder init", "nbgrader generate_feedback"):
        assert command in blocks, f"no tested block runs {command!r}"


def test_every_tested_block_succeeds(ran):
    _, _, results = ran
    assert len(results) == len(marked_blocks(GUIDE.read_text(encoding="utf-8")))
    for block, result in results:
        assert result.returncode == 0, f"{block}\nexit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"


def test_release_regenerates_the_copy_not_the_repository(ran):
    root, started, _ = ran
    # nothing changed: the copy's kit data is kept byte for byte (a release rewrites it only when it changes)
    assert (root / "kit" / "rnnkit" / "expected.npz").read_bytes() == (REPO / "kit" / "rnnkit" / "expected.npz").read_bytes()
    assert (REPO / "kit" / "rnnkit" / "expected.npz").stat().st_mtime < started
    for a in ("01_rnn", "02_long_term", "03_gates", A):
        released = root / "exercises" / a / f"{a}.ipynb"
        assert released.stat().st_mtime >= started
        text = released.read_text()
        assert "BEGIN HIDDEN TESTS" not in text and "### BEGIN SOLUTION" not in text
    assert (root / "gradebook.db").is_file()        # nbgrader generate_assignment, from the root


def test_grade_writes_csv_and_feedback_without_hidden_tests(ran):
    root, _, results = ran
    course = root / "course"
    out = next(r.stdout for b, r in results if "python -m autograder grade" in b)
    top = sum(c.metadata["nbgrader"].get("points", 0) for c in nbformat.read(
        REPO / "solutions" / A / f"{A}.ipynb", as_version=4).cells if c.metadata.get("nbgrader", {}).get("grade"))
    assert re.search(rf"^ana\s+04_bptt\s+{top:.2f} / {top:g}\s*$", out, re.M), out
    assert re.search(rf"^bo\s+04_bptt\s+[\d.]+ / {top:g}\s+lstm_step_backward: \[N=\d.*\] \w+: wrong", out, re.M), out
    with open(course / "grades.csv", newline="") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(CLASS) and float(rows["ana"]["score"]) == top and float(rows["li_wei"]["score"]) == 0
    for student in CLASS:   # written last by stock `nbgrader generate_feedback`, in the course directory
        page = (course / "feedback" / student / A / f"{A}.html").read_text()
        assert_offline_feedback(page, A, f"{student}'s feedback")


def test_nbgrader_export_and_due_date(ran):
    root, _, _ = ran
    course = root / "course"
    with open(course / "nbgrader_grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["student_id"] for r in rows} == set(CLASS)
    assert {"raw_score", "late_submission_penalty", "score", "max_score"} <= set(rows[0])
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:   # the course's setting, in the gradebook
        assert str(gb.find_assignment(A).duedate) == "2026-03-01 17:00:00"
    settings = (course / "course_settings.json").read_text()
    assert '"cap": 5.0' in settings and '"cell_timeout": 60' in settings


def test_canvas_csv(ran):
    root, _, _ = ran
    with open(root / "course" / "canvas.csv", newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", A]
    assert lines[1][-1] == "20.0"
    scores = {line[3]: float(line[-1]) for line in lines[2:]}
    assert scores["ana"] == 20 and scores["li_wei"] == 0 and 0 < scores["bo"] < 20


def test_stats_report(ran):
    root, _, results = ran
    page = (root / "course" / "stats.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "04_bptt" in visible_text(page)
    out = next(r.stdout for b, r in results if "--out course/stats.html" in b)
    assert "Most blamed gate: forget gate (f)" in out

