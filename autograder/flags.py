"""Review flags: what an instructor should look at in a submission, whatever its score.

Flags never change a score (verification does that); they say *why* a human should
look: tampered cells, code that reaches for the grader, timeouts, a dead kernel,
missing results, output cut at the byte limit. They live in the autograded
notebook's metadata (``rnn_course.flags``) and reach the gradebook and the CSV.
"""
import ast
import re

from nbgrader import utils
from rnnkit import compare

from .verify import NOT_GENERAL

#: Modules the exercises may import (top-level names); any other import is worth a look.
ALLOWED_IMPORTS = {"numpy", "math", "cmath", "scipy", "matplotlib", "functools", "itertools", "collections",
                   "typing", "dataclasses", "operator", "numbers", "string", "textwrap", "time", "warnings",
                   "random", "statistics", "copy"}

#: The student kit's public parts: check(), the conventions, the training loops, the corpora.
KIT_PUBLIC = {"check", "conventions", "adding", "charlm", "corpus"}

#: Names that reach the interpreter, the machine or the kernel, whether imported or not.
#: (name, the words of the flag)
REACHING = {"os": "uses os process/file calls", "sys": "reaches into the interpreter",
            "builtins": "reaches into the interpreter", "__builtins__": "reaches into the interpreter",
            "get_ipython": "talks to IPython", "IPython": "talks to IPython",
            "globals": "reaches into the interpreter", "locals": "reaches into the interpreter",
            "exec": "runs generated code", "eval": "runs generated code", "compile": "runs generated code",
            "__import__": "runs generated code", "importlib": "runs generated code",
            "open": "reads or writes files", "breakpoint": "reaches into the interpreter"}

#: IPython's input and output history: what ran in the kernel, hidden tests included.
HISTORY = r"In|Out|_ih|_oh|_dh|_i{1,3}|_i\d+|_\d+"

#: Methods and functions that read or write files, whatever object they are called on.
FILE_CALLS = {"tofile", "fromfile", "memmap", "save", "savez", "savez_compressed", "savetxt", "load", "loadtxt",
              "genfromtxt", "fromregex", "open_memmap", "read_text", "write_text", "read_bytes", "write_bytes"}

#: Functions that read or change attributes by name.
REFLECTION = {"setattr", "getattr", "delattr", "vars"}

#: Textual patterns, checked on the raw source (strings, magics, dunders that reach objects' insides).
PATTERNS = [
    (r"RNN_COURSE_GRADING|gradebook|application/vnd\.rnn-course", "mentions the grader's internals"),
    (r"\bautograder\b", "imports the grader's references"),
    (r"__(dict|globals|code|closure|subclasses|getattribute|class|bases|mro|loader|spec)__",
     "reaches into the interpreter"),
    (r"class\s+\w+\s*\([^)]*ndarray[^)]*\)|def\s+__(eq|ne|lt|le|gt|ge|abs|sub|rsub|array_\w+)__\s*\(",
     "redefines how arrays compare"),
    (r"^\s*[!%]", "runs shell commands or IPython magics"),
]


def student_cells(nb, instructor_sources=()):
    """Code cells with code of the student's: any cell whose source is not an instructor cell's."""
    known = {source.strip() for source in instructor_sources}
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip() not in known
            and (known or utils.is_solution(c) or "nbgrader" not in c.metadata)]


def suspicious_source(nb, instructor_sources=()):
    """One flag per (cell, kind of reach) found in the student's code, with the first instance."""
    flags = []
    for index, cell in enumerate(student_cells(nb, instructor_sources)):
        name = cell.metadata.get("nbgrader", {}).get("grade_id", f"added cell {index}")
        said = {}
        for words, what in suspicious_code(cell.source):
            said.setdefault(words, what)
        flags.extend(f"suspicious code in {name}: {words} ({what})" for words, what in said.items())
    return flags


