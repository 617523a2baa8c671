"""The instructor's settings of a course directory, in ``course_settings.json`` there.

Written by ``python -m autograder course set ...`` (or by hand), never by ``grade``:
the gradebook URL, the timeouts, the late-penalty policy and the due dates. The
``nbgrader_config.py`` that ``grade`` writes into the course directory reads them
(:func:`autograder.nbgrader_config.configure`), so ``grade``, ``stats`` and nbgrader's
own commands there agree without an environment variable.

The file is JSON, every key optional::

    {"db_url": "postgresql+psycopg2://grader:${PGPASSWORD}@db/rnn",
     "cell_timeout": 60, "notebook_timeout": 300,
     "penalty": {"method": "linear", "points": 1, "per": "hour", "cap": 5},
     "due": {"01_rnn": "2026-12-20T23:59:00+01:00"}}

``${NAME}`` in ``db_url`` is taken from the environment when the URL is used (a
password need not be in the file). A penalty is ``none``, ``zero`` (a late submission
scores 0) or ``linear``: ``points`` off per started ``hour`` or ``day`` late, at most
``cap`` points (no cap if absent); never more than the score.
"""
import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path

from . import timestamps
from .outcome import GradingError

FILE = "course_settings.json"
PENALTY_METHODS = ("none", "zero", "linear")
PERIODS = {"hour": 3600, "day": 86400}
MAX_BYTES = 1 << 20   # a settings file larger than this is not read


@dataclass(frozen=True)
class Settings:
    """What :func:`load` read; defaults where the file says nothing."""
    db_url: str = ""
    cell_timeout: int = 0        # 0: the grader's default
    notebook_timeout: int = 0
    penalty: dict = field(default_factory=lambda: {"method": "none"})
    due: dict = field(default_factory=dict)   # assignment -> ISO 8601 text with an offset

    def gradebook_url(self):
        """``db_url`` with ``${NAME}`` taken from the environment; "" if none is set."""
        def value(m):
            if m.group(1) not in os.environ:
                raise GradingError(f"the gradebook URL in {FILE} needs the environment variable "
                                   f"{m.group(1)}, which is not set")
            return os.environ[m.group(1)]
        return re.sub(r"\$\{(\w+)\}", value, self.db_url)

    def due_utc(self):
        """assignment -> due date as a naive UTC datetime (as nbgrader's gradebook holds them)."""
        return {a: due_date(text).astimezone(timezone.utc).replace(tzinfo=None) for a, text in self.due.items()}


def path_of(course):
    return Path(course) / FILE


