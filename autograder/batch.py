"""Batch work on a course directory: release exercises, autograde submissions, export grades.

A course directory is nbgrader's: ``source/``, ``release/``, ``submitted/<student>/<assignment>/``,
``autograded/``, ``feedback/`` and ``gradebook.db``.

Bad input stops a batch only when nothing can be graded (:class:`GradingError`). A
submission that cannot be graded (missing or corrupt notebook) scores 0 and its
:class:`Outcome` says why in one line; one that was graded despite something (a timeout,
a dead kernel, deleted cells, stripped metadata) carries that in its Outcome's notes,
taken from the review flags (:mod:`autograder.flags`) and the grader's own notes.

Grading a submission is all or nothing: what the gradebook and the course directory held
for it is kept in a journal (``.rnn-course/inflight/``) until its grade is complete, and
put back if the batch is stopped or the grader fails (:func:`begin`, :func:`restore`).
A done marker (``.rnn-course/done/``) records a final grade with what it depends on
(the submission and the assignment's source), so a rerun grades only what is missing,
changed, or may have been the machine's fault.
"""
import csv
import errno
import functools
import json
import os
import re
import shutil
import sys
import threading
import unicodedata
import warnings
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning
from traitlets.config import Config

from . import feedback
from . import flags as review
from . import forkserver
from . import inert
from . import kitdata
from . import sandbox
from . import scheduling
from . import session
from . import timestamps
from . import trees
from . import nbgrader_config
from .nbgrader_config import COURSE_CONFIG, configure
from .preprocessors import NOTE

# nbgrader 0.9 triggers SQLAlchemy 2 session warnings that say nothing to an instructor.
warnings.filterwarnings("ignore", category=SAWarning)

REPO = Path(__file__).resolve().parent.parent
KIT_DATA = kitdata.expected.PATH
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
    """nbgrader's API (a :class:`~autograder.session.CourseAPI`) on the course directory ``root``,
    configured by :func:`configure`."""
    _put_tools_on_path()
    config = configure(Config(), root, db_url=db_url, cell_timeout=resolve_cell_timeout(cell_timeout),
                       notebook_timeout=notebook_timeout or nbgrader_config.NOTEBOOK_TIMEOUT)
    return session.CourseAPI(CourseDirectory(config=config), config=config)


def _put_tools_on_path():
    """nbgrader runs ``alembic`` from PATH: use the one installed beside this interpreter."""
    tools = os.path.dirname(sys.executable)
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")


def _ok(result, what):
    if not result.get("success"):
        raise GradingError(f"{what} failed: {_reason(result)}")
    return result


