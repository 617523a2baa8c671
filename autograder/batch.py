"""Batch work on a course directory: release exercises, autograde submissions.

A course directory is nbgrader's: ``source/``, ``release/``, ``submitted/<student>/<assignment>/``,
``autograded/``, ``feedback/`` and ``gradebook.db``; :mod:`autograder.layout` lays it out.

Bad input stops a batch only when nothing can be graded
(:class:`~autograder.outcome.GradingError`). A submission that cannot be graded (missing or
corrupt notebook, :mod:`autograder.notebookcheck`) scores 0 and its
:class:`~autograder.outcome.Outcome` says why in one line; one that was graded despite
something (a timeout, a dead kernel, deleted cells, stripped metadata) carries that in its
Outcome's notes, taken from the review flags (:mod:`autograder.verdicts`) and the grader's
own notes.

Grading a submission is all or nothing (:mod:`autograder.journal`); a done marker
(:mod:`autograder.markers`) records a final grade with what it depends on, so a rerun
grades only what is missing, changed, or may have been the machine's fault.
"""
import dataclasses
import errno
import json
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import nbformat
from nbgrader.api import MissingEntry

from . import coursesettings
from . import feedback
from . import feedbackrefresh
from . import flags as review
from . import forkserver
from . import handgrades
from . import kitdata
from . import latepenalty
from . import sandbox
from . import scheduling
from . import session
from .grader import Grading, api_for, require_success, resolve_cell_timeout
from .journal import begin, commit, journal_dir, journals, restore
from .layout import REPO, assignments_in
from .markers import done_marker, finished, fingerprint, not_recorded, stop_file, ungraded_file
from .notebookcheck import check_submission, notebook_problem, read_notebook
from .outcome import NO_SPACE, GradingError, Interrupted, Outcome, grader_notes, reason
from .verdicts import FLAG_ORDER, review_flags

KIT_DATA = kitdata.expected.PATH


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
            require_success(api.generate_assignment(a, force=True), f"generate_assignment {a}")


def autograde(course, pairs, progress=None, cell_timeout=None, workers=1, scheduler=None, force=True,
              db_url="", notebook_timeout=None):
    """Autograde every (student, assignment), with feedback; returns one Outcome per pair.

    workers, scheduler: see :func:`autograder.scheduling.run` (one process by default).
    force: regrade submissions already graded; otherwise they are skipped unless their
    notebooks or the assignment's source changed since, or their grade may be the
    grader's fault (:attr:`Outcome.retry`): an interrupted batch resumes where it stopped.
    Ctrl-C or SIGTERM raises :class:`Interrupted` after putting back, for every
    submission in flight, what the gradebook and the course directory held before.
    The course's due dates and late-penalty policy (:mod:`autograder.coursesettings`)
    are applied to every graded submission of the course, graded now or before.
    """
    grading = Grading(str(Path(course).resolve()), db_url or "", resolve_cell_timeout(cell_timeout, course),
                      notebook_timeout or 0)
    settings = coursesettings.load(grading.course)
    try:
        feedback.mathjax_script()   # feedback without it would show raw LaTeX offline
    except feedback.FeedbackError as exc:
        raise GradingError(str(exc)) from None
    api = grading.api()
    stop = stop_file(grading.course)
    stop.unlink(missing_ok=True)
    if not scheduler:   # a journal left by a batch that was killed outright
        for student, assignment in journals(grading.course):
            restore(grading, student, assignment)
    for a in sorted({a for _, a in pairs}):
        require_success(api.generate_assignment(a, force=True), f"generate_assignment {a}")
    with grading.gradebook() as gb:   # nbgrader reads how late a submission is from the gradebook
        latepenalty.write_due_dates(gb, settings)
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
    except scheduling.SchedulerLost as exc:   # what finished counts; the rest says why it did not
        lost = [not_recorded(grading, Outcome(s, a, False, retry=True, notes=(exc.why,))) for _, s, a in exc.pending]
        fresh = [*(o for o in exc.results if o is not None), *lost]
    finally:
        session.SharedGradebook.release()   # nothing of this batch's stays connected in this process
        forkserver.close_all()              # nor running: the kernels' zygote ends with the batch
    by_pair = {**earlier, **{(o.student, o.assignment): o for o in fresh}}
    if api.config.AssignLatePenalties.plugin_class is latepenalty.CoursePenalty:
        with grading.gradebook() as gb:   # a policy or due date changed since: counts for earlier grades too
            changed = latepenalty.apply_settings(gb, settings)
        session.SharedGradebook.release()
        for pair, why in feedbackrefresh.refresh_feedback(grading, changed, workers).items():   # the new penalty
            if why and pair in by_pair:
                note = f"feedback not updated for its new late penalty: {why}"
                by_pair[pair] = dataclasses.replace(by_pair[pair], message="", notes=(*by_pair[pair].notes, note))
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
            begin(grading, student, assignment)
            notebooks = {}   # the submission's notebooks, read once: hashed, then checked
            printed = fingerprint(grading.course, student, assignment, notebooks)
            with warnings.catch_warnings():   # nbgrader re-adds cells without an id: nbformat warns
                warnings.filterwarnings("ignore", message="Cell is missing an id field")
                outcome = _grade_one(grading, student, assignment, notebooks)
        except Exception as exc:   # the grader's own failure: keep what was there, retry next run
            if scheduling.stop_requested():
                raise scheduling.Stopped() from None
            return _undone(grading, student, assignment, exc)
        if scheduling.stop_requested():   # interrupted: the grade may be the interruption's
            raise scheduling.Stopped()
        if outcome.retry and not outcome.ok:
            return _undone(grading, student, assignment, outcome=outcome)
        try:
            ungraded_file(grading.course, student, assignment).unlink(missing_ok=True)
            marker = done_marker(grading.course, student, assignment)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({**printed, "ok": outcome.ok, "retry": outcome.retry,
                                          "notes": list(outcome.notes)}))
        except OSError as exc:   # no room for the marker: the grade is not final
            return _undone(grading, student, assignment, exc)
        commit(grading, student, assignment)
        return outcome


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
    except Exception:   # the gradebook on a full disk too: the journal stays, the next run restores it
        pass
    return not_recorded(grading, outcome)


