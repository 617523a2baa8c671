"""Text a submission can influence, made inert for an instructor's terminal and spreadsheet.

Student ids, failure messages and review flags reach the grade table, the stats
summary, grades.csv and the Canvas CSV. :func:`terminal` shows every control
character (C0, DEL, C1: so every ANSI/CSI/OSC escape sequence), line or paragraph
separator and bidirectional override as a visible ``\\x1b``-style escape, and bounds
the length; :func:`width` and :func:`pad` measure and align it in terminal columns
(wide characters count two). :func:`spreadsheet` makes a CSV cell that a spreadsheet
cannot read as a formula (OWASP's CSV injection rule: a cell starting with ``=``,
``+``, ``-``, ``@``, tab or carriage return, after any leading spaces, gets a leading
``'``); :func:`csv_row` applies both to every text cell of a row.
"""
import re

from wcwidth import wcswidth, wcwidth

#: Controls (C0, DEL, C1), line and paragraph separators, bidirectional marks, embeddings, overrides, isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: What a spreadsheet reads as the start of a formula (with their full-width forms).
_FORMULA = tuple("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
LIMIT = 500   # characters of one field shown


def _escape(match):
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text, limit=LIMIT):
    """``text`` (any object, as ``str``) with nothing a terminal acts on, at most ``limit`` characters."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(_escape, text)


def width(text):
    """Columns ``text`` (already :func:`terminal`) takes in a terminal."""
    columns = wcswidth(text)
    return columns if columns >= 0 else sum(max(wcwidth(ch), 0) for ch in text)


def pad(text, columns, right=False):
    """``text`` padded with spaces to ``columns`` terminal columns (aligned right if ``right``)."""
    fill = " " * max(0, columns - width(text))
    return fill + text if right else text + fill


def spreadsheet(value):
    """A CSV cell a spreadsheet shows as text: a text starting like a formula gets a leading ``'``.

    Numbers (and None) are left as they are: they are the grader's.
    """
    if not isinstance(value, str):
        return value
    return "'" + value if value.lstrip(" ").startswith(_FORMULA) else value


def csv_row(row):
    """Every text cell of ``row`` made inert for a terminal and a spreadsheet; other cells as they are."""
    return [spreadsheet(terminal(v, limit=10 * LIMIT)) if isinstance(v, str) else v for v in row]
