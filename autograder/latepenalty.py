"""The course's late-penalty policy (:mod:`autograder.coursesettings`) in nbgrader's gradebook.

:class:`CoursePenalty` is nbgrader's ``AssignLatePenalties`` plugin: the grade command and
``nbgrader autograde`` in the course directory take the same points off.
:func:`apply_settings` writes the course's due dates into the gradebook and recomputes
every graded submission's penalty, so a due date or policy changed after grading counts
at the next grade without regrading anything; :mod:`autograder.feedbackrefresh` writes the
feedback pages of the submissions whose penalty changed again (the page shows the score after it).

Stock nbgrader commands in the course directory load this module (the plugin): it imports
nothing of the grading pipeline.
"""
from nbgrader.api import MissingEntry
from nbgrader.plugins import BasePlugin
from traitlets import Dict

from .coursesettings import late_penalty


class CoursePenalty(BasePlugin):
    """Points off a late notebook, by the course's policy (set by
    :func:`autograder.nbgrader_config.configure` from ``course_settings.json``)."""
    policy = Dict({"method": "none"}, help="the course's penalty policy (see autograder.coursesettings)").tag(config=True)

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        return late_penalty(self.policy, score, total_seconds_late)


def write_due_dates(gb, settings):
    """The settings' due dates onto the gradebook's assignments (those it has); returns them."""
    written = {}
    for name, due in settings.due_utc().items():
        try:
            assignment = gb.find_assignment(name)
        except MissingEntry:
            continue
        if assignment.duedate != due:
            assignment.duedate = due
        written[name] = due
    gb.db.commit()
    return written


def apply_settings(gb, settings):
    """Due dates from ``settings``, then every submission's late penalty recomputed as
    :class:`CoursePenalty` gives it (0..the notebook's score, None when on time). Returns the
    (student, assignment) pairs whose penalty changed, sorted: their feedback is out of date."""
    write_due_dates(gb, settings)
    changed = set()
    for assignment in gb.assignments:
        for submission in assignment.submissions:
            late = submission.total_seconds_late
            for nb in submission.notebooks:
                penalty = late_penalty(settings.penalty, nb.score, late) if late > 0 else None
                if nb.late_submission_penalty != penalty:
                    nb.late_submission_penalty = penalty
                    changed.add((submission.student_id, assignment.name))
    gb.db.commit()
    return sorted(changed)

