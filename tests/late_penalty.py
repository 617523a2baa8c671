"""The late-penalty plugin of the instructors' guide (nbgrader's SubMarks example): one point off per
started hour late. Importable by the grader when the tests run (tests/ is on sys.path)."""
from nbgrader.plugins import BasePlugin


class SubMarks(BasePlugin):
    """One point off per started hour late."""

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        return float(-(-total_seconds_late // 3600))