def release(assignments, solutions=REPO / "solutions", exercises=REPO / "exercises", kit_data=KIT_DATA):
    """Write the kit's data (expected outputs, stamps) to ``kit_data``, then regenerate
    ``exercises/<a>/`` from ``solutions/<a>/`` with nbgrader generate_assignment."""
    known = set(assignments_in(solutions))
    unknown = [a for a in assignments if a not in known]
    if unknown:
        raise GradingError(f"no such assignment: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    kitdata.write(solutions, kit_data)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "source").symlink_to(Path(solutions).resolve())
        (root / "release").symlink_to(Path(exercises).resolve())
        api = api_for(root, db_url=f"sqlite:///{root / 'gradebook.db'}")
        api.config.StampRelease.data_path = str(kit_data)
        for a in assignments:
            _ok(api.generate_assignment(a, force=True), f"generate_assignment {a}")


def assignments_in(solutions=REPO / "solutions"):
    return sorted(p.name for p in Path(solutions).iterdir() if p.is_dir() and not p.name.startswith("."))


def _visible(path):
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
        _remember_released(course, known)
        shutil.copytree(solutions, course / "source", dirs_exist_ok=True)
        _remember_released(course, known)
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
    for student in sorted(p for p in submitted.iterdir() if _plain_dir(p) and _visible(p)):
        if id_problem(student.name) or student.name != student_id(student.name):
            continue
        for assignment in sorted(p for p in student.iterdir() if _plain_dir(p) and _visible(p)):
            if assignment.name in known:
                pairs.append((student.name, assignment.name))
    return pairs


def _special(path):
    """None for a regular file or a folder (not a link to one); else what it is, in words."""
    return trees.kind_of(os.lstat(path).st_mode)


def _plain_dir(path):
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


def id_problem(name):
    """Why a student folder's name cannot be a student id, in words; None if it can.

    Ids are data: any other character is graded as it is (nbgrader sees it escaped,
    see :meth:`autograder.session.CourseAPI.autograde`).
    """
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "its name holds a control character (a newline, a tab, an escape)"
    if name != name.strip():
        return "its name begins or ends with a space"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    return None


def student_id(name):
    """The student id of a folder name: Unicode NFC (a name typed on one system, zipped on another)."""
    return unicodedata.normalize("NFC", name)


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


# --- what the instructor released: changes of theirs are never flagged as the student's ------

def _history_file(course):
    return Path(course) / ".rnn-course" / "released.json"


def _remember_released(course, assignments):
    """Add the nbgrader metadata and sources of the course's source notebooks to its history."""
    path = _history_file(course)
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError):
        history = {}
    for assignment in assignments:
        for nb_path in sorted((Path(course) / "source" / assignment).glob("*.ipynb")):
            try:
                nb = nbformat.read(nb_path, as_version=4)
            except Exception:   # an unreadable source fails later, with nbgrader's message
                continue
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader", {})
                if "grade_id" not in meta:
                    continue
                known = history.setdefault(assignment, {}).setdefault(meta["grade_id"], {})
                for key in ("points", "grade", "solution", "locked"):
                    if key in meta and repr(meta[key]) not in known.setdefault(key, []):
                        known[key].append(repr(meta[key]))
                text = review.without_hidden_tests(cell.source)
                if text not in known.setdefault("source", []):
                    known["source"].append(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(history))


def _instructors_doing(assignment, flag, history, sources):
    """True if ``flag`` is explained by an earlier release: the student kept what was released.

    ``sources``: grade id -> source of the submission's cells (:func:`_submitted_sources`).
    """
    found = re.match(r"changed nbgrader metadata of (\S+): (\w+) .* -> (.*)$", flag)
    if found:
        gid, key, value = found.groups()
        return value in history.get(assignment, {}).get(gid, {}).get(key, [])
    found = re.match(r"edited locked cell (\S+)$", flag)
    if found and found.group(1) in sources:
        released = history.get(assignment, {}).get(found.group(1), {}).get("source", [])
        return review.without_hidden_tests(sources[found.group(1)]) in released
    return False


def _submitted_sources(course, student, assignment, submitted=None):
    """grade id -> source of the first cell with that id in the submitted notebooks (each read once).

    ``submitted``: file name -> bytes of notebooks already read.
    """
    sources = {}
    for path in (Path(course) / "submitted" / student / assignment).glob("*.ipynb"):
        try:
            nb = _read_notebook(path, (submitted or {}).get(path.name))
        except Exception:
            continue
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid is not None:
                sources.setdefault(gid, cell.source)
    return sources


