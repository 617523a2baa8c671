"""``python -m autograder course [--course DIR] show | set SETTING VALUE...``: the course's settings.

    course set db postgresql+psycopg2://grader:${PGPASSWORD}@dbhost/rnn   (none: SQLite here)
    course set cell-timeout 60 | notebook-timeout 300                      (none: the default)
    course set due 01_rnn 2026-12-20T23:59+01:00                           (none: no due date)
    course set penalty none | zero | 1 per hour [cap 5] | 10 per day [cap 30]

Written to ``COURSE/course_settings.json`` (:mod:`autograder.coursesettings`), never while
the course is being graded. Due dates and the penalty count in the gradebook at once when
it exists (``nbgrader export`` sees them) and in ``grades.csv`` and the Canvas CSV at the
next ``grade``, without regrading.
"""
import dataclasses
import sys
from pathlib import Path

from nbgrader.api import Gradebook
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from . import courselock, coursesettings, feedbackrefresh, grader, latepenalty, layout
from .inert import terminal
from .nbgrader_config import COURSE_ID
from .outcome import GradingError

SETTINGS = ("db", "cell-timeout", "notebook-timeout", "due", "penalty")
PENALTY_FORM = "none, zero, or POINTS per hour|day [cap POINTS]"


def add_arguments(parser):
    """The options of ``python -m autograder course``."""
    parser.add_argument("--course", type=Path, default=Path("course"), help="course directory (default: ./course)")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("show", help="print the course's settings")
    setting = actions.add_parser("set", help="change one setting (see the module's docstring)")
    setting.add_argument("setting", choices=SETTINGS)
    setting.add_argument("values", nargs="+", metavar="VALUE")


def command(args):
    """Show or change the settings of ``args.course``; print one line per change."""
    course = args.course
    if not course.is_dir():
        raise GradingError(f"no course directory at {course}: create it with "
                           f"`python -m autograder init --course {course}`")
    if args.action == "show":
        for setting, words in describe(coursesettings.load(course)).items():
            print(f"{setting}: {words}")
        return
    with courselock.holding(course):
        settings = coursesettings.load(course)
        new = changed(settings, args.setting, args.values, known_assignments(course))
        path = coursesettings.save(course, new)
        print(f"{path}: {args.setting}: {describe(new)[args.setting]}")
        if args.setting in ("due", "penalty", "db"):
            line, failed = apply_now(course, new, removed=set(settings.due) - set(new.due))
            print(line)
            for (student, assignment), why in failed.items():
                print(terminal(f"{student}/{assignment}: feedback page not written again "
                               f"(it keeps the one it had): {why}"), file=sys.stderr)
            return 1 if failed else 0


def known_assignments(course):
    source = Path(course) / "source"
    return set(layout.assignments_in(source if source.is_dir() else layout.REPO / "solutions"))


def changed(settings, setting, values, assignments):
    """``settings`` with ``setting`` set from the command line's ``values``."""
    def one():
        if len(values) != 1:
            raise GradingError(f"course set {setting} takes one value, got {len(values)}")
        return values[0]
    if setting == "db":
        url = one()
        if url == "none":
            return dataclasses.replace(settings, db_url="")
        try:
            make_url(url)
        except (ArgumentError, ValueError):
            raise GradingError(f"not an SQLAlchemy URL: {url[:80]!r} (e.g. "
                               f"postgresql+psycopg2://user:${{PGPASSWORD}}@host/db)") from None
        return dataclasses.replace(settings, db_url=url)
    if setting in ("cell-timeout", "notebook-timeout"):
        text = one()
        seconds = 0 if text == "none" else _number(text, int, f"{setting} (seconds)")
        if text != "none" and seconds <= 0:
            raise GradingError(f"{setting} must be a whole number of seconds > 0, got {text!r}")
        return dataclasses.replace(settings, **{setting.replace("-", "_"): seconds})
    if setting == "due":
        if len(values) < 2:
            raise GradingError("course set due takes an assignment and a date, e.g. "
                               "course set due 01_rnn 2026-12-20T23:59+01:00")
        assignment, when = values[0], " ".join(values[1:])
        if assignment not in assignments:
            raise GradingError(f"no such assignment: {assignment} (known: {', '.join(sorted(assignments))})")
        due = dict(settings.due)
        if when == "none":
            due.pop(assignment, None)
        else:
            coursesettings.due_date(when)
            due[assignment] = when
        return dataclasses.replace(settings, due=due)
    return dataclasses.replace(settings, penalty=penalty_of(values))


def penalty_of(values):
    """A penalty policy from ``none``, ``zero`` or ``POINTS per hour|day [cap POINTS]``."""
    if values in (["none"], ["zero"]):
        return {"method": values[0]}
    if len(values) not in (3, 5) or values[1] != "per" or (len(values) == 5 and values[3] != "cap"):
        raise GradingError(f"a penalty is {PENALTY_FORM}; got {' '.join(values)[:80]!r}")
    policy = {"method": "linear", "points": _number(values[0], float, "points"), "per": values[2]}
    if len(values) == 5:
        policy["cap"] = _number(values[4], float, "cap")
    return coursesettings.check_penalty(policy, "penalty")


def _number(text, kind, what):
    try:
        return kind(text)
    except ValueError:
        raise GradingError(f"{what}: not a number: {text[:40]!r}") from None


def describe(settings):
    """Setting -> what it is, in words (:data:`SETTINGS`); the password of a URL hidden."""
    url = settings.db_url
    if url:
        try:
            url = make_url(url).render_as_string(hide_password=True)
        except (ArgumentError, ValueError):
            url = "(not a URL)"
    penalty = settings.penalty
    if penalty["method"] == "linear":
        cap = f", at most {penalty['cap']:g}" if "cap" in penalty else ""
        words = f"{penalty['points']:g} point(s) off per started {penalty['per']} late{cap}"
    else:
        words = {"none": "none", "zero": "a late submission scores 0"}[penalty["method"]]
    dues = "; ".join(f"{a} {w}" for a, w in sorted(settings.due.items())) or "none"
    return {"db": url or "gradebook.db in the course directory",
            "cell-timeout": settings.cell_timeout or "default",
            "notebook-timeout": settings.notebook_timeout or "default",
            "due": dues, "penalty": words}


def apply_now(course, settings, removed=()):
    """Due dates and penalties into the course's gradebook, if it has one, and the feedback pages
    whose penalty changed written again (:mod:`autograder.feedbackrefresh`). Returns one line
    saying what happened, and {(student, assignment): why} of the pages that could not be."""
    url = settings.gradebook_url() or grader.default_db_url(course)
    if not settings.db_url and not (Path(course) / "gradebook.db").is_file():
        return "no gradebook yet: the next grade records it", {}
    try:
        with Gradebook(url, COURSE_ID) as gb:
            for name in removed:
                for assignment in gb.assignments:
                    if assignment.name == name:
                        assignment.duedate = None
            changed = latepenalty.apply_settings(gb, settings)
    except SQLAlchemyError as exc:
        return f"the gradebook could not be updated now ({type(exc).__name__}): the next grade does it", {}
    pages = feedbackrefresh.refresh_feedback(grader.Grading(str(Path(course).resolve()), url), changed)
    failed = {pair: why for pair, why in pages.items() if why}
    written = (f"; {len(pages) - len(failed)} feedback page(s) written again" if pages else "") + (
        f", {len(failed)} could not be" if failed else "")
    return ("the gradebook has it now" + written
            + "; grades.csv and the Canvas CSV follow at the next grade (no --force needed)"), failed
