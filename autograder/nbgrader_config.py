"""The course's nbgrader configuration, written once.

``configure(c, root)`` fills a traitlets Config for a course directory; the
repository's own ``nbgrader_config.py`` and :mod:`autograder.batch` both call it.
"""
from pathlib import Path

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, ClearOutput,
                                    DeduplicateIds, GetGrades, IgnorePattern, LimitOutput, OverwriteCells,
                                    OverwriteKernelspec, SaveAutoGrades)

from .preprocessors import NOTEBOOK_TIMEOUT, GradingExecute, RestoreMetadata, ReviewSubmission, VerifyResults

COURSE_ID = "rnn-course"
CELL_TIMEOUT = 60          # seconds one cell may run under the grader
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def configure(c, root, source="source", release="release", db_url=None, cell_timeout=CELL_TIMEOUT,
              notebook_timeout=NOTEBOOK_TIMEOUT):
    """Point ``c`` at the course directory ``root`` and install the grading pipeline."""
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.source_directory = source
    c.CourseDirectory.release_directory = release
    if db_url:
        c.CourseDirectory.db_url = db_url
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    c.Autograde.sanitize_preprocessors = [
        ClearOutput, DeduplicateIds, OverwriteKernelspec, ReviewSubmission, RestoreMetadata, OverwriteCells,
        CheckCellMetadata,
    ]
    c.RestoreMetadata.release_root = str(Path(root) / release)
    c.Autograde.autograde_preprocessors = [
        GradingExecute, IgnorePattern, ClearMetadataPreprocessor, VerifyResults,
        LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
    ]
    c.Execute.timeout = cell_timeout
    c.GradingExecute.notebook_timeout = notebook_timeout
    # The sandbox kills the kernel and everything it started anyway: a polite shutdown
    # only costs time (0.05-0.45 s a notebook).
    c.GradingExecute.shutdown_kernel = "immediate"
    c.Execute.interrupt_on_timeout = True
    c.OverwriteCells.add_missing_cells = True
    # Feedback never shows hidden tests.
    c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
    return c
