"""The journal of a submission in flight (``.rnn-course/inflight/<student>/<assignment>/``).

Grading a submission is all or nothing: what the gradebook and the course directory held
for it is kept aside (:func:`begin`) until its grade is complete (:func:`commit`), and put
back if it never is (:func:`restore`).
"""
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

from nbgrader.api import MissingEntry

from .handgrades import RECORDS
from .markers import done_marker

#: The course's folders that hold a submission's graded files, and its record of hand grades.
STAGES = ("autograded", "feedback", RECORDS)
KEPT = "kept.json"   # which of them, and whether a done marker, the journal holds


def journal_dir(course, student, assignment):
    return Path(course) / ".rnn-course" / "inflight" / student / assignment


def journals(course):
    root = Path(course) / ".rnn-course" / "inflight"
    return sorted((s.name, a.name) for s in root.glob("*") for a in s.glob("*") if not a.name.endswith(".tmp"))


def begin(grading, student, assignment):
    """Keep what the submission has now (gradebook entries, graded files, done marker) aside.

    Returns that gradebook state (see :func:`_gradebook_state`).
    """
    course = Path(grading.course)
    final = journal_dir(course, student, assignment)
    if final.exists():
        restore(grading, student, assignment)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = _gradebook_state(grading, student, assignment)
    (tmp / "gradebook.json").write_text(json.dumps(state))
    kept = {"stages": [], "done": False}
    for stage in STAGES:
        if (course / stage / student / assignment).is_dir():
            shutil.copytree(course / stage / student / assignment, tmp / stage, symlinks=True)
            kept["stages"].append(stage)
    marker = done_marker(course, student, assignment)
    if marker.exists():
        shutil.copy(marker, tmp / "done.json")
        kept["done"] = True
    (tmp / KEPT).write_text(json.dumps(kept))
    tmp.rename(final)   # from here on, restore() puts all of this back
    marker.unlink(missing_ok=True)
    return state


def commit(grading, student, assignment):
    shutil.rmtree(journal_dir(grading.course, student, assignment), ignore_errors=True)


def restore(grading, student, assignment):
    """Undo an unfinished grading: the gradebook, graded files and done marker as they were.

    Files are moved back, never copied: a restore needs no free space (a full disk is
    when it is needed most), and one cut short is finished by the next (what was moved
    back is not in the journal any more, and stays).
    """
    course = Path(grading.course)
    journal = journal_dir(course, student, assignment)
    shutil.rmtree(journal.with_name(journal.name + ".tmp"), ignore_errors=True)
    if not journal.exists():
        return
    _set_gradebook_state(grading, student, assignment, json.loads((journal / "gradebook.json").read_text()))
    try:
        kept = json.loads((journal / KEPT).read_text())
    except (OSError, ValueError):   # a journal of an earlier version: what it holds is what was kept
        kept = {"stages": [s for s in STAGES if (journal / s).is_dir()], "done": (journal / "done.json").exists()}
    for stage in STAGES:
        dest = course / stage / student / assignment
        if stage not in kept["stages"]:
            shutil.rmtree(dest, ignore_errors=True)
        elif (journal / stage).is_dir():
            shutil.rmtree(dest, ignore_errors=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(journal / stage, dest)
    marker = done_marker(course, student, assignment)
    if not kept["done"]:
        marker.unlink(missing_ok=True)
    elif (journal / "done.json").exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        os.replace(journal / "done.json", marker)
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
