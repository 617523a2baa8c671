"""The grades of a course, one row per submission (:func:`grade_rows`), and as CSV."""
import csv

from nbgrader.api import Gradebook, MissingEntry

from . import inert
from .grader import default_db_url
from .verdicts import review_flags


def grade_rows(course, db_url=""):
    """One row per submission: student, assignment, score, max, per-test-cell scores, flags,
    and the late penalty nbgrader recorded (:mod:`autograder.latepenalty`; the score is before it).

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
                             "awaiting": awaiting, "late_penalty": sub.late_submission_penalty or 0.0,
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
    ``awaiting_points`` column says how many points are still to be given by hand. ``score``
    is before the late penalty, which ``late_penalty`` gives.
    Text cells are inert in a terminal and a spreadsheet (:func:`autograder.inert.csv_row`).
    """
    cell_names = sorted({name for r in rows for name in r["cells"]})
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "assignment", "score", "max_score", "awaiting_points", *cell_names, "late_penalty", "flags"])
        for r in rows:
            cells = [AWAITING if n in r.get("awaiting", {}) else r["cells"].get(n, "") for n in cell_names]
            writer.writerow(inert.csv_row([r["student"], r["assignment"], r["score"], r["max_score"],
                                           sum(r.get("awaiting", {}).values()), *cells, r.get("late_penalty", 0.0),
                                           "; ".join(r["flags"])]))
