"""Batch work on a course directory: release exercises, autograde submissions, export grades.

A course directory is nbgrader's: ``source/``, ``release/``, ``submitted/<student>/<assignment>/``,
``autograded/``, ``feedback/`` and ``gradebook.db``.

Bad input stops a batch only when nothing can be graded (:class:`GradingError`). A
submission that cannot be graded (missing or corrupt notebook) scores 0 and its
:class:`Outcome` says why in one line; one that was graded despite something (a timeout,
a dead kernel, deleted cells, stripped metadata) carries that in its Outcome's notes,
taken from the review flags (:mod:`autograder.flags`) and the grader's own notes.
"""
import csv
import functools
import hashlib
import json
import os
import re
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

from . import flags as review
from . import scheduling
from . import nbgrader_config
from .nbgrader_config import configure
from .preprocessors import NOTE

# nbgrader 0.9 triggers SQLAlchemy 2 session warnings that say nothing to an instructor.
warnings.filterwarnings("ignore", category=SAWarning)

REPO = Path(__file__).resolve().parent.parent
CELL_TIMEOUT_ENV = "RNN_GRADER_CELL_TIMEOUT"   # seconds; overrides nbgrader_config.CELL_TIMEOUT
IGNORED_NAMES = {"__MACOSX"}


class GradingError(RuntimeError):
    """Something the instructor must fix before grading can go on."""


def resolve_cell_timeout(seconds=None):
    """Seconds one cell may run: ``seconds``, else $RNN_GRADER_CELL_TIMEOUT, else CELL_TIMEOUT."""
    where = "the cell timeout"
    if seconds is None and os.environ.get(CELL_TIMEOUT_ENV, "").strip():
        seconds, where = os.environ[CELL_TIMEOUT_ENV].strip(), CELL_TIMEOUT_ENV
    if seconds is None:
        return nbgrader_config.CELL_TIMEOUT
    try:
        value = int(seconds)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise GradingError(f"{where} must be a whole number of seconds > 0, got {seconds!r}")
    return value


def api_for(root, db_url=None, cell_timeout=None, notebook_timeout=None):
    """An NbGraderAPI on the course directory ``root``, configured by :func:`configure`."""
    _put_tools_on_path()
    config = configure(Config(), root, db_url=db_url, cell_timeout=resolve_cell_timeout(cell_timeout),
                       notebook_timeout=notebook_timeout or nbgrader_config.NOTEBOOK_TIMEOUT)
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def _put_tools_on_path():
    """nbgrader runs ``alembic`` from PATH: use the one installed beside this interpreter."""
    tools = os.path.dirname(sys.executable)
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")


def _ok(result, what):
    if not result.get("success"):
        raise GradingError(f"{what} failed: {_reason(result)}")
    return result


