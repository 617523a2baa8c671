"""Where and how to grade (:class:`Grading`): the course's nbgrader API and gradebook.

The cell timeout is a setting of the course (:func:`resolve_cell_timeout`); the gradebook
is SQLite in the course directory unless a URL says otherwise (:func:`default_db_url`).
"""
import functools
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning
from traitlets.config import Config

from . import coursesettings
from . import nbgrader_config
from . import session
from .nbgrader_config import configure
from .outcome import GradingError, reason

# nbgrader 0.9 triggers SQLAlchemy 2 session warnings that say nothing to an instructor.
warnings.filterwarnings("ignore", category=SAWarning)


CELL_TIMEOUT_ENV = "RNN_GRADER_CELL_TIMEOUT"   # seconds; overrides nbgrader_config.CELL_TIMEOUT


def resolve_cell_timeout(seconds=None, course=None):
    """Seconds one cell may run: ``seconds``, else $RNN_GRADER_CELL_TIMEOUT, else the
    ``cell_timeout`` of ``course``'s settings (:mod:`autograder.coursesettings`), else CELL_TIMEOUT."""
    where = "the cell timeout"
    if seconds is None and os.environ.get(CELL_TIMEOUT_ENV, "").strip():
        seconds, where = os.environ[CELL_TIMEOUT_ENV].strip(), CELL_TIMEOUT_ENV
    if seconds is None:
        return (course is not None and coursesettings.load(course).cell_timeout) or nbgrader_config.CELL_TIMEOUT
    try:
        value = int(seconds)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise GradingError(f"{where} must be a whole number of seconds > 0, got {seconds!r}")
    return value


def api_for(root, db_url=None, cell_timeout=None, notebook_timeout=None):
    """nbgrader's API (a :class:`~autograder.session.CourseAPI`) on the course directory ``root``,
    configured by :func:`configure` (what is not given: the course's settings)."""
    _put_tools_on_path()
    config = configure(Config(), root, db_url=db_url, cell_timeout=resolve_cell_timeout(cell_timeout, root),
                       notebook_timeout=notebook_timeout or None)
    return session.CourseAPI(CourseDirectory(config=config), config=config)


def _put_tools_on_path():
    """nbgrader runs ``alembic`` from PATH: use the one installed beside this interpreter."""
    tools = os.path.dirname(sys.executable)
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = tools + os.pathsep + os.environ.get("PATH", "")


def require_success(result, what):
    if not result.get("success"):
        raise GradingError(f"{what} failed: {reason(result)}")
    return result


@dataclass(frozen=True)
class Grading:
    """Where and how to grade; small and picklable, so worker processes receive it.

    course: the course directory; db_url: the gradebook (default: :func:`default_db_url`;
    any SQLAlchemy URL, e.g. ``postgresql+psycopg2://user@host/gradebook``);
    cell_timeout, notebook_timeout: seconds (defaults: the course's settings, else nbgrader_config).
    """
    course: str
    db_url: str = ""
    cell_timeout: int = 0
    notebook_timeout: int = 0

    @property
    def gradebook_url(self):
        return self.db_url or default_db_url(self.course)

    def api(self):
        return _api(self)

    def gradebook(self):
        """This process's gradebook (:mod:`autograder.session`): use it in a ``with`` block."""
        return session.gradebook(self.gradebook_url, nbgrader_config.COURSE_ID)


def default_db_url(course):
    """The course's gradebook: the ``db_url`` of its settings (:mod:`autograder.coursesettings`),
    else SQLite in the course directory, waiting for the lock rather than failing under parallel writers."""
    return coursesettings.load(course).gradebook_url() or f"sqlite:///{Path(course).resolve() / 'gradebook.db'}?timeout=120"


@functools.lru_cache(maxsize=4)
def _api(grading):
    """One nbgrader API per process and setting (its applications are reused: :mod:`autograder.session`)."""
    return api_for(grading.course, grading.gradebook_url, grading.cell_timeout or None, grading.notebook_timeout)
