"""Submission times (``timestamp.txt``) read the same way for every format, or flagged.

nbgrader's exchange writes ``%Y-%m-%d %H:%M:%S.%f %Z`` in its configured zone, so a
file may end in ``UTC``, ``PST``, ``CET``, ``CST``...; nbgrader itself reads a zone name
it does not know, or an offset like ``+14:00``, as UTC, and stops on anything it cannot
parse. :func:`normalise` rewrites our copy of a submission's ``timestamp.txt`` as UTC in
the exchange's own format, before nbgrader reads it, and keeps the student's text as
``timestamp.original.txt`` beside it. A time it cannot read, or one in the future or
before 2000, is removed from the copy (the submission is graded without a time, so never
counted late) and returned as a flag.
"""
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: The form :func:`normalise` writes: nbgrader's exchange format, in UTC.
FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"
ORIGINAL = "timestamp.original.txt"
MOST = 200   # bytes of a timestamp file read at most
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
SKEW = timedelta(hours=1)   # a time this far ahead of the grader's clock is "in the future"

#: Zone abbreviations with one meaning (hours east of UTC). CST, IST, BST have several:
#: they are read only when the grading machine's own zone uses them at that date.
ZONES = {"UTC": 0, "UT": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 1, "CET": 1, "CEST": 2, "MET": 1,
         "MEST": 2, "EET": 2, "EEST": 3, "MSK": 3, "EST": -5, "EDT": -4, "CDT": -5, "MST": -7,
         "MDT": -6, "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10, "NST": -3.5,
         "NDT": -2.5, "AST": -4, "ADT": -3, "JST": 9, "KST": 9, "HKT": 8, "SGT": 8, "AWST": 8,
         "ACST": 9.5, "ACDT": 10.5, "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13}

_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)\s*(.*)")
_OFFSET = re.compile(r"(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?")


class Unreadable(ValueError):
    """The text is not a time this module reads; the message says why."""


def parse(text, now=None):
    """The UTC datetime (aware) of ``text``; :class:`Unreadable` if it is not one, in the
    future (beyond :data:`SKEW` of ``now``) or before :data:`EARLIEST`."""
    when = read(text)
    now = now or datetime.now(timezone.utc)
    if when > now + SKEW:
        raise Unreadable(f"in the future ({when:%Y-%m-%d %H:%M} UTC)")
    if when < EARLIEST:
        raise Unreadable(f"implausibly early ({when:%Y-%m-%d} UTC)")
    return when


def names_zone(text):
    """True if the time ``text`` says its zone (else it is read as UTC, as nbgrader does)."""
    match = _TIME.fullmatch(text.strip())
    return bool(match and match.group(3))


def read(text):
    """The UTC datetime (aware) of ``text``, whenever it is; :class:`Unreadable` if it is not one."""
    match = _TIME.fullmatch(text.strip())
    if not match:
        raise Unreadable("not a date and time")
    day, clock, zone = match.groups()
    seconds = clock.split(".")
    clock = seconds[0] + ("." + seconds[1][:6].ljust(6, "0") if len(seconds) > 1 else "")
    try:
        naive = datetime.fromisoformat(f"{day} {clock}")
    except ValueError:
        raise Unreadable("no such date or time") from None
    return naive.replace(tzinfo=_zone(zone, naive)).astimezone(timezone.utc)


def _zone(name, naive):
    """The tzinfo of ``name``: empty (UTC, as nbgrader reads it), an offset, an abbreviation, an IANA name."""
    if not name:
        return timezone.utc
    if m := _OFFSET.fullmatch(name):
        sign, hours, minutes = m.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if offset > timedelta(hours=14) or int(minutes or 0) >= 60:
            raise Unreadable(f"no such offset {name}")
        return timezone(-offset if sign == "-" else offset)
    local = naive.astimezone().tzinfo   # the grading machine's zone decides what it calls itself
    if local.tzname(None) == name:
        return local
    if name.upper() in ZONES:
        return timezone(timedelta(hours=ZONES[name.upper()]))
    if "/" in name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise Unreadable(f"unknown or ambiguous time zone {name[:20]!r}")


def normalise(folder, now=None):
    """Rewrite ``folder/timestamp.txt`` as :data:`FORMAT`; returns a flag, or None if all is well.

    The student's text, if it differs, is kept in ``folder/timestamp.original.txt``. A
    file already in :data:`FORMAT` is left as it is, and an unreadable time is flagged
    again from the kept original: a rerun on the same folder changes nothing.
    """
    path, original = Path(folder) / "timestamp.txt", Path(folder) / ORIGINAL
    if path.is_file():
        text, long = _read(path)
        if text == _canonical(text, now):
            return None
        path.replace(original)
    elif original.is_file():
        text, long = _read(original)
    else:
        return None
    try:
        if long:
            raise Unreadable("too long")
        when = parse(text, now)
    except Unreadable as exc:
        return (f"timestamp unreadable ({exc}): {ascii(text[:40])} in {ORIGINAL}; graded without a "
                f"submission time, so never counted late: check it")
    path.write_text(when.strftime(FORMAT) + "\n")
    return None


def _read(path):
    """(stripped text, whether it is over :data:`MOST` bytes) of a timestamp file."""
    with open(path, "rb") as f:
        raw = f.read(MOST + 1)
    return raw[:MOST].decode("utf-8", "replace").strip(), len(raw) > MOST


def _canonical(text, now):
    try:
        return parse(text, now).strftime(FORMAT)
    except Unreadable:
        return None
