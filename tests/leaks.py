"""What must never reach students, and a reader for everything they get.

Used by tests/test_student_kit.py (the kit) and tests/test_publish.py (dist/public).
"""
import ast
import io
import re
import zipfile
import zlib

import hidden
import nbformat
import numpy as np

from autograder import layout
from submissions import REPO

ASSIGNMENTS = layout.assignments_in()
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "MARK SCHEME")
#: Folders of the instructors' repository that nothing published may hold a file of.
INSTRUCTOR_FOLDERS = ("solutions", "autograder", "tests")
#: A loop over time steps (chapter 3 shows one) gives nothing away.
LOOP_HEADER = re.compile(r"for \w+ in (range|reversed)\([\w, ()-]*\):")


def released_repo(a):
    return nbformat.read(REPO / "exercises" / a / f"{a}.ipynb", as_version=4)


def source_cells(a):
    return nbformat.read(REPO / "solutions" / a / f"{a}.ipynb", as_version=4).cells


def given_text():
    """Every cell of every released notebook: what students are given anyway."""
    return "\n".join(c.source for a in ASSIGNMENTS for c in released_repo(a).cells)


def reference_code_and_docs():
    """(code lines, docstring text) of autograder/reference/: the bodies are secret, the
    docstrings are the exercises' specification (chapter 1 shows them)."""
    code, docs = [], []
    for path in sorted((REPO / "autograder" / "reference").glob("*.py")):
        source = path.read_text()
        doc_lines = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node):
                first = node.body[0]
                doc_lines |= set(range(first.lineno, first.end_lineno + 1))
                docs.append(ast.get_docstring(node))
        code += [line.strip() for n, line in enumerate(source.splitlines(), start=1) if n not in doc_lines]
    return code, "\n".join(docs)


def forbidden_lines():
    """Lines that must not appear anywhere a student can read: solution cells and reference code.

    Every line of every solution cell that students are given anyway neither in the
    released notebooks (a function's ``def`` or ``return`` line, which exercise 5's
    pasted LSTM repeats) nor in the reference's docstrings (the specification), and
    the code lines of autograder/reference/ (docstrings and comments left out).
    """
    given = {part for line in given_text().splitlines()   # a given line with its comment or without
             for part in (line.strip(), line.split("  #")[0].strip())}
    code, spec = reference_code_and_docs()
    lines = set()
    for a in ASSIGNMENTS:
        for cell in source_cells(a):
            if cell.metadata.get("nbgrader", {}).get("solution"):
                lines |= {line.strip() for line in cell.source.splitlines()
                          if len(line.strip()) > 12 and line.strip() not in given and "SOLUTION" not in line
                          and not LOOP_HEADER.fullmatch(line.strip()) and line.strip() not in spec}
    lines |= {line for line in code if len(line) > 24 and ("=" in line or "return" in line)
              and not line.startswith("#") and line not in given}
    return lines


def hidden_test_lines():
    """The lines of hidden tests long enough to be recognised (a case's dict, a check call)."""
    given = set(line.strip() for line in given_text().splitlines())
    return {line.strip() for a in ASSIGNMENTS for region in hidden.regions(a) for line in region.splitlines()
            if len(line.strip()) > 12 and line.strip() not in given}


def hidden_specs():
    """Every assignment's hidden cases, as tests/hidden.py recognises them in any text."""
    return sorted({spec for a in ASSIGNMENTS for spec in hidden.hidden_specs(a)})


def readable_texts(name, data):
    """(name, text) of every member, unpacking zips (the kit, the wheel, the .npz) all the way down.

    Binary files (images, fonts) give no text; Sphinx's objects.inv is decompressed.
    """
    if name.endswith((".zip", ".whl", ".npz")):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for member in z.namelist():
                yield from readable_texts(f"{name}/{member}", z.read(member))
    elif name.endswith(".npy"):
        array = np.load(io.BytesIO(data), allow_pickle=False)
        assert array.dtype.kind in "fibU", f"{name}: unexpected dtype {array.dtype}"
        if array.dtype.kind == "U":
            yield name, str(array)
    elif name.endswith("objects.inv"):
        header, _, body = data.partition(b"zlib.\n")
        yield name, (header + zlib.decompress(body)).decode("utf-8")
    elif name.endswith((".png", ".jpg", ".jpeg", ".gif", ".ico", ".woff", ".woff2", ".ttf", ".otf", ".eot")):
        return
    else:
        yield name, data.decode("utf-8", errors="replace")


def leaks(name, text, bad_lines, hidden_lines, specs):
    """What of the instructors' material ``text`` (the content of ``name``) holds: a list of findings."""
    found = [f"{name} holds {marker!r}" for marker in MARKERS if marker in text]
    found += [f"{name} holds a solution or reference line: {line!r}" for line in bad_lines if line in text]
    found += [f"{name} holds a hidden test line: {line!r}" for line in hidden_lines if line in text]
    found += [f"{name} holds hidden case {spec}" for spec in hidden.shown_specs(text, specs)]
    return found
