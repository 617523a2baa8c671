"""Feedback pages written again after their late penalty changed (:mod:`autograder.latepenalty`).

:func:`refresh_feedback` rewrites the pages of many submissions in a bounded pool of
worker processes (:mod:`autograder.scheduling`), with a progress bar on stderr like the
batch's. Each submission's page is replaced whole or not at all: the page it had is kept
aside (``.rnn-course/feedback-kept/<student>/<assignment>/``) while nbgrader writes the
new one, and put back if nbgrader fails, the worker dies or the run is interrupted.
One page that cannot be written costs only that page, and is named with why.
"""
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from . import scheduling
from .outcome import reason

KEPT = Path(".rnn-course") / "feedback-kept"


def refresh_feedback(grading, pairs, workers=None):
    """The feedback pages of ``pairs`` ((student, assignment)) of ``grading``'s course written
    again, ``workers`` at a time (default :func:`scheduling.default_workers`). Returns
    {pair: why} of those that could not be (they keep the page they had)."""
    pairs = list(pairs)
    if not pairs:
        return {}
    failed = {}
    with tqdm(total=len(pairs), desc="feedback pages", unit="page", file=sys.stderr) as bar:
        def progress(result):
            bar.update(1)
            if result[2] is not None:
                failed[result[:2]] = result[2]
        scheduling.run(rewrite_page, [(grading, s, a) for s, a in pairs], workers=workers, progress=progress,
                       abort=put_back, lost=lost_page)
    return failed


def rewrite_page(grading, student, assignment):
    """One submission's feedback written again: (student, assignment, why it failed or None)."""
    course = Path(grading.course)
    page, kept = course / "feedback" / student / assignment, course / KEPT / student / assignment
    put_back(grading, student, assignment)   # left by a run that was killed
    if page.is_dir():
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(page, kept, symlinks=True)
    try:
        result = grading.api().generate_feedback(assignment, student, force=True)
        why = None if result.get("success") else reason(result)
    except Exception as exc:   # the grader's own failure (a full disk): this page only
        why = f"{type(exc).__name__}: {exc}"
    if why is None:
        shutil.rmtree(kept, ignore_errors=True)
    else:
        put_back(grading, student, assignment)
    return student, assignment, why


def put_back(grading, student, assignment):
    """The page kept aside for (student, assignment), if any, back in place of what is there."""
    course = Path(grading.course)
    page, kept = course / "feedback" / student / assignment, course / KEPT / student / assignment
    if kept.is_dir():
        shutil.rmtree(page, ignore_errors=True)
        page.parent.mkdir(parents=True, exist_ok=True)
        kept.rename(page)


def lost_page(grading, student, assignment, why):
    put_back(grading, student, assignment)
    return student, assignment, f"the process writing it died ({why})"
