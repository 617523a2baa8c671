"""A grader that is not root, for real: a dedicated unprivileged user grades a small class.

As root (CI), the test makes a system user of its own (``useradd``), gives it a copy of the
virtual environment whose interpreter it may run (the files hard-linked, the interpreter the
system's Python of the same version) and a folder it owns, and runs
``python -m autograder grade`` there as that user (setpriv). The grades must be right, every
file of the course that user's, and the warnings must name what a grader that is not root
cannot enforce. Run by another user already, the test grades as that user.
"""
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autograder import gradescsv
from ci import require
from points import total_points
from submissions import student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_nonroot_grader")   # its module-scoped fixture grades once: every test of the module on one worker
A = "01_rnn"
USER = "rnn-test-grader"


def system_python():
    """An interpreter of this Python's version that any user may run, or None."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.realpath(sys._base_executable), f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        path = Path(candidate)
        if path.is_file() and all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents]):
            return path
    return None


def venv_for(user_root, python):
    """This virtual environment, hard-linked under ``user_root``, run by ``python``: its scripts
    rewritten to name the copy, its configuration the system interpreter."""
    venv = user_root / "venv"
    subprocess.run(["cp", "-al", sys.prefix, str(venv)], check=True)
    (venv / "pyvenv.cfg").unlink()
    (venv / "pyvenv.cfg").write_text(f"home = {python.parent}\ninclude-system-site-packages = false\n"
                                     f"version = {sys.version.split()[0]}\nexecutable = {python}\n")
    for script in (venv / "bin").iterdir():
        if script.is_symlink() and script.name.startswith("python"):
            script.unlink()
            script.symlink_to(python)
        elif script.is_file():
            text = script.read_bytes()
            if text.startswith(b"#!" + sys.prefix.encode()):
                script.unlink()
                script.write_bytes(text.replace(sys.prefix.encode(), str(venv).encode(), 1))
                script.chmod(0o755)
    return venv


@pytest.fixture(scope="module")
def grader_user():
    """(run as the grader user, its folder): root makes a system user; another user is the grader itself."""
    if os.geteuid() != 0:
        root = Path(tempfile.mkdtemp(prefix="rnn-nonroot-"))
        yield (lambda argv, **kw: subprocess.run(argv, **kw)), root, Path(sys.prefix)
        shutil.rmtree(root, ignore_errors=True)
        return
    require(shutil.which("useradd") and shutil.which("setpriv"), "useradd or setpriv missing",
            "apt-get install passwd util-linux")
    python = system_python()
    require(python, "no Python interpreter of this version that another user may run",
            f"apt-get install python{sys.version_info.major}.{sys.version_info.minor}")
    made = False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        made = True
    entry = pwd.getpwnam(USER)
    base = Path(tempfile.mkdtemp(prefix="rnn-nonroot-"))
    base.chmod(0o755)
    root = base / "grader"
    root.mkdir()
    venv = venv_for(base, python)
    os.chown(root, entry.pw_uid, entry.pw_gid)

    def run(argv, env=None, **kw):
        env = {**(env or os.environ), "HOME": str(root), "USER": USER}
        return subprocess.run(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
                               "--", *argv], env=env, **kw)
    try:
        yield run, root, venv
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if made:
            subprocess.run(["userdel", USER], check=False)


@pytest.fixture(scope="module")
def graded_as_user(grader_user):
    """The class graded by ``python -m autograder grade`` run as the grader user: (course, result, limits)."""
    run, root, venv = grader_user
    python = venv / "bin" / "python"
    subs = write_submissions(root / "submissions", A, {"solution": student_notebook(A),
                                                       "blank": student_notebook(A, released=True)})
    if os.geteuid() == 0:   # written by root, then given to the grader user with the rest of its folder
        owner = root.stat()
        for path in [subs, *subs.rglob("*")]:
            os.chown(path, owner.st_uid, owner.st_gid)
    course = root / "course"
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    done = run([str(python), "-m", "autograder", "grade", str(subs), "--course", str(course), "--workers", "1"],
               env=env, cwd=root, capture_output=True, text=True, timeout=900)
    limits = run([str(python), "-c", "from autograder.sandbox import Sandbox; s = Sandbox(); "
                                     "print(*s.problems(), *s.notes(), sep='\\n')"],
                 env=env, cwd=root, capture_output=True, text=True, timeout=120)
    assert limits.returncode == 0, limits.stderr
    return course, done, [line for line in limits.stdout.splitlines() if line.strip()]


def test_a_grader_that_is_not_root_grades_the_class_right(graded_as_user):
    course, done, limits = graded_as_user
    assert done.returncode == 0, done.stderr[-3000:]
    total = total_points(A)
    rows = {r["student"]: r["score"] for r in gradescsv.grade_rows(course)}
    assert rows == {"solution": total, "blank": 0}, (rows, done.stderr[-2000:])
    uid = course.stat().st_uid
    assert uid != 0 and {p.stat().st_uid for p in course.rglob("*")} == {uid}
    # The sandbox, asked as that user, names what such a grader cannot enforce.
    assert limits and "need a root grader" in " ".join(limits), limits


def test_the_grade_command_says_what_a_grader_that_is_not_root_cannot_enforce(graded_as_user):
    course, done, limits = graded_as_user
    assert done.returncode == 0
    assert limits and all(line in done.stderr or line in done.stdout for line in limits), \
        (limits, done.stderr[-2000:])
