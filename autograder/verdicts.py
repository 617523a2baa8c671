"""What the grader said of a submission: the failure messages and review flags it wrote
into the autograded notebooks, and what laying out the course flagged.
"""
import json
from pathlib import Path

import nbformat

from . import flags as review
from .layout import layout_flags
from .markers import done_marker
from .released import history_file, instructors_doing, submitted_sources


#: How a flag names an autograded notebook that cannot be read (emptied by a full disk, cut short).
UNREADABLE = "autograded notebook unreadable"


def autograded(course, student, assignment):
    """[(path, notebook or None if it cannot be read)] of a student's autograded notebooks."""
    found = []
    for path in sorted((Path(course) / "autograded" / student / assignment).glob("*.ipynb")):
        try:
            found.append((path, nbformat.read(path, as_version=4)))
        except Exception:   # empty, cut short, not JSON: nbformat raises assorted errors
            found.append((path, None))
    return found


def failures(course, student, assignment):
    """The failure messages the grader wrote into a student's autograded notebooks (those it can read)."""
    messages = []
    for _, nb in autograded(course, student, assignment):
        if nb is None:
            continue
        for cell in nb.cells:
            for check in cell.get("metadata", {}).get("rnn_course", {}).get("checks", []):
                messages.extend(f"{check['task']}: {m}" for m in check["failures"])
    return messages


# What a flag is about, most urgent first: the run, the notebook's cells, the code, the results.
FLAG_ORDER = ("kernel died", "time limit", "timed out", "output over", "deleted cell", "edited locked",
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
        for path, nb in autograded(course, student, assignment):
            if nb is None:
                found.append(f"{UNREADABLE}: {path.name} (empty or cut short, e.g. by a full disk); "
                             f"grade again with --force")
            else:
                found.extend(f for f in review.read(nb) if f not in found)
    else:
        for name in sorted(written, key=lambda n: f"{n}.ipynb"):   # the order of the files
            found.extend(f for f in written[name] if f not in found)
    if not found:  # not graded: what the grader said then
        try:
            done = json.loads(done_marker(course, student, assignment).read_text())
            found = [] if done["ok"] else list(done["notes"])
        except (OSError, ValueError, KeyError):
            pass
    if any(f.startswith(("changed nbgrader", "edited locked")) for f in found):
        try:
            history = json.loads(history_file(course).read_text())
        except (OSError, ValueError):
            history = {}
        sources = {}
        if any(f.startswith("edited locked") for f in found):
            sources = submitted_sources(course, student, assignment, submitted)
        found = [f for f in found if not instructors_doing(assignment, f, history, sources)]
    found += [f for f in layout_flags(course, student, assignment) if f not in found]

    def urgency(flag):
        if flag.startswith(UNREADABLE):
            return -1
        return next((i for i, words in enumerate(FLAG_ORDER) if flag.startswith(words)), len(FLAG_ORDER))
    return sorted(found, key=urgency)
