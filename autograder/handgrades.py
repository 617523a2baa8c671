"""Hand grades across regrades and resubmissions, answer by answer.

nbgrader's autograde keeps a cell's manual score and comment whatever the student
handed in since, and marks the cell for review again. The course's autograde pipeline
(the grade command and stock ``nbgrader autograde`` in the course directory, so the
formgrader's *Autograde* button too) saves grades with :class:`SaveKeepingHandGrades`
instead, which decides per graded cell by comparing the answer's text with the text that
was graded last time (a digest in the course's record, :func:`answers_file`):

* the same answer keeps its score, its comment and its *graded* status;
* a changed answer goes back to awaiting hand grading: its manual score is removed (so
  it is counted nowhere), and the old one is kept as *previous*, shown in the
  formgrader's comment box and by ``stats`` (:func:`previous_grades`).

No record (the answers graded before are unknown): every hand-graded answer counts as
changed, and the log says so in one line. The record lives in the instructors' course
directory (``.rnn-course/hand-grades/<student>/<assignment>/``), never in what a student
hands in; the grade command journals it with the submission (:mod:`autograder.journal`).
"""
import hashlib
import json
import os
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from nbgrader.preprocessors import SaveAutoGrades
from traitlets import Unicode

from .inert import terminal
from .preprocessors import CommitLater, SaveAutoGradesAtOnce

#: How the comment box of a changed answer starts; the old comment follows.
PREVIOUS = "Previous grade, for an earlier answer:"
#: The course's records of hand grades, per submission: kept with it by the journal.
RECORDS = ".rnn-course/hand-grades"
MAX_RECORD = 1 << 20   # bytes; a larger record is not ours: unreadable
MAX_COMMENT = 2000     # characters of an old comment kept as previous


def record_dir(course, student, assignment):
    if any(name in ("", ".", "..") or "/" in name or "\\" in name for name in (student, assignment)):
        raise ValueError(f"not a student or assignment id: {student!r}, {assignment!r}")
    return Path(course) / RECORDS / student / assignment


def answers_file(course, student, assignment, notebook):
    """The digests of the answers of ``notebook`` graded last: {"answers": {grade id: sha256}}."""
    if "/" in notebook or "\\" in notebook or notebook in ("", ".", ".."):
        raise ValueError(f"not a notebook name: {notebook!r}")
    return record_dir(course, student, assignment) / "answers" / f"{notebook}.json"


def previous_file(course, student, assignment):
    return record_dir(course, student, assignment) / "previous.json"


def digest(source):
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def cell_answers(nb, grade_ids):
    """grade id -> digest of the source of the first cell holding it in ``nb``, for ``grade_ids``."""
    found = {}
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in grade_ids and gid not in found:
            found[gid] = digest(cell.source)
    return found


def graded_answers(course, student, assignment, notebook):
    """The recorded digests (grade id -> sha256) of ``notebook``; None without a readable record."""
    answers = _read(answers_file(course, student, assignment, notebook)).get("answers")
    if not isinstance(answers, dict) or not all(isinstance(v, str) for v in answers.values()):
        return None
    return answers


def record_answers(course, student, assignment, notebook, answers):
    _write(answers_file(course, student, assignment, notebook), {"answers": answers})


def record_old_copy(course, student, assignment, folder):
    """Records of the notebooks in ``folder`` (an autograded copy kept from before records
    existed) for those that have none yet: a course graded by an earlier version keeps its
    hand grades. Unreadable notebooks are left out (their answers count as changed)."""
    for path in sorted(Path(folder).glob("*.ipynb")):
        if answers_file(course, student, assignment, path.stem).exists():
            continue
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:
            continue
        gids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells} - {None}
        record_answers(course, student, assignment, path.stem, cell_answers(nb, gids))


def keep_hand_grades(notebook, before, graded, now):
    """The rule (see the module's docstring), on ``notebook`` (a gradebook SubmittedNotebook
    whose auto grades were just saved). ``before``: grade id -> (manual score, needed manual
    grade, manual comment) before saving; ``graded``, ``now``: grade id -> digest of the answer
    graded last (None: unknown, every answer counts as changed) and of the answer now.
    Returns grade id -> previous grade of the answers sent back."""
    sent_back = {}
    comments = {c.name: c for c in notebook.comments}
    for g in notebook.grades:
        manual, needed, comment = before.get(g.name, (None, None, None))
        if manual is None:
            continue
        if graded is not None and g.name in graded and graded[g.name] == now.get(g.name):
            g.needs_manual_grade = bool(needed)
            continue
        comment = (comment or "")[:MAX_COMMENT]
        sent_back[g.name] = {"notebook": notebook.name, "score": manual, "max_score": g.max_score,
                             "comment": comment}
        g.manual_score, g.needs_manual_grade = None, True
        if g.name in comments:
            comments[g.name].manual_comment = (f"{PREVIOUS} {manual:g} / {g.max_score:g}"
                                               + (f". Its comment: {comment}" if comment else "."))
    return sent_back


class SaveKeepingHandGrades(SaveAutoGradesAtOnce):
    """nbgrader's SaveAutoGrades (in one transaction), then :func:`keep_hand_grades` in the same
    transaction; afterwards the answers graded now are recorded for the next autograde."""

    course = Unicode("", help="the course directory, which holds the records of graded answers").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        self.notebook_id, self.assignment_id = info["notebook"], info["assignment"]
        self.student_id, self.db_url = info["student"], info["db_url"]
        where = (self.course, self.student_id, self.assignment_id, self.notebook_id)
        with Gradebook(self.db_url) as gradebook:
            notebook = gradebook.find_submission_notebook(self.notebook_id, self.assignment_id, self.student_id)
            manual = {c.name: c.manual_comment for c in notebook.comments}
            before = {g.name: (g.manual_score, g.needs_manual_grade, manual.get(g.name)) for g in notebook.grades}
            self.gradebook = CommitLater(gradebook)
            nb, resources = super(SaveAutoGrades, self).preprocess(nb, resources)   # the cells
            now = cell_answers(nb, set(before))
            graded = graded_answers(*where)
            if graded is None and any(m is not None for m, _, _ in before.values()):
                self.log.warning("%s: no readable record of the answers graded before: its hand "
                                 "grades count as for changed answers (sent back, shown as previous)",
                                 terminal(f"{self.student_id}/{self.assignment_id}/{self.notebook_id}"))
            sent_back = keep_hand_grades(notebook, before, graded, now)
            gradebook.db.commit()
        # after the commit: a record never says an answer was judged when the gradebook does not
        record_answers(*where, now)
        remember(self.course, self.student_id, self.assignment_id, sent_back)
        return nb, resources


def remember(course, student, assignment, sent_back):
    """Add ``sent_back`` (grade id -> previous grade) to the submission's record of previous grades."""
    if sent_back:
        path = previous_file(course, student, assignment)
        _write(path, {**_read(path), **sent_back})


def previous_grades(course, student, assignment, awaiting):
    """grade id -> previous grade (``{"score", "max_score", "comment"}``) of the answers in
    ``awaiting`` (those still awaiting hand grading) that were graded for an earlier answer."""
    record = _read(previous_file(course, student, assignment))
    return {gid: record[gid] for gid in awaiting if isinstance(record.get(gid), dict)}


def _read(path):
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_RECORD + 1)
        record = json.loads(data) if len(data) <= MAX_RECORD else None
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write(path, record):
    """``record`` as JSON at ``path``, atomically (a reader sees the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
