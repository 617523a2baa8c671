"""On a shared machine (a JupyterHub), students are other Unix users: what they must not read.

A course directory laid out by the grader is its owner's alone, wherever it lies: a
separate unprivileged uid (here `nobody`, through setpriv, as every student on a hub is
a user of their own) reads neither the sources with their hidden tests, nor the
submissions, nor the gradebook. The instructor's package lives in a folder only the
instructor can read (the instructors' page says how); what students do get, the kit,
holds no reference (tests/test_student_kit.py).
"""
import os
import shutil
import subprocess

import pytest

from autograder import batch, layout
from ci import require
from submissions import REPO, student_notebook, write_submissions

NOBODY = 65534
A = "01_rnn"


def as_nobody(*argv):
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv],
                          capture_output=True, text=True)


@pytest.fixture
def needs_root():
    require(os.geteuid() == 0 and shutil.which("setpriv"), "acting as another user needs root and setpriv",
            "run the tests as root (CI does), with util-linux installed")


def test_another_user_reads_nothing_of_the_course(needs_root, tmp_path):
    tmp_path.chmod(0o755)   # a folder everybody may cross: only the course's own mode protects it
    subs = write_submissions(tmp_path / "subs", A, {"alice": student_notebook(A)})
    course = tmp_path / "course"
    layout.prepare_course(course, subs)
    batch.autograde(course, [("alice", A)], workers=1)
    assert (course / "gradebook.db").exists() and (course / "source" / A / f"{A}.ipynb").exists()
    assert course.stat().st_mode & 0o077 == 0, oct(course.stat().st_mode)
    for path in [course / "source" / A / f"{A}.ipynb", course / "gradebook.db",
                 course / "submitted" / "alice" / A / f"{A}.ipynb", course / "nbgrader_config.py"]:
        run = as_nobody("cat", str(path))
        assert run.returncode != 0 and "Permission denied" in run.stderr, (path, run.stdout[:200])
    listing = as_nobody("ls", str(course))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr


def test_the_instructors_package_in_a_private_home_is_out_of_reach(needs_root, tmp_path):
    """The page's recipe: the repository (references, solutions) in a home folder of mode 0700."""
    home = tmp_path / "jupyter-instructor"
    home.mkdir(mode=0o700)
    tmp_path.chmod(0o755)
    shutil.copytree(REPO / "autograder" / "reference", home / "repo" / "autograder" / "reference")
    shutil.copytree(REPO / "solutions" / A, home / "repo" / "solutions" / A)
    for path in [home / "repo" / "autograder" / "reference" / "lstm.py", home / "repo" / "solutions" / A / f"{A}.ipynb"]:
        run = as_nobody("cat", str(path))
        assert run.returncode != 0 and "Permission denied" in run.stderr, path
    recipe = (REPO / "book" / "instructors.md").read_text()
    assert "chmod 700 ~" in recipe and "rnnkit-*.whl" in recipe