def _layout(submissions, known):
    """(student, assignment) folders in ``submissions``, and one line per thing that does not fit."""
    found, skipped, ids = [], [], {}
    layout = "expected <student>/<assignment>/<notebook>.ipynb"
    # a name already in NFC first: it keeps its id, a look-alike in another form is left out
    for entry in sorted((p for p in submissions.iterdir() if _visible(p)),
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
        for folder in sorted(p for p in entry.iterdir() if _visible(p)):
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


@dataclass
class Outcome:
    """How the grading of one submission went.

    ``ok`` is False when the submission could not be graded at all (it then scores 0);
    ``message`` is one line: why, or what the grader had to work around. ``retry``: the
    result may be the grader's fault (its own error, a timeout, a dead kernel), so a
    plain rerun grades the submission again.
    """
    student: str
    assignment: str
    ok: bool
    message: str = ""
    notes: tuple = ()   # the items of ``message``, most urgent first
    skipped: bool = False   # graded by an earlier run, unchanged since
    retry: bool = False

    def __post_init__(self):
        if self.notes and not self.message:
            self.message = "; ".join(self.notes)
        elif self.message and not self.notes:
            self.notes = (self.message,)


class Interrupted(KeyboardInterrupt):
    """The batch was stopped (Ctrl-C, SIGTERM); ``outcomes`` are those of submissions that finished."""

    def __init__(self, outcomes):
        super().__init__(f"interrupted after {len(outcomes)} submissions")
        self.outcomes = outcomes


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
        """This process's gradebook (:mod:`autograder.session`): use it in a ``with`` block."""
        return session.gradebook(self.gradebook_url, nbgrader_config.COURSE_ID)


def default_db_url(course):
    """SQLite in the course directory; waits for the lock rather than failing under parallel writers."""
    return f"sqlite:///{Path(course).resolve() / 'gradebook.db'}?timeout=120"


@functools.lru_cache(maxsize=4)
def _api(grading):
    """One nbgrader API per process and setting (its applications are reused: :mod:`autograder.session`)."""
    return api_for(grading.course, grading.gradebook_url, grading.cell_timeout or None, grading.notebook_timeout)


def autograde(course, pairs, progress=None, cell_timeout=None, workers=1, scheduler=None, force=True,
              db_url="", notebook_timeout=None):
    """Autograde every (student, assignment), with feedback; returns one Outcome per pair.

    workers, scheduler: see :func:`autograder.scheduling.run` (one process by default).
    force: regrade submissions already graded; otherwise they are skipped unless their
    notebooks or the assignment's source changed since, or their grade may be the
    grader's fault (:attr:`Outcome.retry`): an interrupted batch resumes where it stopped.
    Ctrl-C or SIGTERM raises :class:`Interrupted` after putting back, for every
    submission in flight, what the gradebook and the course directory held before.
    """
    grading = Grading(str(Path(course).resolve()), db_url or "", resolve_cell_timeout(cell_timeout),
                      notebook_timeout or 0)
    try:
        feedback.mathjax_script()   # feedback without it would show raw LaTeX offline
    except feedback.FeedbackError as exc:
        raise GradingError(str(exc)) from None
    api = grading.api()
    stop = _stop_file(grading.course)
    stop.unlink(missing_ok=True)
    if not scheduler:   # a journal left by a batch that was killed outright
        for student, assignment in _journals(grading.course):
            restore(grading, student, assignment)
    for a in sorted({a for _, a in pairs}):
        _ok(api.generate_assignment(a, force=True), f"generate_assignment {a}")
    earlier = {} if force else {p: o for p in pairs if (o := finished(grading, *p))}
    for outcome in earlier.values():
        if progress:
            progress(outcome)
    todo = [(grading, s, a) for s, a in pairs if (s, a) not in earlier]
    _create_students(grading, {s for _, s, _ in todo})
    session.SharedGradebook.release()   # forked workers open connections of their own
    if not scheduler and workers > 1 and len(todo) > 1:   # one zygote for all the workers
        sandbox.zygote_for(sandbox.Sandbox(config=api.config), api.log)
    try:
        fresh = scheduling.run(grade_submission, todo, workers=workers, scheduler=scheduler, progress=progress,
                               stop_file=stop, abort=restore, lost=lost_submission)
    except scheduling.Interrupted as exc:
        raise Interrupted([*earlier.values(), *(o for o in exc.results if o is not None)]) from None
    finally:
        session.SharedGradebook.release()   # nothing of this batch's stays connected in this process
        forkserver.close_all()              # nor running: the kernels' zygote ends with the batch
    by_pair = {**earlier, **{(o.student, o.assignment): o for o in fresh}}
    return [by_pair[p] for p in pairs]


def _create_students(grading, students):
    """Every student in the gradebook before any worker starts: two workers grading one student's
    assignments would otherwise both create the student, and one would fail (UNIQUE constraint)."""
    with grading.gradebook() as gb:
        for student in sorted(students):
            try:
                gb.find_student(student)
            except MissingEntry:
                gb.add_student(student)


_GRADING = threading.Lock()   # nbgrader's autograde sets process-wide environment variables


def grade_submission(grading, student, assignment):
    """Autograde one submission and write its feedback, in this process; records that it is done.

    What the gradebook and the course directory held for the submission is kept in a
    journal until the grade is complete; :func:`restore` puts it back if it never is.
    """
    with _GRADING, session.sharing():
        try:
            before = begin(grading, student, assignment)
            notebooks = {}   # the submission's notebooks, read once: hashed, then checked
            printed = fingerprint(grading.course, student, assignment, notebooks)
            with warnings.catch_warnings():   # nbgrader re-adds cells without an id: nbformat warns
                warnings.filterwarnings("ignore", message="Cell is missing an id field")
                outcome = _grade_one(grading, student, assignment, before, printed["hash"], notebooks)
        except Exception as exc:   # the grader's own failure: keep what was there, retry next run
            if scheduling.stop_requested():
                raise scheduling.Stopped() from None
            return _undone(grading, student, assignment, exc)
        if scheduling.stop_requested():   # interrupted: the grade may be the interruption's
            raise scheduling.Stopped()
        if outcome.retry and not outcome.ok:
            return _undone(grading, student, assignment, outcome=outcome)
        try:
            _ungraded_file(grading.course, student, assignment).unlink(missing_ok=True)
            marker = _marker(grading.course, student, assignment)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({**printed, "ok": outcome.ok, "retry": outcome.retry,
                                          "notes": list(outcome.notes)}))
        except OSError as exc:   # no room for the marker: the grade is not final
            return _undone(grading, student, assignment, exc)
        commit(grading, student, assignment)
        return outcome