def release(assignments, solutions=REPO / "solutions", exercises=REPO / "exercises"):
    """Regenerate ``exercises/<a>/`` from ``solutions/<a>/`` with nbgrader generate_assignment."""
    known = set(assignments_in(solutions))
    unknown = [a for a in assignments if a not in known]
    if unknown:
        raise GradingError(f"no such assignment: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "source").symlink_to(Path(solutions).resolve())
        (root / "release").symlink_to(Path(exercises).resolve())
        api = api_for(root, db_url=f"sqlite:///{root / 'gradebook.db'}")
        for a in assignments:
            _ok(api.generate_assignment(a, force=True), f"generate_assignment {a}")


def assignments_in(solutions=REPO / "solutions"):
    return sorted(p.name for p in Path(solutions).iterdir() if p.is_dir() and not p.name.startswith("."))


def _visible(path):
    return not path.name.startswith(".") and path.name not in IGNORED_NAMES


def prepare_course(course, submissions, solutions=REPO / "solutions", problems=None):
    """Lay out ``course`` for grading: source from the repo, submissions copied in.

    Returns the list of (student, assignment) pairs found in ``submissions``,
    whose layout is nbgrader's ``<student>/<assignment>/<notebook>.ipynb``.

    A folder or notebook that does not fit that layout is an error; if ``problems`` is a
    list, it is skipped instead and one line saying why is appended to ``problems``.
    Only a batch with nothing to grade is then an error.
    """
    course, submissions = Path(course), Path(submissions)
    if not submissions.exists():
        raise GradingError(f"no submissions folder at {submissions}")
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder (expected <student>/<assignment>/<notebook>.ipynb)")
    known = set(assignments_in(solutions))
    found, skipped = _layout(submissions, known)
    if skipped and problems is None:
        raise GradingError(skipped[0])
    if not found:
        why = "".join(f"\n  {s}" for s in skipped)
        raise GradingError(f"no submissions found in {submissions} "
                           f"(expected <student>/<assignment>/<notebook>.ipynb){why}")
    try:
        shutil.copytree(solutions, course / "source", dirs_exist_ok=True)
        submitted = course / "submitted"
        if not submitted.exists() or submitted.resolve() != submissions.resolve():
            for student, assignment in found:
                # Replace, not merge: a notebook left from an earlier run must not be graded.
                dest = submitted / student / assignment
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(submissions / student / assignment, dest)
    except OSError as exc:
        raise GradingError(f"cannot lay out the course directory {course}: {exc}") from None
    if problems is not None:
        problems.extend(skipped)
    pairs = []
    for student in sorted(p for p in submitted.iterdir() if p.is_dir() and _visible(p)):
        for assignment in sorted(p for p in student.iterdir() if p.is_dir() and _visible(p)):
            if assignment.name in known:
                pairs.append((student.name, assignment.name))
    return pairs


def _layout(submissions, known):
    """(student, assignment) folders in ``submissions``, and one line per thing that does not fit."""
    found, skipped = [], []
    layout = "expected <student>/<assignment>/<notebook>.ipynb"
    for entry in sorted(p for p in submissions.iterdir() if _visible(p)):
        if not entry.is_dir():
            if entry.suffix == ".ipynb":
                skipped.append(f"{entry.name}: a notebook directly in the submissions folder ({layout})")
            continue
        if entry.name in known:
            skipped.append(f"{entry.name}: a folder named like an assignment where a student's folder "
                           f"should be ({layout})")
            continue
        assignments = sorted(p for p in entry.iterdir() if p.is_dir() and _visible(p))
        for folder in assignments:
            if folder.name in known:
                found.append((entry.name, folder.name))
            else:
                skipped.append(f"{entry.name}/{folder.name}: no such assignment "
                               f"(known: {', '.join(sorted(known))})")
        if not assignments:
            loose = sorted(p.name for p in entry.glob("*.ipynb"))
            hint = (f"; found {', '.join(loose)} directly in it, expected {entry.name}/<assignment>/<notebook>.ipynb"
                    if loose else f" ({layout})")
            skipped.append(f"{entry.name}: no assignment folder{hint}")
    return found, skipped


@dataclass
class Outcome:
    """How the grading of one submission went.

    ``ok`` is False when the submission could not be graded at all (it then scores 0);
    ``message`` is one line: why, or what the grader had to work around.
    """
    student: str
    assignment: str
    ok: bool
    message: str = ""
    notes: tuple = ()   # the items of ``message``, most urgent first
    skipped: bool = False   # graded by an earlier run, unchanged since

    def __post_init__(self):
        if self.notes and not self.message:
            self.message = "; ".join(self.notes)
        elif self.message and not self.notes:
            self.notes = (self.message,)


@dataclass(frozen=True)
class Grading:
    """Where and how to grade; small and picklable, so worker processes receive it.

    course: the course directory; db_url: the gradebook (default: SQLite in the course
    directory; any SQLAlchemy URL, e.g. ``postgresql+psycopg2://user@host/gradebook``);
    cell_timeout, notebook_timeout: seconds (defaults: nbgrader_config).
    """
    course: str
    db_url: str = ""
    cell_timeout: int = 0
    notebook_timeout: int = 0

    @property
    def gradebook_url(self):
        return self.db_url or default_db_url(self.course)

    def api(self):
        return _api(self)

    def gradebook(self):
        return Gradebook(self.gradebook_url, nbgrader_config.COURSE_ID)


def default_db_url(course):
    """SQLite in the course directory; waits for the lock rather than failing under parallel writers."""
    return f"sqlite:///{Path(course).resolve() / 'gradebook.db'}?timeout=120"


@functools.lru_cache(maxsize=4)
def _api(grading):
    """One NbGraderAPI per process and setting."""
    return api_for(grading.course, grading.gradebook_url, grading.cell_timeout or None, grading.notebook_timeout)


def autograde(course, pairs, progress=None, cell_timeout=None, workers=1, scheduler=None, force=True,
              db_url="", notebook_timeout=None):
    """Autograde every (student, assignment), with feedback; returns one Outcome per pair.

    workers, scheduler: see :func:`autograder.scheduling.run` (one process by default).
    force: regrade submissions already graded; otherwise they are skipped unless
    their notebooks changed since (an interrupted batch resumes where it stopped).
    """
    grading = Grading(str(Path(course).resolve()), db_url or "", resolve_cell_timeout(cell_timeout),
                      notebook_timeout or 0)
    api = grading.api()
    for a in sorted({a for _, a in pairs}):
        _ok(api.generate_assignment(a, force=True), f"generate_assignment {a}")
    earlier = {} if force else {p: o for p in pairs if (o := finished(grading, *p))}
    for outcome in earlier.values():
        if progress:
            progress(outcome)
    todo = [(grading, s, a) for s, a in pairs if (s, a) not in earlier]
    fresh = scheduling.run(grade_submission, todo, workers=workers, scheduler=scheduler, progress=progress)
    by_pair = {**earlier, **{(o.student, o.assignment): o for o in fresh}}
    return [by_pair[p] for p in pairs]


def grade_submission(grading, student, assignment):
    """Autograde one submission and write its feedback, in this process; records that it is done."""
    with warnings.catch_warnings():   # nbgrader re-adds cells without an id: nbformat warns
        warnings.filterwarnings("ignore", message="Cell is missing an id field")
        outcome = _grade_one(grading, student, assignment)
    marker = _marker(grading.course, student, assignment)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"hash": submission_hash(grading.course, student, assignment),
                                  "ok": outcome.ok, "notes": list(outcome.notes)}))
    return outcome


