"""The course's nbgrader configuration, written once.

``configure(c, root)`` fills a traitlets Config for a course directory; the
repository's own ``nbgrader_config.py``, :mod:`autograder.batch` and the
``nbgrader_config.py`` the batch writes into every course directory (so stock
``nbgrader autograde``, ``generate_feedback``, ``export`` and the formgrader use
the course's pipeline there) all call it.
"""
from pathlib import Path

import nbgrader
import rnnkit
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import (AssignLatePenalties, ClearHiddenTests, ClearOutput, ComputeChecksums,
                                    DeduplicateIds, GetGrades, IgnorePattern, LimitOutput, OverwriteCells,
                                    OverwriteKernelspec)

from . import coursesettings
from .feedback import TEMPLATE_NAME, TEMPLATES, FeedbackExporter, FeedbackReport
from .handgrades import SaveKeepingHandGrades
from .kitdata import StampRelease
from .latepenalty import CoursePenalty
from .preprocessors import (NOTEBOOK_TIMEOUT, GradingExecute, HideLateOutputs, RestoreMetadata, ReviewSubmission,
                            SealTests, VerifyResults)
from .safe_html import FILTERS
from .secret import course_secret_path
from .session import SchemaKept

COURSE_ID = "rnn-course"
CELL_TIMEOUT = 60          # seconds one cell may run under the grader
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
NBGRADER_TEMPLATES = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"

#: The nbgrader_config.py of a course directory (written by autograder.layout.prepare_course).
#: Where this package and the student package it uses are imported from.
PACKAGE_PATHS = list(dict.fromkeys(str(Path(f).resolve().parent.parent) for f in (__file__, rnnkit.__file__)))

COURSE_CONFIG = f"""\
# Written by `python -m autograder grade`: nbgrader's own commands and the formgrader, run in
# this directory, grade and write feedback with the course's pipeline (autograder/nbgrader_config.py).
# The instructor's settings (gradebook URL, timeouts, late penalty, due dates) are in
# course_settings.json here: `python -m autograder course set ...`, never this file.
# On a hub, students' servers hold only the student kit: the instructor's package is found
# where it was when this file was written (a folder only the instructor can read).
import sys
from pathlib import Path

sys.path[:0] = [p for p in {PACKAGE_PATHS!r} if p not in sys.path]

from autograder.nbgrader_config import configure  # noqa: E402
from autograder.outcome import GradingError  # noqa: E402

try:
    configure(get_config(), Path(__file__).resolve().parent)  # noqa: F821
except GradingError as exc:   # a broken course_settings.json: stop, never run with half a configuration
    sys.exit(f"error: {{exc}}")
"""


def configure(c, root, source="source", release="release", db_url=None, cell_timeout=None,
              notebook_timeout=None):
    """Point ``c`` at the course directory ``root`` and install the grading pipeline.

    What is not given comes from the course's settings (:mod:`autograder.coursesettings`),
    else the defaults here (:data:`CELL_TIMEOUT`, ``NOTEBOOK_TIMEOUT``, SQLite in ``root``).
    """
    settings = coursesettings.load(root)
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.source_directory = source
    c.CourseDirectory.release_directory = release
    db_url = db_url or settings.gradebook_url()
    if db_url:
        c.CourseDirectory.db_url = db_url
    c.AssignLatePenalties.plugin_class = CoursePenalty
    c.CoursePenalty.policy = settings.penalty
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    # ReviewSubmission reads the submission as the student left it: before DeduplicateIds
    # strips the metadata of a second cell claiming a grade id. SchemaKept is nbgrader's
    # CheckCellMetadata, faster.
    c.Autograde.sanitize_preprocessors = [
        ClearOutput, ReviewSubmission, DeduplicateIds, OverwriteKernelspec, RestoreMetadata, OverwriteCells,
        SchemaKept,
    ]
    c.RestoreMetadata.release_root = c.ReviewSubmission.release_root = str(Path(root) / release)
    # SealTests: hidden cases reach the kernel as inputs only, after the notebook's last cell
    c.SealTests.secret_file = c.VerifyResults.secret_file = str(course_secret_path(root))
    c.Autograde.autograde_preprocessors = [
        SealTests, GradingExecute, IgnorePattern, ClearMetadataPreprocessor, VerifyResults,
        LimitOutput, SaveKeepingHandGrades, AssignLatePenalties, SchemaKept,
    ]
    # a resubmitted written answer that changed goes back to awaiting hand grading (before
    # the late penalty, which is taken off the notebook's score without the old hand grade)
    c.SaveKeepingHandGrades.course = str(root)
    c.Execute.timeout = cell_timeout or settings.cell_timeout or CELL_TIMEOUT
    c.GradingExecute.notebook_timeout = notebook_timeout or settings.notebook_timeout or NOTEBOOK_TIMEOUT
    # The sandbox kills the kernel and everything it started anyway: a polite shutdown
    # only costs time (0.05-0.45 s a notebook).
    c.GradingExecute.shutdown_kernel = "immediate"
    c.Execute.interrupt_on_timeout = True
    c.OverwriteCells.add_missing_cells = True
    # nbconvert validates the notebook once after the pipeline, not after every preprocessor
    c.Exporter.optimistic_validation = True
    # Feedback never shows hidden tests; its reports are readable, its equations render offline.
    # The released setup cell names the release of the kit's data (before the checksums and
    # SaveCells, so the gradebook and OverwriteCells hold the stamped cell too).
    stock = list(GenerateAssignment.class_traits()["preprocessors"].default())
    at = stock.index(ComputeChecksums)
    c.GenerateAssignment.preprocessors = stock[:at] + [StampRelease] + stock[at:]
    c.GenerateFeedback.preprocessors = [GetGrades, HideLateOutputs, ClearHiddenTests, FeedbackReport, CSSHTMLHeaderPreprocessor]
    # Our template is configured on our exporter, by its class name: the formgrader's
    # HTMLExporter keeps nbgrader's "formgrade" template (set as HTMLExporter.template_name,
    # this file's settings would replace it: every submission page an HTTP 500).
    c.GenerateFeedback.exporter_class = FeedbackExporter
    c.FeedbackExporter.template_name = TEMPLATE_NAME
    c.FeedbackExporter.extra_template_basedirs = [str(TEMPLATES)]
    c.FeedbackExporter.extra_template_paths = [str(NBGRADER_TEMPLATES)]   # its "feedback/index.html.j2"
    # Every HTML page made from a student's notebook (feedback, the formgrader's submission
    # pages) is inert: no script, handler, frame or request of the student's.
    c.HTMLExporter.sanitize_html = True
    c.HTMLExporter.filters = {name: f"autograder.safe_html.{name}" for name in FILTERS}
    c.HTMLExporter.preprocessors = ["autograder.safe_html.EscapeStudentNames"]
    return c
