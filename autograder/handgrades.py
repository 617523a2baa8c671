"""Hand grades across regrades and resubmissions, answer by answer.

nbgrader's autograde keeps a cell's manual score and comment whatever the student
handed in since, and marks the cell for review again. The grader decides instead, per
written (hand-graded) answer, by comparing the answer's text with the text that was
graded (the autograded notebook kept in the submission's journal):

* the same answer keeps its score, its comment and its *graded* status;
* a changed answer goes back to awaiting hand grading: its manual score is removed (so
  it is counted nowhere), and the old one is kept as *previous*, shown in the
  formgrader's comment box and by ``stats`` (:func:`previous_grades`).
"""
import json
from pathlib import Path

import nbformat

#: How the comment box of a changed answer starts; the old comment follows.
PREVIOUS = "Previous grade, for an earlier answer:"


def previous_file(course, student, assignment):
    return Path(course) / ".rnn-course" / "previous" / student / f"{assignment}.json"


def answers(folder):
    """(notebook name, grade id) -> source of the cells of the notebooks in ``folder``."""
    found = {}
    for path in sorted(Path(folder).glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:   # an unreadable old copy: its answers count as changed
            continue
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid is not None:
                found.setdefault((path.stem, gid), cell.source)
    return found


def keep_hand_grades(gb, submission, before, old_folder, new_folder, unchanged):
    """After an autograde of ``submission`` (a gradebook SubmittedAssignment): hand grades kept
    or sent back, answer by answer (see the module's docstring). Returns grade id ->
    previous grade of the answers sent back.

    ``before``: the submission's gradebook state before (:func:`autograder.journal.begin`);
    ``old_folder``, ``new_folder``: the autograded notebooks before and now;
    ``unchanged``: the whole submission is the one graded before (nothing to compare).
    """
    if not before:
        return {}
    old = new = {}
    if not unchanged:
        old, new = answers(old_folder), answers(new_folder)
    sent_back = {}
    for nb in submission.notebooks:
        saved = before["notebooks"].get(nb.name, {})
        grades, comments = saved.get("grades", {}), saved.get("comments", {})
        by_name = {c.name: c for c in nb.comments}
        for g in nb.grades:
            auto, manual, _, needed = grades.get(g.name, (None, None, None, None))
            if manual is None:
                continue
            key = (nb.name, g.name)
            if unchanged or (key in old and old[key] == new.get(key)):
                if not needed and g.manual_score == manual:
                    g.needs_manual_grade = False
                continue
            comment = (comments.get(g.name) or (None, None))[1] or ""
            sent_back[g.name] = {"notebook": nb.name, "score": manual, "max_score": g.max_score,
                                 "comment": comment[:2000]}
            g.manual_score, g.needs_manual_grade = None, True
            if g.name in by_name:
                by_name[g.name].manual_comment = (f"{PREVIOUS} {manual:g} / {g.max_score:g}"
                                                  + (f". Its comment: {comment}" if comment else "."))
    gb.db.commit()
    return sent_back


def remember(course, student, assignment, sent_back):
    """Add ``sent_back`` (grade id -> previous grade) to the submission's record of previous grades."""
    if not sent_back:
        return
    path = previous_file(course, student, assignment)
    record = _read(path)
    record.update(sent_back)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def previous_grades(course, student, assignment, awaiting):
    """grade id -> previous grade (``{"score", "max_score", "comment"}``) of the answers in
    ``awaiting`` (those still awaiting hand grading) that were graded for an earlier answer."""
    record = _read(previous_file(course, student, assignment))
    return {gid: record[gid] for gid in awaiting if isinstance(record.get(gid), dict)}


def _read(path):
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