def suspicious_code(source):
    """(words, the code that earned them) for everything in ``source`` worth a look."""
    found = [(words, match.group(0).strip()) for pattern, words in PATTERNS
             for match in [re.search(pattern, source, flags=re.M)] if match]
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return found + [("is not plain Python", source.strip().splitlines()[0][:60] if source.strip() else "")]
    modules = {"np", "numpy", "scipy", "math", "rnnkit", "check"}   # objects a patch would change for others
    nodes = list(ast.walk(tree))   # walked once, looked at twice
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                modules.add((alias.asname or alias.name).split(".")[0])
                path = f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
                if node.__dict__.get("level") or not _allowed(path):
                    found.append(("imports a module the exercises do not use", _text(source, node)))
        elif isinstance(node, ast.Name) and node.id in REACHING:
            found.append((REACHING[node.id], node.id))
        elif isinstance(node, ast.Name) and re.fullmatch(HISTORY, node.id):
            found.append(("reads the kernel's input history", node.id))
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in FILE_CALLS:
                found.append(("reads or writes files", _text(source, node)))
            if called in REFLECTION and node.args and _root(node.args[0]) in modules | set(REACHING):
                found.append(("looks up attributes by name" if called == "getattr" else "patches functions",
                              _text(source, node)))
    for node in nodes:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else \
            node.targets if isinstance(node, ast.Delete) else []
        for target in targets:
            if isinstance(target, (ast.Attribute, ast.Subscript)) and _root(target) in modules:
                found.append(("patches functions", _text(source, target)))
            if isinstance(target, ast.Name) and target.id == "check":
                found.append(("redefines check()", _text(source, node)))
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == "check":
            found.append(("redefines check()", f"def {node.name}"))
    return found


def _allowed(path):
    """``numpy.linalg``, ``scipy.special.expit``, ``rnnkit.check``: yes; ``rnnkit.probe``, ``os``: no."""
    parts = path.split(".")
    if parts[0] == "rnnkit":
        return len(parts) == 1 or parts[1] in KIT_PUBLIC
    return parts[0] in ALLOWED_IMPORTS


def _root(node):
    """The name an attribute or subscript chain starts from: np.random.seed -> np; vars(np)[k] -> np."""
    while True:
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        elif isinstance(node, ast.Call) and node.args:
            node = node.args[0] if getattr(node.func, "id", "") in REFLECTION else node.func
        else:
            return getattr(node, "id", None)


def _text(source, node):
    return (ast.get_source_segment(source, node) or "").splitlines()[0][:80]


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
        if gid in seen:
            flags.append(f"two cells claim grade id {gid}")
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


def instructor_sources(source_cells):
    """Every source an instructor cell may show: as in the source, and as released (no hidden tests)."""
    return [text for source, _ in source_cells.values() for text in (source, without_hidden_tests(source))]


def review(nb, source_nb):
    """Tampering and suspicious code of submission ``nb`` against the instructor's ``source_nb``."""
    instructor = {c.metadata["nbgrader"]["grade_id"]: (c.source, c.metadata["nbgrader"]) for c in source_nb.cells
                  if "grade_id" in c.metadata.get("nbgrader", {})}
    sources = instructor_sources(instructor)
    return tampering(nb, instructor) + suspicious_source(nb, sources) + numerical_backward(nb, sources)


#: Words of a "kernel died" flag whose death the kernel caused itself (its exit, a fault of its
#: own, its memory limit): graded fairly with a new kernel, final (see GradingExecute).
OWN_DEATH = "the submission's own doing"


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


def modified_inputs(reports, gid):
    """What the kernel said of inputs changed in place: a flag, never a score (see rnnkit.compare)."""
    if any(m.startswith(compare.MODIFIED) for r in reports for _, m in r.notes):
        return [f"{compare.MODIFIED} in {gid}"]
    return []


def not_general(reports, gid):
    """Public outputs right on the kit's inputs and wrong on fresh ones: looked up, not computed."""
    if any(m.endswith(NOT_GENERAL) for r in reports for _, m in r.failures):
        return [f"answers that do not generalise in {gid}: right on public cases, wrong on fresh "
                f"inputs of the same shapes (outputs looked up or hard-coded?)"]
    return []


#: What a backward pass must not reach: the forward it differentiates, or a finite difference.
NUMERICAL = r"\w+_forward|numerical_gradient"
MAX_FUNCTIONS = 2000