def load(course):
    """The settings of ``course`` (defaults if it has no file); a bad file is a one-line error."""
    path = path_of(course)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return Settings()
    except OSError as exc:
        raise GradingError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise GradingError(f"{path} is over {MAX_BYTES // 1024} kB: not a settings file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise GradingError(f"{path} is not valid JSON ({exc})") from None
    return parse(data, path)


def parse(data, where=FILE):
    """Settings from the JSON object ``data``; what is wrong is named with ``where``."""
    if not isinstance(data, dict):
        raise GradingError(f"{where}: expected a JSON object")
    unknown = sorted(set(data) - {"db_url", "cell_timeout", "notebook_timeout", "penalty", "due"})
    if unknown:
        raise GradingError(f"{where}: unknown setting {ascii(unknown[0])} (known: db_url, cell_timeout, "
                           f"notebook_timeout, penalty, due)")
    db_url = data.get("db_url", "")
    if not isinstance(db_url, str):
        raise GradingError(f"{where}: db_url must be a text (an SQLAlchemy URL)")
    timeouts = {k: data.get(k, 0) for k in ("cell_timeout", "notebook_timeout")}
    for key, value in timeouts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise GradingError(f"{where}: {key} must be a whole number of seconds > 0, got {value!r}")
    penalty = check_penalty(data.get("penalty", {"method": "none"}), where)
    due = data.get("due", {})
    if not isinstance(due, dict):
        raise GradingError(f"{where}: due must map assignments to dates")
    for assignment, text in due.items():
        try:
            due_date(text)
        except GradingError as exc:
            raise GradingError(f"{where}: due date of {ascii(assignment)}: {exc}") from None
    return Settings(db_url, timeouts["cell_timeout"], timeouts["notebook_timeout"], penalty, dict(due))


def check_penalty(penalty, where=FILE):
    """``penalty`` if it is a valid policy (see the module's docstring), with its defaults."""
    if not isinstance(penalty, dict) or penalty.get("method") not in PENALTY_METHODS:
        raise GradingError(f"{where}: penalty must be {{\"method\": one of {', '.join(PENALTY_METHODS)}, ...}}")
    if penalty["method"] != "linear":
        if set(penalty) != {"method"}:
            raise GradingError(f"{where}: penalty {penalty['method']} takes no other setting")
        return {"method": penalty["method"]}
    extra = set(penalty) - {"method", "points", "per", "cap"}
    if extra:
        raise GradingError(f"{where}: unknown penalty setting {ascii(sorted(extra)[0])} (known: points, per, cap)")
    if penalty.get("per") not in PERIODS:
        raise GradingError(f"{where}: a linear penalty is per hour or per day")
    for key in ("points", "cap"):
        value = penalty.get(key, 0 if key == "cap" else None)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise GradingError(f"{where}: penalty {key} must be a number >= 0")
    return {k: penalty[k] for k in ("method", "points", "per", "cap") if k in penalty}


def late_penalty(policy, score, seconds_late):
    """Points off a notebook scoring ``score`` handed in ``seconds_late`` late: between 0 and the score."""
    if not seconds_late or seconds_late <= 0 or policy["method"] == "none":
        return 0.0
    score = max(0.0, score or 0.0)
    if policy["method"] == "zero":
        return score
    off = policy["points"] * math.ceil(seconds_late / PERIODS[policy["per"]])
    if "cap" in policy:
        off = min(off, policy["cap"])
    return float(min(off, score))


def due_date(text):
    """The aware datetime of a due date; it must name its zone (an offset, ``UTC``, ``Europe/Berlin``)."""
    if not isinstance(text, str):
        raise GradingError(f"expected a date and time as text, got {text!r}")
    try:
        when = timestamps.read(text)
    except timestamps.Unreadable as exc:
        raise GradingError(f"{ascii(text[:40])}: {exc} (expected e.g. 2026-12-20T23:59+01:00)") from None
    if not timestamps.names_zone(text):
        raise GradingError(f"{ascii(text[:40])} names no time zone: add one, e.g. {text.strip()}+01:00 or "
                           f"{text.strip()} Europe/Berlin")
    return when


def save(course, settings):
    """Write ``settings`` to the course's file, whole or not at all (a temporary file, renamed)."""
    path = path_of(course)
    data = {"db_url": settings.db_url, "cell_timeout": settings.cell_timeout,
            "notebook_timeout": settings.notebook_timeout, "penalty": settings.penalty, "due": settings.due}
    data = {k: v for k, v in data.items() if v not in ("", 0, {}, {"method": "none"})}
    tmp = path.with_name(f".{FILE}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.chmod(0o600)   # a gradebook URL may hold a password
        tmp.replace(path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise GradingError(f"cannot write {path}: {exc.strerror}") from None
    return path


def remember_db_url(course, url):
    """Keep ``url`` (``grade --db``) as the course's gradebook; True if it was not kept yet.

    A course keeps one gradebook: another URL than the one it has is an error.
    """
    settings = load(course)
    if not settings.db_url:
        save(course, dataclasses.replace(settings, db_url=url))
        return True
    if url not in (settings.db_url, settings.gradebook_url()):
        raise GradingError(f"{path_of(course)} names another gradebook than --db: change it with "
                           f"`python -m autograder course --course {course} set db URL`, or leave out --db")
    return False
