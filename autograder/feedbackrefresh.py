"""Feedback pages written again after their late penalty changed (:mod:`autograder.latepenalty`).

:func:`refresh_feedback` rewrites the pages of many submissions in a bounded pool of
worker processes (:mod:`autograder.scheduling`), with a progress bar on stderr like the
batch's. Each submission's page is replaced whole or not at all: the page it had is kept
aside (``.rnn-course/feedback-kept/<student>/<assignment>/``) while nbgrader writes the
new one, and put back if nbgrader fails, the worker dies or the run is interrupted.
One page that cannot be written costs only that page, and is named with why; it is owed
(``.rnn-course/feedback-owed/<student>/<assignment>``) and written at the next refresh
(the next ``grade`` or ``course set``), though its penalty does not change again.
"""
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from . import scheduling
from .outcome import reason

KEPT = Path(".rnn-course") / "feedback-kept"
OWED = Path(".rnn-course") / "feedback-owed"


def refresh_feedback(grading, pairs, workers=None):
    """The feedback pages of ``pairs`` ((student, assignment)) of ``grading``'s course written
    again, with those owed since an earlier refresh, ``workers`` at a time (default
    :func:`scheduling.default_workers`). Returns {pair: None if written, else why not}
    (a page not written keeps the one it had)."""
    owed = Path(grading.course) / OWED
    pairs = sorted(set(pairs) | {(s.name, a.name) for s in owed.glob("*") for a in s.glob("*")})
    if not pairs:
        return {}
    with tqdm(total=len(pairs), desc="feedback pages", unit="page", file=sys.stderr) as bar:
        results = scheduling.run(rewrite_page, [(grading, s, a) for s, a in pairs], workers=workers,
                                 progress=lambda _: bar.update(1), abort=put_back, lost=lost_page)
    return {(student, assignment): why for student, assignment, why in results}


def rewrite_page(grading, student, assignment):
    """One submission's feedback written again: (student, assignment, why it failed or None)."""
    course = Path(grading.course)
    page, kept = _places(course, student, assignment)
    put_back(grading, student, assignment)   # left by a run that was killed
    if page.is_dir():
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(page, kept, symlinks=True)
    try:
        result = grading.api().generate_feedback(assignment, student, force=True)
        why = None if result.get("success") else reason(result)
    except Exception as exc:   # the grader's own failure (a full disk): this page only
        why = f"{type(exc).__name__}: {exc}"
    owed = course / OWED / student / assignment
    if why is None:
        shutil.rmtree(kept, ignore_errors=True)
        owed.unlink(missing_ok=True)
        for empty in (kept.parent, owed.parent):   # nothing left behind for this student
            try:
                empty.rmdir()
            except OSError:
                pass
    else:
        put_back(grading, student, assignment)
        owed.parent.mkdir(parents=True, exist_ok=True)
        owed.touch()
    return student, assignment, why


def put_back(grading, student, assignment):
    """The page kept aside for (student, assignment), if any, back in place of what is there."""
    page, kept = _places(Path(grading.course), student, assignment)
    if kept.is_dir():
        shutil.rmtree(page, ignore_errors=True)
        page.parent.mkdir(parents=True, exist_ok=True)
        kept.rename(page)


def _places(course, student, assignment):
    """(the submission's feedback folder, where it is kept aside while a new one is written)."""
    return course / "feedback" / student / assignment, course / KEPT / student / assignment


def lost_page(grading, student, assignment, why):
    put_back(grading, student, assignment)
    return student, assignment, f"the process writing it died ({why})"