def numerical_backward(nb, instructor_sources=()):
    """Backward functions that differentiate numerically, one flag each.

    Over the call graph of the student's functions (every name a function's body mentions,
    called or passed on, lambdas included), a ``*_backward`` function that reaches a
    ``*_forward`` function, ``numerical_gradient``, or a function with a perturbation
    loop (:func:`_perturbs`) computes its gradient from the forward, not by the chain rule.
    """
    functions = {}
    for cell in student_cells(nb, instructor_sources):
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and len(functions) < MAX_FUNCTIONS:
                functions[node.name] = node
    mentions = {name: {n.id for n in ast.walk(f) if isinstance(n, ast.Name)}
                | {n.attr for n in ast.walk(f) if isinstance(n, ast.Attribute)} for name, f in functions.items()}
    flags = []
    for name in sorted(functions):
        if not name.endswith("_backward"):
            continue
        seen, todo, found = {name}, [name], None
        while todo and found is None:
            current = todo.pop()
            if current != name and re.fullmatch(NUMERICAL, current):
                found = f"calls {current}"
            elif current in functions and _perturbs(functions[current]):
                found = "perturbs its inputs in a loop" if current == name else f"calls {current}, which perturbs its inputs in a loop"
            for other in mentions.get(current, ()):
                if other not in seen and (other in functions or re.fullmatch(NUMERICAL, other)):
                    seen.add(other)
                    todo.append(other)
        if found:
            flags.append(f"backward pass by numerical differentiation: {name} {found}")
    return flags


#: Calls that evaluate no function of the student's: numpy and math, and builtins of loops.
PLAIN_CALLS = {"range", "len", "zip", "reversed", "enumerate", "float", "int", "abs", "min", "max", "sum",
               "list", "tuple", "dict", "print", "isinstance", "sorted", "round"}
NUMERIC_MODULES = {"np", "numpy", "math", "scipy"}


def _perturbs(function):
    """A loop (or comprehension) of finite differences: it calls something that is not numpy,
    math or a builtin, and either takes a difference quotient (``(f(xp) - f(xm)) / (2 * h)``)
    or writes one element of an array twice (``x[i] = old + h; f(x); x[i] = old - h``)."""
    loops = (ast.For, ast.While, ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp)
    for loop in ast.walk(function):
        if not isinstance(loop, loops):
            continue
        nodes = list(ast.walk(loop))
        writes = {}
        for node in nodes:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AugAssign) else []
            for target in targets:
                if isinstance(target, ast.Subscript):
                    text = ast.unparse(target)
                    writes[text] = writes.get(text, 0) + 1
        calls = any(isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in PLAIN_CALLS
            or isinstance(node.func, ast.Attribute) and _root(node.func) in NUMERIC_MODULES) for node in nodes)
        quotient = any(isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
                       and isinstance(node.left, ast.BinOp) and isinstance(node.left.op, ast.Sub) for node in nodes)
        if calls and (quotient or max(writes.values(), default=0) >= 2):
            return True
    return False


def late_cells(nb):
    """Cells with output that ran after hidden cases were in the kernel as text.

    Hidden cases written ``hidden=[specs]`` reach the kernel only as inputs, in cells the
    grader runs after the notebook's last one (see autograder.preprocessors.SealTests):
    nothing runs after them. Hidden cases written with their seeds (``cases=[...]`` in a
    hidden region) run in place: whatever else printed once such a cell had run could
    spell them out, and must not reach a student. Test cells are left out (the grader
    writes their output itself), as are cells the grader skips.
    """
    late, hidden_ran = [], False
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if utils.is_grade(cell) and not utils.is_solution(cell):
            hidden_ran = hidden_ran or any("cases=" in region for region in re.findall(
                r"BEGIN HIDDEN TESTS(.*?)(?:END HIDDEN TESTS|$)", cell.source, flags=re.S))
        elif hidden_ran and cell.get("outputs"):
            late.append((index, cell.metadata.get("nbgrader", {}).get("grade_id", f"added cell {index}")))
    return late


def add(nb, flags):
    """Record flags in the notebook's metadata, without duplicates."""
    record = nb.metadata.setdefault("rnn_course", {}).setdefault("flags", [])
    record.extend(f for f in flags if f not in record)


def read(nb):
    return list(nb.metadata.get("rnn_course", {}).get("flags", []))
