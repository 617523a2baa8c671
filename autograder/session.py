"""What a grading process keeps from one submission to the next: the gradebook's engine and
nbgrader's applications; never a transaction, and nothing a grading leaves is read by the next
(every call sets what it uses, and each notebook gets new preprocessors and a new kernel).

nbgrader opens the gradebook ten times or more per submission (``with Gradebook(url) as gb:``
in its converter and preprocessors), each time a new SQLAlchemy engine and a schema check,
and builds a new Autograde application and a new HTML exporter (its templates compiled
again) per call. Here:

* :class:`SharedGradebook`: one Gradebook per process, database URL and course, whose
  ``with`` block (or ``close()``) ends the thread's session (its transaction rolled back or
  committed, its connection back in the pool) and keeps the engine. Several processes
  write the same gradebook: nothing is held between uses, so no SQLite lock either. A
  SQLite file replaced since (another course directory at the same path) gets a new one;
  server connections are pinged before use (a database restarted meanwhile).
  :func:`sharing` makes nbgrader's own ``Gradebook(...)`` calls use it, while it lasts.
* :class:`CourseAPI`: nbgrader's API whose ``autograde`` reuses one Autograde application
  (its preprocessors, among them the kernel's, are still made anew for every notebook)
  and whose ``generate_feedback`` reuses one HTML exporter
  (:class:`autograder.feedback.FeedbackExporter`).
* :class:`SchemaKept`: nbgrader's CheckCellMetadata, but the JSON schema of nbgrader's
  metadata is checked once per process, not once per cell (9 ms per notebook).
"""
import contextlib
import glob
import json
import os
import sys
import threading
import traceback

import jsonschema
from nbconvert.writers import FilesWriter
from nbgrader import api
from nbgrader.apps import NbGraderAPI
from nbgrader.converters import Autograde, GenerateFeedback
from nbgrader.converters.base import NbGraderException
from nbgrader.nbgraderformat import MetadataValidator, SchemaTooNewError, SchemaTooOldError, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator
from nbgrader.preprocessors import CheckCellMetadata
from nbgrader.utils import capture_log, temp_attrs
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import scoped_session, sessionmaker

from .feedback import FeedbackExporter

DEFAULT_COURSE = "default_course"   # the course nbgrader's preprocessors open the gradebook with


class SharedGradebook(api.Gradebook):
    """``SharedGradebook(url, course_id)``: this process's Gradebook for them (see module doc).

    Not shared (a plain Gradebook): with an authenticator, or a SQLite database that is not
    a file given by its absolute path (in memory, relative to the working folder).
    """

    _open = {}   # (url, course_id) -> SharedGradebook
    _lock = threading.Lock()

    def __new__(cls, db_url, course_id=DEFAULT_COURSE, authenticator=None):
        path = _sqlite_file(db_url)
        if authenticator is not None or path == "":
            return api.Gradebook(db_url, course_id, authenticator)
        key = (db_url, course_id)
        with cls._lock:
            gb = cls._open.get(key)
            if gb is not None and path and gb._file != _identity(path):
                cls._open.pop(key)._dispose()
                gb = None
            if gb is None:
                gb = super().__new__(cls)
                api.Gradebook.__init__(gb, db_url, course_id)   # engine, schema check, course
                if not path:   # a server: a connection that died while idle is replaced before use
                    gb.engine.dispose()
                    gb.engine = create_engine(db_url, future=True, pool_pre_ping=True)
                    gb.db = scoped_session(sessionmaker(autoflush=True, bind=gb.engine, future=True))
                gb._file, gb._uses = _identity(path) if path else None, threading.local()
                cls._open[key] = gb
        if not gb._depth():
            gb.db.close()   # a use that was interrupted before it ended: start afresh
        return gb

    def __init__(self, *args, **kwargs):
        """Initialised once, by ``__new__``."""

    def _depth(self):
        return getattr(self._uses, "depth", 0)

    def __enter__(self):
        self._uses.depth = self._depth() + 1
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self._uses.depth = max(0, self._depth() - 1)
        self.close()

    def close(self):
        """End this thread's session (its uncommitted changes rolled back); the engine stays."""
        if not self._depth():
            self.db.close()

    def _dispose(self):
        self.db.remove()
        self.engine.dispose()

    @classmethod
    def end_sessions(cls):
        """End this thread's sessions of every shared gradebook, whatever uses were left open."""
        with cls._lock:
            for gb in cls._open.values():
                gb._uses.depth = 0
                gb.db.close()

    @classmethod
    def release(cls):
        """Dispose of every shared gradebook of this process (their pooled connections closed)."""
        with cls._lock:
            while cls._open:
                cls._open.popitem()[1]._dispose()


