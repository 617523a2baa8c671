"""The course directory laid out for grading: ``source/``, ``submitted/<student>/<assignment>/``
and the ``nbgrader_config.py`` that makes nbgrader's own commands use the course's pipeline.

Only regular files are copied from a student's folder, within :data:`LIMITS`; what is
left out, and the Python code a submission ships, become its layout flags
(:func:`layout_flags`).
"""
import json
import os
import shutil
import sys
from pathlib import Path

from . import timestamps
from . import trees
from .ids import id_problem, student_id
from .nbgrader_config import COURSE_CONFIG
from .outcome import GradingError
from .released import remember_released

REPO = Path(__file__).resolve().parent.parent
IGNORED_NAMES = {"__MACOSX"}


def assignments_in(solutions=REPO / "solutions"):
    return sorted(p.name for p in Path(solutions).iterdir() if p.is_dir() and not p.name.startswith("."))


def visible(path):
    return not path.name.startswith(".") and path.name not in IGNORED_NAMES


def init_course(course, solutions=REPO / "solutions"):
    """Create (or update) the course directory without grading: its ``source/`` and ``nbgrader_config.py``.

    Enough for nbgrader's own commands there, e.g. recording due dates before the first grade.
    """
    course = Path(course)
    try:
        course.mkdir(parents=True, exist_ok=True)
        course.chmod(0o700)   # sources with hidden tests, submissions, the gradebook: the instructor's alone
        known = set(assignments_in(solutions))
        remember_released(course, known)
        shutil.copytree(solutions, course / "source", dirs_exist_ok=True)
        remember_released(course, known)
        _write_course_config(course)
    except OSError as exc:
        raise GradingError(f"cannot lay out the course directory {course}: {exc}") from None
    return course


