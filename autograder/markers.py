"""What the grader records of a submission besides the gradebook, in ``.rnn-course/``.

A done marker (``done/``) holds a final grade's outcome and what it depends on (the
submission and the assignment's source, :func:`fingerprint`), so a rerun grades only what
is missing, changed, or may have been the machine's fault (:func:`finished`). A note in
``ungraded/`` says why a submission has no new grade (:func:`ungraded_reason`).
"""
import json
from pathlib import Path

from . import trees
from .outcome import Outcome


def done_marker(course, student, assignment):
    return Path(course) / ".rnn-course" / "done" / student / f"{assignment}.json"


def ungraded_file(course, student, assignment):
    return Path(course) / ".rnn-course" / "ungraded" / student / f"{assignment}.txt"


def not_recorded(grading, outcome):
    """Keep why ``outcome``'s submission has no new grade, for :func:`ungraded_reason`; returns it."""
    path = ungraded_file(grading.course, outcome.student, outcome.assignment)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(outcome.message[:1000])
    except OSError:
        pass   # the reason is lost, not the batch: stats then says the submission is not graded yet
    return outcome


def ungraded_reason(course, student, assignment):
    """Why a submission in ``submitted/`` has no grade in the gradebook, in one line."""
    try:
        return ungraded_file(course, student, assignment).read_text()
    except OSError:
        return "not graded yet: run the grade command"


def stop_file(course):
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
    marker = done_marker(grading.course, student, assignment)
    try:
        done = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if done.get("retry") or any(done.get(k) != v for k, v in fingerprint(grading.course, student,
                                                                          assignment).items()):
        return None
    return Outcome(student, assignment, done["ok"], notes=tuple(done["notes"]), skipped=True)