def _marker(course, student, assignment):
    return Path(course) / ".rnn-course" / "done" / student / f"{assignment}.json"


def submission_hash(course, student, assignment):
    digest = hashlib.sha256()
    for path in sorted((Path(course) / "submitted" / student / assignment).rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def finished(grading, student, assignment):
    """The Outcome of an earlier grading of this very submission, or None."""
    marker = _marker(grading.course, student, assignment)
    try:
        done = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if done.get("hash") != submission_hash(grading.course, student, assignment):
        return None
    return Outcome(student, assignment, done["ok"], notes=tuple(done["notes"]), skipped=True)


def _grade_one(grading, student, assignment):
    api, course = grading.api(), grading.course
    problem = check_submission(course, student, assignment)
    if problem is None:
        result = api.autograde(assignment, student, force=True, create=True)
        if result.get("success"):
            flagged = review_flags(course, student, assignment)
            if flagged:
                mark_flagged(grading, student, assignment)
            run = [f for f in flagged if f.startswith(_FLAG_ORDER[:4])]
            notes = run + _notes(result) + [f for f in flagged if f not in run]
            feedback = api.generate_feedback(assignment, student, force=True)
            if not feedback.get("success"):
                notes.append(f"no feedback: {_reason(feedback)}")
            return Outcome(student, assignment, True, notes=tuple(notes))
        problem = _reason(result)
    _record_zero(grading, student, assignment)
    return Outcome(student, assignment, False, notes=(problem, *submitted_flags(course, student, assignment)))


def submitted_flags(course, student, assignment):
    """Review flags of a submission that could not be graded, read from what was submitted."""
    found = []
    for source in sorted((Path(course) / "source" / assignment).glob("*.ipynb")):
        path = Path(course) / "submitted" / student / assignment / source.name
        if notebook_problem(path) is None:
            found.extend(review.review(nbformat.read(path, as_version=4), nbformat.read(source, as_version=4)))
    return found


def mark_flagged(grading, student, assignment):
    """Set nbgrader's ``flagged`` on the submission's notebooks: formgrader lists them for review."""
    with grading.gradebook() as gb:
        for nb in gb.find_submission(assignment, student).notebooks:
            nb.flagged = True
        gb.db.commit()


def check_submission(course, student, assignment):
    """None if every notebook of the assignment is there and readable; else what is wrong, in one line."""
    course = Path(course)
    folder = course / "submitted" / student / assignment
    for expected in sorted((course / "source" / assignment).glob("*.ipynb")):
        path = folder / expected.name
        if not path.is_file():
            found = [p.name for p in sorted(folder.glob("*.ipynb"))]
            found += [f"../{p.name}" for p in sorted(folder.parent.glob("*.ipynb"))]
            return f"missing notebook {expected.name}" + (f" (found: {', '.join(found)})" if found else "")
        problem = notebook_problem(path)
        if problem:
            return f"{expected.name} is not a valid notebook: {problem}"
    return None


def notebook_problem(path):
    """None if ``path`` is a valid notebook; else what is wrong with it, in words."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "not a text file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not text.strip():
        return "the file is empty"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            return f"truncated (the JSON stops at line {exc.lineno})"
        return f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    if not isinstance(data, dict) or "nbformat" not in data:
        return "JSON, but not a notebook (no 'nbformat' field)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
            nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in getattr(exc, "absolute_path", []))
        return f"{exc.message}" + (f" (at {where.lstrip('.')})" if where else "")
    except Exception as exc:  # nbformat raises assorted errors on malformed input
        return f"{type(exc).__name__}: {exc}"
    return None


def _record_zero(grading, student, assignment):
    """A submission that could not be graded: in the gradebook with no score, no stale files."""
    course = Path(grading.course)
    with grading.gradebook() as gb:
        gb.update_or_create_student(student)
        try:
            gb.remove_submission(assignment, student)
        except MissingEntry:
            pass
        gb.add_submission(assignment, student)
    for stage in ("autograded", "feedback"):
        shutil.rmtree(course / stage / student / assignment, ignore_errors=True)


_GENERIC = ("There was an error processing", "Please see the the above traceback", "Traceback (most recent")


def _reason(result):
    """The one line of an nbgrader result that says what went wrong."""
    log = result.get("log") or ""
    errors = [line[len("[ERROR] "):].strip() for line in log.splitlines() if line.startswith("[ERROR] ")]
    errors = [e for e in errors if e and not e.startswith(_GENERIC)]
    exceptions = [line.strip() for line in log.splitlines()
                  if re.match(r"\s+[\w.]+(Error|Exception): ", line)]
    if errors:
        return errors[0]
    if exceptions:
        return exceptions[-1]
    lines = (result.get("error") or log or "autograde failed").strip().splitlines()
    return lines[-1] if lines else "autograde failed"


def _notes(result):
    """What the grader worked around in a submission, from the autograde log."""
    notes, readded = [], []
    for line in (result.get("log") or "").splitlines():
        if NOTE in line:
            notes.append(line.split(NOTE, 1)[1].strip())
        elif m := re.search(r"Missing grade cell (\S+) encountered", line):
            readded.append(m.group(1))
    if readded:
        notes.append(f"test cell{'s' if len(readded) > 1 else ''} {', '.join(readded)} "
                     f"{'were' if len(readded) > 1 else 'was'} missing: re-added")
    return notes


def grade_rows(course, db_url=""):
    """One row per submission: student, assignment, score, max, and per-test-cell scores."""
    rows = []
    with Gradebook(db_url or default_db_url(course)) as gb:
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
                             "score": sub.score, "max_score": sub.max_score, "cells": cells,
                             "flags": review_flags(course, student.id, assignment.name)})
    return rows


def export_csv(rows, path):
    """Grades as CSV: one line per submission, one column per test cell, and the review flags."""
    cell_names = sorted({name for r in rows for name in r["cells"]})
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "assignment", "score", "max_score", *cell_names, "flags"])
        for r in rows:
            writer.writerow([r["student"], r["assignment"], r["score"], r["max_score"],
                             *(r["cells"].get(n, "") for n in cell_names), "; ".join(r["flags"])])


def failures(course, student, assignment):
    """The failure messages the grader wrote into a student's autograded notebooks."""
    messages = []
    for path in sorted((Path(course) / "autograded" / student / assignment).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for check in cell.get("metadata", {}).get("rnn_course", {}).get("checks", []):
                messages.extend(f"{check['task']}: {m}" for m in check["failures"])
    return messages


# What a flag is about, most urgent first: the run, the notebook's cells, the code, the results.
_FLAG_ORDER = ("kernel died", "time limit", "timed out", "output over", "deleted cell", "edited locked",
               "changed nbgrader", "suspicious", "missing results")


def review_flags(course, student, assignment):
    """The review flags (see :mod:`autograder.flags`) of a student's autograded notebooks, most urgent first."""
    found = []
    for path in sorted((Path(course) / "autograded" / student / assignment).glob("*.ipynb")):
        found.extend(f for f in review.read(nbformat.read(path, as_version=4)) if f not in found)
    if not found:  # not graded: what the grader said then
        try:
            done = json.loads(_marker(course, student, assignment).read_text())
            found = [] if done["ok"] else list(done["notes"])
        except (OSError, ValueError, KeyError):
            pass

    def urgency(flag):
        return next((i for i, words in enumerate(_FLAG_ORDER) if flag.startswith(words)), len(_FLAG_ORDER))
    return sorted(found, key=urgency)