#: How an Outcome names a full disk; the grade command looks for these words.
NO_SPACE = "no space left on device"


def _undone(grading, student, assignment, exc=None, outcome=None):
    """Put back what the submission had (:func:`restore`) and return why it has no new grade:
    ``outcome``, or one made from the grader's own error ``exc``. A restore that fails (a
    full disk) leaves the journal for the next run, which restores it first."""
    if outcome is None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            why = f"{NO_SPACE} ({exc.filename or grading.course}); free space, then grade again"
        else:
            why = f"not graded, the grader failed ({type(exc).__name__}: {exc}); a rerun grades it again"
        outcome = Outcome(student, assignment, False, retry=True, notes=(why,))
    try:
        restore(grading, student, assignment)
    except OSError:
        pass
    return _not_recorded(grading, outcome)


def lost_submission(grading, student, assignment, why):
    """The Outcome of a submission whose grading process died under it (``why``: how); what
    it held before is put back (:func:`restore`), and a rerun grades it."""
    restore(grading, student, assignment)
    return _not_recorded(grading, Outcome(student, assignment, False, retry=True, notes=(
        f"the grading process died ({why}); a rerun grades it again",)))


def _marker(course, student, assignment):
    return Path(course) / ".rnn-course" / "done" / student / f"{assignment}.json"


def _ungraded_file(course, student, assignment):
    return Path(course) / ".rnn-course" / "ungraded" / student / f"{assignment}.txt"


def _not_recorded(grading, outcome):
    """Keep why ``outcome``'s submission has no new grade, for :func:`ungraded_reason`; returns it."""
    path = _ungraded_file(grading.course, outcome.student, outcome.assignment)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(outcome.message[:1000])
    except OSError:
        pass   # the reason is lost, not the batch: stats then says the submission is not graded yet
    return outcome


def ungraded_reason(course, student, assignment):
    """Why a submission in ``submitted/`` has no grade in the gradebook, in one line."""
    try:
        return _ungraded_file(course, student, assignment).read_text()
    except OSError:
        return "not graded yet: run the grade command"


def submitted_pairs(course):
    """Every (student, assignment) folder in the course's ``submitted/``."""
    root = Path(course) / "submitted"
    if not root.is_dir():
        return []
    return sorted((s.name, a.name) for s in root.iterdir() if _plain_dir(s) and _visible(s)
                  for a in s.iterdir() if _plain_dir(a) and _visible(a))