def _after_fork():
    """A forked process opens its own connections: it forgets its parent's gradebooks
    (without closing them: they are the parent's) and takes locks of its own."""
    global _sharing
    SharedGradebook._lock, _sharing = threading.Lock(), threading.Lock()
    for gb in SharedGradebook._open.values():
        gb.engine.dispose(close=False)
    SharedGradebook._open = {}


def _sqlite_file(db_url):
    """The absolute path of a SQLite database file; "" for another SQLite database; None if not SQLite."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite":
        return None
    path = url.database or ""
    return path if os.path.isabs(path) else ""


def _identity(path):
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def gradebook(db_url, course_id):
    """This process's gradebook of ``course_id`` at ``db_url``; use it in a ``with`` block."""
    return SharedGradebook(db_url, course_id)


_sharing = threading.Lock()
_patched = []   # modules whose Gradebook is SharedGradebook while sharing() lasts
_sharers = 0


@contextlib.contextmanager
def sharing():
    """While this lasts, ``Gradebook(...)`` in nbgrader's modules and ours is :class:`SharedGradebook`."""
    global _sharers
    with _sharing:
        if not _sharers:
            SharedGradebook.end_sessions()   # a grade starts with no session (nor lock) of before
            for name, module in list(sys.modules.items()):
                if name.startswith(("nbgrader.", "autograder.")) and name != "nbgrader.api" \
                        and vars(module).get("Gradebook") is api.Gradebook:
                    module.Gradebook = SharedGradebook
                    _patched.append(module)
        _sharers += 1
    try:
        yield
    finally:
        with _sharing:
            _sharers -= 1
            if not _sharers:
                while _patched:
                    _patched.pop().Gradebook = api.Gradebook
                SharedGradebook.end_sessions()   # also after an interrupted grade


os.register_at_fork(after_in_child=_after_fork)


class CourseAPI(NbGraderAPI):
    """nbgrader's API, with one Autograde application and one feedback exporter per API object."""

    _autograde_app = None
    _feedback_app = None

    def autograde(self, assignment_id, student_id, force=True, create=True):
        """nbgrader's ``autograde`` of one submission; also returns its notebooks' review flags
        as written (``"flags"``: notebook -> flags), so nothing reads them back."""
        if self._autograde_app is None:
            self._autograde_app = FlagsKept(coursedir=self.coursedir, parent=self)
        app = self._autograde_app
        with temp_attrs(self.coursedir, assignment_id=assignment_id, student_id=exact(student_id)):
            app.force, app.create_student, app.flags = force, create, {}
            result = capture_log(app)
        result["flags"] = app.flags
        return result

    def generate_feedback(self, assignment_id, student_id=None, force=True):
        """nbgrader's ``generate_feedback``; for one student, with the exporter of the calls before."""
        if student_id is None:
            return super().generate_feedback(assignment_id, force=force)
        if self._feedback_app is None:
            # the course's exporter and template come from the configuration (c.FeedbackExporter)
            self._feedback_app = ExporterKept(coursedir=self.coursedir, parent=self)
        app = self._feedback_app
        with temp_attrs(self.coursedir, assignment_id=assignment_id, student_id=exact(student_id)):
            app.force = force
            return capture_log(app)


