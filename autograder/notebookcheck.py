"""Is a submitted notebook there, readable and gradable? One line says what is wrong if not.

Decided before any work, from the file alone: size, text, JSON, nbformat, cell count.
"""
import json
import os
import re
import warnings
from pathlib import Path

import nbformat


def check_submission(course, student, assignment, notebooks=None):
    """None if every notebook of the assignment is there and readable; else what is wrong, in one line.

    ``notebooks``: name -> bytes of the submission's notebooks, already read (see :func:`autograder.markers.fingerprint`).
    """
    course = Path(course)
    folder = course / "submitted" / student / assignment
    for expected in sorted((course / "source" / assignment).glob("*.ipynb")):
        path = folder / expected.name
        if not path.is_file():
            found = [p.name for p in sorted(folder.glob("*.ipynb"))]
            found += [f"../{p.name}" for p in sorted(folder.parent.glob("*.ipynb"))]
            return f"missing notebook {expected.name}" + (f" (found: {', '.join(found)})" if found else "")
        problem = notebook_problem(path, (notebooks or {}).get(expected.name))
        if problem and problem.startswith(TOO_LARGE):
            return f"{expected.name} is {problem}"
        if problem:
            return f"{expected.name} is not a valid notebook: {problem}"
    return None


#: The largest notebook graded, in bytes and in cells (the released ones hold 10 to 30 cells
#: and 10 to 30 kB): decided before any work, a bigger one is not graded.
MAX_NOTEBOOK_BYTES = 16 * 1024 ** 2


MAX_CELLS = 500


TOO_LARGE = "too large to grade"


def notebook_problem(path, data=None):
    """None if ``path`` is a valid notebook; else what is wrong with it, in words.

    ``data``: the file's bytes, if already read.
    """
    try:
        size = os.stat(path).st_size if data is None else len(data)
        if size > MAX_NOTEBOOK_BYTES:
            return f"{TOO_LARGE}: {size / 1024 ** 2:.1f} MB (the limit is {MAX_NOTEBOOK_BYTES // 1024 ** 2} MB)"
        text = Path(path).read_text(encoding="utf-8") if data is None else _text(data)
    except UnicodeDecodeError:
        return "not a text file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not text.strip():
        return "the file is empty"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):   # ran into the end
            return f"truncated (the JSON stops at line {text.rstrip().count(chr(10)) + 1})"
        what = re.sub(r"\s+at$", "", exc.msg)   # "Unterminated string starting at" + " at line ..."
        return f"not JSON ({what} at line {exc.lineno}, column {exc.colno})"
    if not isinstance(data, dict) or "nbformat" not in data:
        return "JSON, but not a notebook (no 'nbformat' field)"
    cells = _cell_count(data)
    if cells > MAX_CELLS:
        return f"{TOO_LARGE}: {cells} cells (the limit is {MAX_CELLS})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
            nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in getattr(exc, "absolute_path", []))
        return f"{exc.message}" + (f" (at {where.lstrip('.')})" if where else "")
    except Exception as exc:  # nbformat raises assorted errors on malformed input
        return f"{type(exc).__name__}: {exc}"
    return None


def _cell_count(data):
    """Cells of a notebook's JSON, nbformat 4 (``cells``) or 3 (``worksheets``)."""
    def count(cells):
        return len(cells) if isinstance(cells, list) else 0
    worksheets = data.get("worksheets")
    if isinstance(worksheets, list):
        return count(data.get("cells")) + sum(count(w.get("cells")) for w in worksheets if isinstance(w, dict))
    return count(data.get("cells"))


def _text(data):
    """A file's bytes as ``Path.read_text`` reads them: UTF-8, universal newlines."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def read_notebook(path, data=None):
    """The notebook at ``path``, from ``data`` (its bytes) if already read."""
    return nbformat.read(path, as_version=4) if data is None else nbformat.reads(_text(data), as_version=4)