def _stop_file(course):
    return Path(course) / ".rnn-course" / "stop"


def _hash_folder(folder, notebooks=None):
    """SHA-256 of the names and contents of the regular files under ``folder``, read in blocks.

    ``notebooks``: a dict that receives name -> bytes of the notebooks directly in ``folder``.
    """
    digest, kept = trees.digest(folder, keep=lambda rel: notebooks is not None and "/" not in rel
                                and rel.endswith(".ipynb"))
    if notebooks is not None:
        notebooks.update(kept)
    return digest


def submission_hash(course, student, assignment):
    return _hash_folder(Path(course) / "submitted" / student / assignment)


def fingerprint(course, student, assignment, notebooks=None):
    """What a grade depends on: the submission and the assignment's source.

    ``notebooks``: see :func:`_hash_folder` (the submission's).
    """
    return {"hash": _hash_folder(Path(course) / "submitted" / student / assignment, notebooks),
            "source": _hash_folder(Path(course) / "source" / assignment)}


def finished(grading, student, assignment):
    """The Outcome of an earlier, final grading of this very submission and source, or None."""
    marker = _marker(grading.course, student, assignment)
    try:
        done = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if done.get("retry") or any(done.get(k) != v for k, v in fingerprint(grading.course, student,
                                                                          assignment).items()):
        return None
    return Outcome(student, assignment, done["ok"], notes=tuple(done["notes"]), skipped=True)


# --- the journal of a submission in flight ---------------------------------------------------

def _journal(course, student, assignment):
    return Path(course) / ".rnn-course" / "inflight" / student / assignment


def _journals(course):
    root = Path(course) / ".rnn-course" / "inflight"
    return sorted((s.name, a.name) for s in root.glob("*") for a in s.glob("*") if not a.name.endswith(".tmp"))


def begin(grading, student, assignment):
    """Keep what the submission has now (gradebook entries, graded files, done marker) aside.

    Returns that gradebook state (see :func:`_gradebook_state`).
    """
    course = Path(grading.course)
    final = _journal(course, student, assignment)
    if final.exists():
        restore(grading, student, assignment)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = _gradebook_state(grading, student, assignment)
    (tmp / "gradebook.json").write_text(json.dumps(state))
    for stage in ("autograded", "feedback"):
        if (course / stage / student / assignment).is_dir():
            shutil.copytree(course / stage / student / assignment, tmp / stage, symlinks=True)
    marker = _marker(course, student, assignment)
    if marker.exists():
        shutil.copy(marker, tmp / "done.json")
    tmp.rename(final)   # from here on, restore() puts all of this back
    marker.unlink(missing_ok=True)
    return state


def commit(grading, student, assignment):
    shutil.rmtree(_journal(grading.course, student, assignment), ignore_errors=True)


def restore(grading, student, assignment):
    """Undo an unfinished grading: the gradebook, graded files and done marker as they were."""
    course = Path(grading.course)
    journal = _journal(course, student, assignment)
    shutil.rmtree(journal.with_name(journal.name + ".tmp"), ignore_errors=True)
    if not journal.exists():
        return
    _set_gradebook_state(grading, student, assignment, json.loads((journal / "gradebook.json").read_text()))
    for stage in ("autograded", "feedback"):
        shutil.rmtree(course / stage / student / assignment, ignore_errors=True)
        if (journal / stage).is_dir():
            shutil.copytree(journal / stage, course / stage / student / assignment, symlinks=True)
    marker = _marker(course, student, assignment)
    marker.unlink(missing_ok=True)
    if (journal / "done.json").exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(journal / "done.json", marker)
    shutil.rmtree(journal)


def _gradebook_state(grading, student, assignment):
    """The submission's gradebook entries: None if there is none."""
    with grading.gradebook() as gb:
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return None
        return {"timestamp": sub.timestamp.isoformat() if sub.timestamp else None,
                "notebooks": {nb.name: {
                    "flagged": nb.flagged,
                    "grades": {g.name: [g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade]
                               for g in nb.grades},
                    "comments": {c.name: [c.auto_comment, c.manual_comment] for c in nb.comments}}
                    for nb in sub.notebooks}}


