"""binder/ under repo2docker's rules: a student environment that builds, with the kit only.

binder/ is copied into the students' repository by `make publish` (Binder never sees
this one). repo2docker reads only binder/ when it exists (files at the root are
ignored), takes the Python version from binder/runtime.txt (else its default, older
than numpy 2.4 needs) and runs `pip install -r binder/requirements.txt` from the
repository root. Building the image needs the internet; resolving its requirements
for that Python version does not (a dry run against the package index).
tests/test_publish.py runs repo2docker's own dry run on the students' repository.
"""
import json
import re
import subprocess
import sys


from autograder import studentkit
from ci import unavailable
from submissions import REPO

BINDER = REPO / "binder"


def python_version():
    match = re.fullmatch(r"python-(3\.\d+)", (BINDER / "runtime.txt").read_text().strip())
    assert match, "binder/runtime.txt must read python-3.X"
    return match.group(1)


def requirement_lines():
    return [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_python_version_is_pinned_and_new_enough():
    assert tuple(map(int, python_version().split("."))) >= (3, 11)   # numpy 2.4, scipy 1.17, matplotlib 3.11


def test_only_the_student_kit_is_installed():
    lines = requirement_lines()
    assert "./kit" in lines, lines
    assert not any(line.startswith(("-e", "--editable")) for line in lines), lines
    assert not any(line in (".", "./") or line.startswith(("torch", "jupyter-book", "nbgrader")) for line in lines)
    assert not any(p.name in ("environment.yml", "setup.py", "Pipfile", "pyproject.toml") for p in BINDER.iterdir())


def test_binder_holds_the_environment_and_nothing_to_run():
    """No postBuild or start script: the students' repository has nothing to remove or hide."""
    assert sorted(p.name for p in BINDER.iterdir()) == ["requirements.txt", "runtime.txt"]


def test_requirements_resolve_for_that_python(tmp_path):
    """pip's own resolver, for the pinned Python, binary wheels only (the kit as the wheel it builds to)."""
    wheel = studentkit.build_wheel(tmp_path)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(str(wheel) if line == "./kit" else line for line in requirement_lines()))
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--target", str(tmp_path / "t"),
                          "--disable-pip-version-check", "--python-version", python_version(),
                          "--only-binary=:all:", "--report", str(report), "-r", str(requirements)],
                         capture_output=True, text=True)
    if run.returncode and "Could not fetch URL" in run.stderr:
        unavailable("no package index reachable", "network access to PyPI")
    assert run.returncode == 0, run.stderr[-2000:]
    installed = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"rnnkit", "numpy", "matplotlib", "ipykernel", "threadpoolctl"} <= installed
    assert not installed & {"torch", "nbgrader", "jupyter-book", "rnn-course-autograder"}, installed
