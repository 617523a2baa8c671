"""What the instructor released, kept in ``.rnn-course/released.json``: a change of the
instructor's (a cell's metadata or locked source, changed after release) is never flagged
as the student's.
"""
import json
import re
from pathlib import Path

import nbformat

from . import flags as review
from .notebookcheck import read_notebook


def history_file(course):
    return Path(course) / ".rnn-course" / "released.json"


def remember_released(course, assignments):
    """Add the nbgrader metadata and sources of the course's source notebooks to its history."""
    path = history_file(course)
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


def instructors_doing(assignment, flag, history, sources):
    """True if ``flag`` is explained by an earlier release: the student kept what was released.

    ``sources``: grade id -> source of the submission's cells (:func:`submitted_sources`).
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


def submitted_sources(course, student, assignment, submitted=None):
    """grade id -> source of the first cell with that id in the submitted notebooks (each read once).

    ``submitted``: file name -> bytes of notebooks already read.
    """
    sources = {}
    for path in (Path(course) / "submitted" / student / assignment).glob("*.ipynb"):
        try:
            nb = read_notebook(path, (submitted or {}).get(path.name))
        except Exception:
            continue
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid is not None:
                sources.setdefault(gid, cell.source)
    return sources