def _set_gradebook_state(grading, student, assignment, state):
    with grading.gradebook() as gb:
        if state is None:
            try:
                gb.remove_submission(assignment, student)
            except MissingEntry:
                pass
            return
        gb.update_or_create_student(student)
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            sub = gb.add_submission(assignment, student)
        sub.timestamp = datetime.fromisoformat(state["timestamp"]) if state["timestamp"] else None
        for nb in sub.notebooks:
            saved = state["notebooks"].get(nb.name)
            if saved is None:
                continue
            nb.flagged = saved["flagged"]
            for g in nb.grades:
                if g.name in saved["grades"]:
                    g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade = saved["grades"][g.name]
            for c in nb.comments:
                if c.name in saved["comments"]:
                    c.auto_comment, c.manual_comment = saved["comments"][c.name]
        gb.db.commit()


def _keep_hand_grades(grading, student, assignment, before, unchanged):
    """A regrade of an unchanged submission keeps hand grades *and* their graded status.

    nbgrader marks every cell with a manual score as needing grading again on autograde.
    """
    if not before or not unchanged:
        return
    with grading.gradebook() as gb:
        for nb in gb.find_submission(assignment, student).notebooks:
            saved = before["notebooks"].get(nb.name, {}).get("grades", {})
            for g in nb.grades:
                old = saved.get(g.name)
                if old and old[1] is not None and not old[3] and g.manual_score == old[1]:
                    g.needs_manual_grade = False
        gb.db.commit()


#: Flags that may come from the grading machine rather than the student: graded again next run.
_RETRY_FLAGS = ("kernel died", "time limit", "timed out")


def _grade_one(grading, student, assignment, before, digest, notebooks):
    """Grade and write feedback; ``digest``: the submission's hash; ``notebooks``: its notebooks' bytes."""
    api, course = grading.api(), grading.course
    problem = check_submission(course, student, assignment, notebooks)
    if problem is None:
        previous = {}
        journal = _journal(course, student, assignment) / "done.json"
        if journal.exists():
            previous = json.loads(journal.read_text())
        unchanged = previous.get("hash") == digest
        result = api.autograde(assignment, student, force=True, create=True)
        if result.get("success"):
            _keep_hand_grades(grading, student, assignment, before, unchanged)
            flagged = review_flags(course, student, assignment, result.get("flags"), notebooks)
            if flagged:
                mark_flagged(grading, student, assignment)
            run = [f for f in flagged if f.startswith(_FLAG_ORDER[:4])]
            notes = run + _notes(result) + [f for f in flagged if f not in run]
            feedback = api.generate_feedback(assignment, student, force=True)
            if not feedback.get("success"):
                notes.append(f"no feedback: {_reason(feedback)}")
            retry = any(f.startswith(_RETRY_FLAGS) and review.OWN_DEATH not in f for f in flagged) \
                or not feedback.get("success")
            return Outcome(student, assignment, True, notes=tuple(notes), retry=retry)
        return Outcome(student, assignment, False, retry=True,
                       notes=(f"not graded, the grader failed: {_reason(result)}; a rerun grades it again",))
    _record_zero(grading, student, assignment)
    return Outcome(student, assignment, False,
                   notes=(problem, *submitted_flags(course, student, assignment, notebooks)))


def submitted_flags(course, student, assignment, notebooks=None):
    """Review flags of a submission that could not be graded, read from what was submitted.

    ``notebooks``: name -> bytes of the submission's notebooks, already read.
    """
    found = []
    for source in sorted((Path(course) / "source" / assignment).glob("*.ipynb")):
        path = Path(course) / "submitted" / student / assignment / source.name
        data = (notebooks or {}).get(source.name)
        if notebook_problem(path, data) is None:
            found.extend(review.review(_read_notebook(path, data), nbformat.read(source, as_version=4)))
    return found