def exact(student_id):
    """A student id as nbgrader's CourseDirectory.student_id, which is a glob pattern: one that
    matches that folder alone (``*``, ``bo?``, ``[ab]`` are characters of an id, not wildcards)."""
    return glob.escape(student_id)


class ExactNotebooks:
    """nbgrader's ``init_notebooks``, but what it finds is not a pattern again: stock globs the
    folder it found (``submitted/*/01_rnn``) for its notebooks, and the course directory's path."""

    def init_notebooks(self):
        self.assignments, self.notebooks = {}, []
        root = self.coursedir.root
        pattern = self._format_source(self.coursedir.assignment_id, self.coursedir.student_id)
        pattern = os.path.join(glob.escape(root), os.path.relpath(pattern, root))
        for assignment in glob.glob(pattern):
            found = glob.glob(os.path.join(glob.escape(assignment), self.coursedir.notebook_id + ".ipynb"))
            if found:
                self.assignments[assignment] = found
            else:
                self.log.warning("No notebooks were matched in '%s'", assignment)
        if not self.assignments:
            msg = f"No notebooks were matched by '{pattern}'"
            self.log.error(msg)
            raise NbGraderException(msg)


class FlagsKept(ExactNotebooks, Autograde):
    """nbgrader's Autograde that keeps the review flags of every notebook it writes (in ``flags``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flags = {}

    def write_single_notebook(self, output, resources):
        super().write_single_notebook(output, resources)
        if not self._sanitizing:
            meta = json.loads(output).get("metadata", {})
            self.flags[resources["unique_key"]] = list(meta.get("rnn_course", {}).get("flags", []))


class ExporterKept(ExactNotebooks, GenerateFeedback):
    """nbgrader's GenerateFeedback whose exporter (compiled templates, preprocessors) is made once.

    ``start`` is BaseConverter's, but for the exporter.
    """

    _kept = None

    def start(self):
        self.init_notebooks()
        self.writer = FilesWriter(parent=self, config=self.config)
        if self._kept is None:
            self._kept = FeedbackExporter(parent=self, config=self.config)
            for pp in self.preprocessors:
                self._kept.register_preprocessor(pp)
        self.exporter = self._kept
        here = os.getcwd()
        os.chdir(self.coursedir.root)
        try:
            self.convert_notebooks()
        finally:
            os.chdir(here)


class _SchemaCheckedOnce(BaseMetadataValidator):
    """nbgrader's validation of a cell's metadata, with a validator of its JSON schema kept.

    ``BaseMetadataValidator.validate_cell`` but for ``jsonschema.validate``, which checks the
    schema itself on every call; the same error is raised (``best_match``).
    """

    _validators = {}   # schema version -> jsonschema validator

    def validate_cell(self, cell):
        if "nbgrader" not in cell.metadata:
            return
        schema = cell.metadata["nbgrader"].get("schema_version", 0)
        if schema < self.schema_version:
            raise SchemaTooOldError(f"Outdated schema version: {schema} (expected {self.schema_version})",
                                    schema, self.schema_version)
        if schema > self.schema_version:
            raise SchemaTooNewError(f"Schema version is too new: {schema} (expected {self.schema_version})",
                                    schema, self.schema_version)
        validator = self._validators.get(self.schema_version)
        if validator is None:
            kind = jsonschema.validators.validator_for(self.schema)
            kind.check_schema(self.schema)
            validator = self._validators[self.schema_version] = kind(self.schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(cell.metadata["nbgrader"]))
        if error is not None:
            raise error


class _KeptValidator(MetadataValidator, _SchemaCheckedOnce):
    """nbgrader's current metadata validator, on :class:`_SchemaCheckedOnce`."""


class SchemaKept(CheckCellMetadata):
    """nbgrader's CheckCellMetadata (same checks, same errors) with the metadata schema's validator kept."""

    def preprocess(self, nb, resources):
        try:
            _KeptValidator().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg)
        return nb, resources