def prepare_course(course, submissions, solutions=REPO / "solutions", problems=None):
    """Lay out ``course`` for grading: source from the repo, submissions copied in.

    Returns the list of (student, assignment) pairs found in ``submissions``,
    whose layout is nbgrader's ``<student>/<assignment>/<notebook>.ipynb``.

    A folder or notebook that does not fit that layout is an error; if ``problems`` is a
    list, it is skipped instead and one line saying why is appended to ``problems``.
    Only a batch with nothing to grade is then an error.

    Only regular files are copied and no link is ever followed: a symbolic link, named
    pipe, device or socket in a student's folder is left out, and flagged for that
    submission alone (:func:`layout_flags`); so is what is over :data:`LIMITS` (folders
    too deep, too many entries, too many bytes: a sparse file counts what it claims).
    A folder whose name cannot be a student id (:func:`id_problem`) is skipped with one
    line; ids are graded in Unicode NFC. The course directory also gets the
    ``nbgrader_config.py`` that makes nbgrader's own commands use the course's pipeline.
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
    init_course(course, solutions)
    try:
        submitted = course / "submitted"
        in_place = submitted.exists() and submitted.resolve() == submissions.resolve()
        for folder, student, assignment in found:
            dest = submitted / student / assignment
            if in_place:
                if folder != student:   # its NFC name, unless taken (then _layout refused it)
                    (submitted / folder).rename(submitted / student)
                left_out = _remove_special(dest)
            else:
                # Replace, not merge: a notebook left from an earlier run must not be graded.
                if os.path.lexists(dest) and not trees.remove(dest):
                    raise OSError(f"cannot remove the earlier copy {dest}")
                left_out = _copy_regular(submissions / folder / assignment, dest)
            _write_layout_flags(course, student, assignment, left_out, _python_code(dest),
                                [flag] if (flag := timestamps.normalise(dest)) else [])
    except OSError as exc:
        raise GradingError(f"cannot lay out the course directory {course}: {exc}") from None
    if problems is not None:
        problems.extend(skipped)
    pairs = []
    for student in sorted(p for p in submitted.iterdir() if plain_dir(p) and visible(p)):
        if id_problem(student.name) or student.name != student_id(student.name):
            continue
        for assignment in sorted(p for p in student.iterdir() if plain_dir(p) and visible(p)):
            if assignment.name in known:
                pairs.append((student.name, assignment.name))
    return pairs


def _special(path):
    """None for a regular file or a folder (not a link to one); else what it is, in words."""
    return trees.kind_of(os.lstat(path).st_mode)


def plain_dir(path):
    return _special(path) is None and path.is_dir()


#: What of a student's folder is copied into the course (see :class:`autograder.trees.Limits`).
LIMITS = trees.Limits()


def _copy_regular(src, dest):
    """Copy the regular files and folders under ``src`` to ``dest`` within :data:`LIMITS`,
    following no link, recursing nowhere.

    Returns ``[(relative path, why it was left out)]``.
    """
    return trees.copy(src, dest, LIMITS)


def _remove_special(folder):
    """Grading in place: remove links, special files and what is over :data:`LIMITS` under
    ``folder``; returns what was removed."""
    removed = [(rel, why) for rel, _, why in trees.walk(folder, LIMITS) if why]
    for rel, _ in removed:
        trees.remove(Path(folder) / rel)
    return removed


def _layout_file(course, student, assignment):
    return Path(course) / ".rnn-course" / "layout" / student / f"{assignment}.json"


#: Files a Python import could pick up (the grading kernel imports none from the submission).
PYTHON_CODE = (".py", ".pyc", ".pth", ".so", ".pyd")


def _python_code(folder):
    """Python modules a submission ships beside its notebook, relative to ``folder``."""
    return [rel for rel in trees.files(folder) if Path(rel).suffix in PYTHON_CODE]


#: At most this many things left out of a submission are named in its flag.
NAMED = 10


def _write_layout_flags(course, student, assignment, left_out, code=(), more_flags=()):
    path = _layout_file(course, student, assignment)
    flags = list(more_flags)
    special = [(name, why) for name, why in left_out if why in trees.SPECIAL]
    over = [(name, why) for name, why in left_out if (name, why) not in special]
    for items, words in ((special, "not regular files"), (over, "over the grader's limits")):
        if items:
            what = ", ".join(f"{name} ({why})" for name, why in items[:NAMED])
            more = f" and {len(items) - NAMED} more" if len(items) > NAMED else ""
            flags.append(f"left out of the submission, {words}: {what}{more}")
    if code:
        more = f" and {len(code) - NAMED} more" if len(code) > NAMED else ""
        flags.append(f"ships Python code beside the notebook, never imported while grading: "
                     f"{', '.join(code[:NAMED])}{more}")
    if not flags:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(flags))


def layout_flags(course, student, assignment):
    """What laying out the course left out of a submission (links, pipes, devices), the Python
    code it ships, and a submission time it could not read (:mod:`autograder.timestamps`)."""
    try:
        return list(json.loads(_layout_file(course, student, assignment).read_text()))
    except (OSError, ValueError):
        return []


def _write_course_config(course):
    """``course/nbgrader_config.py``: the course pipeline for nbgrader's own commands there.

    An instructor's own file is left alone unless it is one this function wrote.
    """
    path = course / "nbgrader_config.py"
    header = COURSE_CONFIG.splitlines()[0]
    if path.exists() and not path.read_text(encoding="utf-8").startswith(header):
        print(f"warning: {path} is not the course's: nbgrader's own commands there may not use "
              f"the course's grading pipeline", file=sys.stderr)
        return
    if not path.exists() or path.read_text(encoding="utf-8") != COURSE_CONFIG:
        path.write_text(COURSE_CONFIG, encoding="utf-8")


def _layout(submissions, known):
    """(student, assignment) folders in ``submissions``, and one line per thing that does not fit."""
    found, skipped, ids = [], [], {}
    layout = "expected <student>/<assignment>/<notebook>.ipynb"
    # a name already in NFC first: it keeps its id, a look-alike in another form is left out
    for entry in sorted((p for p in submissions.iterdir() if visible(p)),
                        key=lambda p: (p.name != student_id(p.name), p.name)):
        problem = id_problem(entry.name)
        if problem:
            skipped.append(f"{ascii(entry.name)}: not a student id, {problem}: left out")
            continue
        student = student_id(entry.name)
        if ids.setdefault(student, entry.name) != entry.name:
            skipped.append(f"{entry.name}: the same student id as {ids[student]} once in Unicode NFC: left out")
            continue
        kind = _special(entry)
        if kind:
            skipped.append(f"{entry.name}: {kind}, not a folder: left out")
            continue
        if not entry.is_dir():
            if entry.suffix == ".ipynb":
                skipped.append(f"{entry.name}: a notebook directly in the submissions folder ({layout})")
            continue
        if entry.name in known:
            skipped.append(f"{entry.name}: a folder named like an assignment where a student's folder "
                           f"should be ({layout})")
            continue
        assignments = []
        for folder in sorted(p for p in entry.iterdir() if visible(p)):
            kind = _special(folder)
            if kind and folder.name in known:
                skipped.append(f"{entry.name}/{folder.name}: {kind}, not a folder: left out")
            elif kind is None and folder.is_dir():
                assignments.append(folder)
        for folder in assignments:
            if folder.name in known:
                found.append((entry.name, student, folder.name))
            else:
                skipped.append(f"{entry.name}/{folder.name}: no such assignment "
                               f"(known: {', '.join(sorted(known))})")
        if not assignments and not any(s.startswith(f"{entry.name}/") for s in skipped):
            loose = sorted(p.name for p in entry.glob("*.ipynb"))
            hint = (f"; found {', '.join(loose)} directly in it, expected {entry.name}/<assignment>/<notebook>.ipynb"
                    if loose else f" ({layout})")
            skipped.append(f"{entry.name}: no assignment folder{hint}")
    return found, skipped


def submitted_pairs(course):
    """Every (student, assignment) folder in the course's ``submitted/``."""
    root = Path(course) / "submitted"
    if not root.is_dir():
        return []
    return sorted((s.name, a.name) for s in root.iterdir() if plain_dir(s) and visible(s)
                  for a in s.iterdir() if plain_dir(a) and visible(a))