def _text(data):
    """A file's bytes as ``Path.read_text`` reads them: UTF-8, universal newlines."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def _read_notebook(path, data=None):
    """The notebook at ``path``, from ``data`` (its bytes) if already read."""
    return nbformat.read(path, as_version=4) if data is None else nbformat.reads(_text(data), as_version=4)


def mark_flagged(grading, student, assignment):
    """Set nbgrader's ``flagged`` on the submission's notebooks: formgrader lists them for review."""
    with grading.gradebook() as gb:
        for nb in gb.find_submission(assignment, student).notebooks:
            nb.flagged = True
        gb.db.commit()


def check_submission(course, student, assignment, notebooks=None):
    """None if every notebook of the assignment is there and readable; else what is wrong, in one line.

    ``notebooks``: name -> bytes of the submission's notebooks, already read (see :func:`fingerprint`).
    """
    course = Path(course)
    folder = course / "submitted" / student / assignment
    for expected in sorted((course / "source" / assignment).glob("*.ipynb")):
        path = folder / expected.name
        if not path.is_file():
            found = [p.name for p in sorted(folder.glob("*.ipynb"))]
            found += [f"../{p.name}" for p in sorted(folder.parent.glob("*.ipynb"))]
            return f"missing notebook {expected.name}" + (f" (found: {', '.join(found)})" if found else "")
        problem = notebook_problem(path, (notebooks or {}).get(expected.name))
        if problem and problem.startswith(TOO_LARGE):
            return f"{expected.name} is {problem}"
        if problem:
            return f"{expected.name} is not a valid notebook: {problem}"
    return None


#: The largest notebook graded, in bytes and in cells (the released ones hold 10 to 30 cells
#: and 10 to 30 kB): decided before any work, a bigger one is not graded.
MAX_NOTEBOOK_BYTES = 16 * 1024 ** 2
MAX_CELLS = 500
TOO_LARGE = "too large to grade"


def notebook_problem(path, data=None):
    """None if ``path`` is a valid notebook; else what is wrong with it, in words.

    ``data``: the file's bytes, if already read.
    """
    try:
        size = os.stat(path).st_size if data is None else len(data)
        if size > MAX_NOTEBOOK_BYTES:
            return f"{TOO_LARGE}: {size / 1024 ** 2:.1f} MB (the limit is {MAX_NOTEBOOK_BYTES // 1024 ** 2} MB)"
        text = Path(path).read_text(encoding="utf-8") if data is None else _text(data)
    except UnicodeDecodeError:
        return "not a text file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not text.strip():
        return "the file is empty"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):   # ran into the end
            return f"truncated (the JSON stops at line {text.rstrip().count(chr(10)) + 1})"
        what = re.sub(r"\s+at$", "", exc.msg)   # "Unterminated string starting at" + " at line ..."
        return f"not JSON ({what} at line {exc.lineno}, column {exc.colno})"
    if not isinstance(data, dict) or "nbformat" not in data:
        return "JSON, but not a notebook (no 'nbformat' field)"
    cells = _cell_count(data)
    if cells > MAX_CELLS:
        return f"{TOO_LARGE}: {cells} cells (the limit is {MAX_CELLS})"
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


def _cell_count(data):
    """Cells of a notebook's JSON, nbformat 4 (``cells``) or 3 (``worksheets``)."""
    def count(cells):
        return len(cells) if isinstance(cells, list) else 0
    worksheets = data.get("worksheets")
    if isinstance(worksheets, list):
        return count(data.get("cells")) + sum(count(w.get("cells")) for w in worksheets if isinstance(w, dict))
    return count(data.get("cells"))


