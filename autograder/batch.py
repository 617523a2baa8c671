"""Batch work on a course directory: release exercises, autograde submissions, export grades.

A course directory is nbgrader's: ``source/``, ``release/``, ``submitted/<student>/<assignment>/``,
``autograded/``, ``feedback/`` and ``gradebook.db``.
"""
import csv
import os
import shutil
import sys
import warnings
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning
from traitlets.config import Config

from .nbgrader_config import configure

# nbgrader 0.9 triggers SQLAlchemy 2 session warnings that say nothing to an instructor.
warnings.filterwarnings("ignore", category=SAWarning)

REPO = Path(__file__).resolve().parent.parent


class GradingError(RuntimeError):
    """Something the instructor must fix before grading can go on."""


def api_for(root, **dirs):
    _put_tools_on_path()
    config = configure(Config(), root, **dirs)
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def _put_tools_on_path():
    """nbgrader runs ``alembic`` from PATH: use the one installed beside this interpreter."""
    tools = os.path.dirname(sys.executable)
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")


def _ok(result, what):
    if not result.get("success"):
        raise GradingError(f"{what} failed:\n{result.get('error') or result.get('log')}")
    return result


def release(assignments, solutions=REPO / "solutions", exercises=REPO / "exercises"):
    """Regenerate ``exercises/<a>/`` from ``solutions/<a>/`` with nbgrader generate_assignment."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "source").symlink_to(Path(solutions).resolve())
        (root / "release").symlink_to(Path(exercises).resolve())
        api = api_for(root, db_url=f"sqlite:///{root / 'gradebook.db'}")
        for a in assignments:
            _ok(api.generate_assignment(a, force=True), f"generate_assignment {a}")


def assignments_in(solutions=REPO / "solutions"):
    return sorted(p.name for p in Path(solutions).iterdir() if p.is_dir() and not p.name.startswith("."))


def prepare_course(course, submissions, solutions=REPO / "solutions"):
    """Lay out ``course`` for grading: source from the repo, submissions copied in.

    Returns the list of (student, assignment) pairs found in ``submissions``,
    whose layout is nbgrader's ``<student>/<assignment>/<notebook>.ipynb``.
    """
    course, submissions = Path(course), Path(submissions)
    if not submissions.is_dir():
        raise GradingError(f"no submissions folder at {submissions}")
    shutil.copytree(solutions, course / "source", dirs_exist_ok=True)
    submitted = course / "submitted"
    if submitted.resolve() != submissions.resolve():
        shutil.copytree(submissions, submitted, dirs_exist_ok=True)
    known = set(assignments_in(solutions))
    pairs = []
    for student in sorted(p for p in submitted.iterdir() if p.is_dir()):
        for assignment in sorted(p for p in student.iterdir() if p.is_dir()):
            if assignment.name not in known:
                raise GradingError(f"{student.name}/{assignment.name}: no such assignment "
                                   f"(known: {', '.join(sorted(known))})")
            pairs.append((student.name, assignment.name))
    if not pairs:
        raise GradingError(f"no submissions found in {submissions} "
                           "(expected <student>/<assignment>/<notebook>.ipynb)")
    return pairs


@dataclass
class Outcome:
    student: str
    assignment: str
    ok: bool
    message: str = ""


def autograde(course, pairs, progress=None):
    """Autograde every (student, assignment) and generate its feedback."""
    api = api_for(course)
    for a in sorted({a for _, a in pairs}):
        _ok(api.generate_assignment(a, force=True), f"generate_assignment {a}")
    outcomes = []
    for student, assignment in pairs:
        result = api.autograde(assignment, student, force=True, create=True)
        if result.get("success"):
            api.generate_feedback(assignment, student, force=True)
            outcomes.append(Outcome(student, assignment, True))
        else:
            outcomes.append(Outcome(student, assignment, False, _last_line(result)))
        if progress:
            progress(outcomes[-1])
    return outcomes


def _last_line(result):
    lines = (result.get("error") or result.get("log") or "autograde failed").strip().splitlines()
    return lines[-1] if lines else "autograde failed"


def grade_rows(course):
    """One row per submission: student, assignment, score, max, and per-test-cell scores."""
    rows = []
    with Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}") as gb:
        for assignment in gb.assignments:
            for student in gb.students:
                try:
                    sub = gb.find_submission(assignment.name, student.id)
                except MissingEntry:
                    continue
                cells = {}
                for nb in sub.notebooks:
                    for grade in nb.grades:
                        cells[grade.name] = grade.score
                rows.append({"student": student.id, "assignment": assignment.name,
                             "score": sub.score, "max_score": sub.max_score, "cells": cells})
    return rows


def export_csv(rows, path):
    """Grades as CSV: one line per submission, one column per test cell."""
    cell_names = sorted({name for r in rows for name in r["cells"]})
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "assignment", "score", "max_score", *cell_names])
        for r in rows:
            writer.writerow([r["student"], r["assignment"], r["score"], r["max_score"],
                             *(r["cells"].get(n, "") for n in cell_names)])


def failures(course, student, assignment):
    """The failure messages the grader wrote into a student's autograded notebooks."""
    messages = []
    for path in sorted((Path(course) / "autograded" / student / assignment).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for check in cell.get("metadata", {}).get("rnn_course", {}).get("checks", []):
                messages.extend(f"{check['task']}: {m}" for m in check["failures"])
    return messages