def lost_submission(grading, student, assignment, why):
    """The Outcome of a submission whose grading process died under it (``why``: how); what
    it held before is put back (:func:`restore`), and a rerun grades it."""
    restore(grading, student, assignment)
    return not_recorded(grading, Outcome(student, assignment, False, retry=True, notes=(
        f"the grading process died ({why}); a rerun grades it again",)))


#: Flags that may come from the grading machine rather than the student: graded again next run.
_RETRY_FLAGS = ("kernel died", "time limit", "timed out")


def _grade_one(grading, student, assignment, notebooks):
    """Grade and write feedback (hand grades kept or sent back by the pipeline:
    :mod:`autograder.handgrades`); ``notebooks``: the submission's notebooks' bytes."""
    api, course = grading.api(), grading.course
    problem = check_submission(course, student, assignment, notebooks)
    if problem is None:
        handgrades.record_old_copy(course, student, assignment, journal_dir(course, student, assignment) / "autograded")
        result = api.autograde(assignment, student, force=True, create=True)
        if result.get("success"):
            flagged = review_flags(course, student, assignment, result.get("flags"), notebooks)
            if flagged:
                mark_flagged(grading, student, assignment)
            run = [f for f in flagged if f.startswith(FLAG_ORDER[:4])]
            notes = run + grader_notes(result) + [f for f in flagged if f not in run]
            feedback = api.generate_feedback(assignment, student, force=True)
            if not feedback.get("success"):
                notes.append(f"no feedback: {reason(feedback)}")
            retry = any(f.startswith(_RETRY_FLAGS) and review.OWN_DEATH not in f for f in flagged) \
                or not feedback.get("success")
            return Outcome(student, assignment, True, notes=tuple(notes), retry=retry)
        return Outcome(student, assignment, False, retry=True,
                       notes=(f"not graded, the grader failed: {reason(result)}; a rerun grades it again",))
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
            found.extend(review.review(read_notebook(path, data), nbformat.read(source, as_version=4)))
    return found


def mark_flagged(grading, student, assignment):
    """Set nbgrader's ``flagged`` on the submission's notebooks: formgrader lists them for review."""
    with grading.gradebook() as gb:
        for nb in gb.find_submission(assignment, student).notebooks:
            nb.flagged = True
        gb.db.commit()


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