def _record_zero(grading, student, assignment):
    """A submission that could not be graded: in the gradebook with no score, no stale files."""
    course = Path(grading.course)
    with grading.gradebook() as gb:
        gb.update_or_create_student(student)
        try:
            gb.remove_submission(assignment, student)
        except MissingEntry:
            pass
        submission = gb.add_submission(assignment, student)
        for nb in submission.notebooks:   # nothing awaits a person: there is nothing to grade
            for grade in nb.grades:
                grade.auto_score, grade.needs_manual_grade = 0.0, False
        gb.db.commit()
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
    """One row per submission: student, assignment, score, max, per-test-cell scores, flags.

    ``awaiting``: cell -> points of cells that await grading by hand
    (:func:`awaits_hand_grading`); their entry in ``cells`` is None, not 0.
    """
    rows = []
    with Gradebook(db_url or default_db_url(course)) as gb:
        for assignment in gb.assignments:
            for student in gb.students:
                try:
                    sub = gb.find_submission(assignment.name, student.id)
                except MissingEntry:
                    continue
                cells, awaiting = {}, {}
                for nb in sub.notebooks:
                    for grade in nb.grades:
                        if awaits_hand_grading(grade):
                            cells[grade.name] = None
                            awaiting[grade.name] = grade.max_score
                        else:
                            cells[grade.name] = grade.score
                rows.append({"student": student.id, "assignment": assignment.name,
                             "score": sub.score, "max_score": sub.max_score, "cells": cells,
                             "awaiting": awaiting,
                             "flags": review_flags(course, student.id, assignment.name)})
    return rows


AWAITING = "awaiting hand grading"


def awaits_hand_grading(grade):
    """True for a gradebook grade no person has given yet (nbgrader also marks graded answers for
    review again after ``nbgrader autograde``: they keep their score)."""
    return bool(grade.needs_manual_grade) and grade.manual_score is None


def export_csv(rows, path):
    """Grades as CSV: one line per submission, one column per test cell, and the review flags.

    A cell awaiting grading by hand reads ``awaiting hand grading`` (not 0); the
    ``awaiting_points`` column says how many points are still to be given by hand.
    Text cells are inert in a terminal and a spreadsheet (:func:`autograder.inert.csv_row`).
    """
    cell_names = sorted({name for r in rows for name in r["cells"]})
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "assignment", "score", "max_score", "awaiting_points", *cell_names, "flags"])
        for r in rows:
            cells = [AWAITING if n in r.get("awaiting", {}) else r["cells"].get(n, "") for n in cell_names]
            writer.writerow(inert.csv_row([r["student"], r["assignment"], r["score"], r["max_score"],
                                           sum(r.get("awaiting", {}).values()), *cells, "; ".join(r["flags"])]))


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


def review_flags(course, student, assignment, written=None, submitted=None):
    """The review flags (see :mod:`autograder.flags`) of a student's autograded notebooks, most urgent first.

    A flag explained by an earlier release (the student kept what the instructor
    released, the instructor changed it since) is dropped; what laying out the course
    left out of the submission is added.

    ``written``: notebook -> flags, as the grader just wrote them (else read from the
    autograded notebooks); ``submitted``: file name -> bytes of the submitted notebooks,
    if already read.
    """
    found = []
    if written is None:
        for path in sorted((Path(course) / "autograded" / student / assignment).glob("*.ipynb")):
            found.extend(f for f in review.read(nbformat.read(path, as_version=4)) if f not in found)
    else:
        for name in sorted(written, key=lambda n: f"{n}.ipynb"):   # the order of the files
            found.extend(f for f in written[name] if f not in found)
    if not found:  # not graded: what the grader said then
        try:
            done = json.loads(_marker(course, student, assignment).read_text())
            found = [] if done["ok"] else list(done["notes"])
        except (OSError, ValueError, KeyError):
            pass
    if any(f.startswith(("changed nbgrader", "edited locked")) for f in found):
        try:
            history = json.loads(_history_file(course).read_text())
        except (OSError, ValueError):
            history = {}
        sources = {}
        if any(f.startswith("edited locked") for f in found):
            sources = _submitted_sources(course, student, assignment, submitted)
        found = [f for f in found if not _instructors_doing(assignment, f, history, sources)]
    found += [f for f in layout_flags(course, student, assignment) if f not in found]

    def urgency(flag):
        return next((i for i, words in enumerate(_FLAG_ORDER) if flag.startswith(words)), len(_FLAG_ORDER))
    return sorted(found, key=urgency)
