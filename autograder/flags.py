"""Review flags: what an instructor should look at in a submission, whatever its score.

Flags never change a score (verification does that); they say *why* a human should
look: tampered cells, code that reaches for the grader, timeouts, a dead kernel,
missing results, output cut at the byte limit. They live in the autograded
notebook's metadata (``rnn_course.flags``) and reach the gradebook and the CSV.
"""
import re

from nbgrader import utils

#: Patterns in student code worth a look, with the words the flag uses.
SUSPICIOUS = [
    (r"get_ipython|IPython|input_transformers|ast_transformers|events\.register", "talks to IPython"),
    (r"\bos\s*\.\s*(_exit|kill|killpg|fork|system|exec\w*|spawn\w*|setsid|remove|unlink)\b", "uses os process/file calls"),
    (r"\b(import|from)\s+(subprocess|multiprocessing|threading|pty|ctypes|socket|signal|resource)\b",
     "imports a system module"),
    (r"\bsys\s*\.\s*(exit|modules|settrace|setprofile|_getframe)\b|\bbuiltins\b|__builtins__", "reaches into the interpreter"),
    (r"\bopen\s*\(|\bpathlib\b|\bshutil\b|\bglob\b|\bos\s*\.\s*(listdir|walk|scandir|chdir)\b", "reads or writes files"),
    (r"\b(exec|eval|compile|__import__)\s*\(|\bimportlib\b", "runs generated code"),
    (r"\bautograder\s*\.\s*(reference|verify|preprocessors|sandbox|batch)"
     r"|from\s+autograder\s+import\s+[^\n]*\b(reference|verify|preprocessors|sandbox|batch)\b|\bREFERENCES\b",
     "imports the grader's references"),
    (r"\bnp\s*\.\s*(allclose|testing|array_equal|isclose)\s*=|setattr\s*\(", "patches functions"),
    (r"RNN_COURSE_GRADING|gradebook|application/vnd\.rnn-course", "mentions the grader's internals"),
    (r"class\s+\w+\s*\([^)]*ndarray[^)]*\)|def\s+__(eq|ne|lt|le|gt|ge|abs|sub|array_\w+)__\s*\(",
     "redefines how arrays compare"),
]


def student_cells(nb):
    """Cells a student may edit: solution cells and cells the student added."""
    return [c for c in nb.cells if c.cell_type == "code"
            and (utils.is_solution(c) or "nbgrader" not in c.metadata)]


def suspicious_source(nb):
    flags = []
    for index, cell in enumerate(student_cells(nb)):
        name = cell.metadata.get("nbgrader", {}).get("grade_id", f"added cell {index}")
        for pattern, words in SUSPICIOUS:
            match = re.search(pattern, cell.source)
            if match:
                flags.append(f"suspicious code in {name}: {words} ({match.group(0).strip()})")
    return flags


def without_hidden_tests(source):
    """A test cell's source as released: hidden test regions removed (as ClearHiddenTests does)."""
    return re.sub(r"^[^\n]*BEGIN HIDDEN TESTS.*?END HIDDEN TESTS[^\n]*\n?", "", source,
                  flags=re.S | re.M).strip()


def tampering(nb, source_cells):
    """Compare a submission with the instructor's cells.

    source_cells: grade_id -> (source, nbgrader metadata) of every locked or grade cell.
    """
    flags, seen = [], set()
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if not meta or meta.get("grade_id") not in source_cells:
            continue
        gid = meta["grade_id"]
        seen.add(gid)
        source, want = source_cells[gid]
        if (meta.get("locked") and not meta.get("solution")
                and cell.source.strip() not in (source.strip(), without_hidden_tests(source))):
            flags.append(f"edited locked cell {gid}")
        for key in ("points", "grade", "solution", "locked"):
            if key in want and meta.get(key) != want[key]:
                flags.append(f"changed nbgrader metadata of {gid}: {key} {want[key]!r} -> {meta.get(key)!r}")
    for gid in source_cells:
        if gid not in seen:
            flags.append(f"deleted cell {gid} (or stripped its nbgrader metadata)")
    return flags


def review(nb, source_nb):
    """Tampering and suspicious code of submission ``nb`` against the instructor's ``source_nb``."""
    instructor = {c.metadata["nbgrader"]["grade_id"]: (c.source, c.metadata["nbgrader"]) for c in source_nb.cells
                  if "grade_id" in c.metadata.get("nbgrader", {})}
    return tampering(nb, instructor) + suspicious_source(nb)


def execution_problems(nb):
    """Timeouts and errors in grade cells, after execution."""
    flags = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "a cell")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") == "CellTimeoutError":
                flags.append(f"timed out in {gid}")
    return flags


def missing_results(reports, gid):
    if any("no result" in m for r in reports for _, m in r.failures):
        return [f"missing results in {gid}"]
    return []


def add(nb, flags):
    """Record flags in the notebook's metadata, without duplicates."""
    record = nb.metadata.setdefault("rnn_course", {}).setdefault("flags", [])
    record.extend(f for f in flags if f not in record)


def read(nb):
    return list(nb.metadata.get("rnn_course", {}).get("flags", []))
