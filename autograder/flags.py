"""Review flags: what an instructor should look at in a submission, whatever its score.

Flags never change a score (verification does that); they say *why* a human should
look: tampered cells, code that reaches for the grader, timeouts, a dead kernel,
missing results, output cut at the byte limit. They live in the autograded
notebook's metadata (``rnn_course.flags``) and reach the gradebook and the CSV.
"""
import ast
import re
from dataclasses import dataclass

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
    (r"class\s+\w+\s*\([^)\n]{0,200}ndarray[^)\n]{0,200}\)|def\s+__(eq|ne|lt|le|gt|ge|abs|sub|rsub|array_\w+)__\s*\(",
     "redefines how arrays compare"),
    (r"^\s*[!%]", "runs shell commands or IPython magics"),
]


def student_cells(nb, instructor_sources=()):
    """Code cells with code of the student's: any cell whose source is not an instructor cell's."""
    known = {source.strip() for source in instructor_sources}
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip() not in known
            and (known or utils.is_solution(c) or "nbgrader" not in c.metadata)]


@dataclass(frozen=True)
class Code:
    """One cell of the student's code, parsed once: ``tree`` is None when the parser refused it
    (``problem`` says why: not Python, or too deep or too large for the parser)."""
    name: str
    source: str
    tree: ast.Module = None
    problem: str = ""


def parse(source):
    """(tree, "") or (None, why not): a source too deeply nested or too large for Python's
    parser (RecursionError, MemoryError) is refused like one that is not Python, never raised."""
    try:
        return ast.parse(source), ""
    except SyntaxError:
        return None, "is not plain Python"
    except (RecursionError, MemoryError, ValueError, OverflowError):
        return None, "could not be parsed (too deeply nested or too large)"


def student_code(nb, instructor_sources=()):
    """The student's code cells (:func:`student_cells`), each parsed once, as :class:`Code`."""
    return [Code(cell.metadata.get("nbgrader", {}).get("grade_id", f"added cell {index}"), cell.source,
                 *parse(cell.source)) for index, cell in enumerate(student_cells(nb, instructor_sources))]


def suspicious_source(nb, instructor_sources=(), code=None):
    """One flag per (cell, kind of reach) found in the student's code, with the first instance.
    ``code``: :func:`student_code` of ``nb``, if already parsed."""
    flags = []
    for cell in student_code(nb, instructor_sources) if code is None else code:
        said = {}
        for words, what in suspicious_code(cell.source, (cell.tree, cell.problem)):
            said.setdefault(words, what)
        flags.extend(f"suspicious code in {cell.name}: {words} ({what})" for words, what in said.items())
    return flags


def suspicious_code(source, parsed=None):
    """(words, the code that earned them) for everything in ``source`` worth a look.
    ``parsed``: :func:`parse` of ``source``, if already done."""
    found = [(words, match.group(0).strip()) for pattern, words in PATTERNS
             for match in [re.search(pattern, source, flags=re.M)] if match]
    tree, problem = parse(source) if parsed is None else parsed
    if tree is None:
        return found + [(problem, source.strip().splitlines()[0][:60] if source.strip() else "")]
    lines = _lines(source)
    modules = {"np", "numpy", "scipy", "math", "rnnkit", "check"}   # objects a patch would change for others
    nodes = list(ast.walk(tree))   # walked once, looked at twice
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                modules.add((alias.asname or alias.name).split(".")[0])
                path = f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
                if node.__dict__.get("level") or not _allowed(path):
                    found.append(("imports a module the exercises do not use", _text(lines, node)))
        elif isinstance(node, ast.Name) and node.id in REACHING:
            found.append((REACHING[node.id], node.id))
        elif isinstance(node, ast.Name) and re.fullmatch(HISTORY, node.id):
            found.append(("reads the kernel's input history", node.id))
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in FILE_CALLS:
                found.append(("reads or writes files", _text(lines, node)))
            if called in REFLECTION and node.args and _root(node.args[0]) in modules | set(REACHING):
                found.append(("looks up attributes by name" if called == "getattr" else "patches functions",
                              _text(lines, node)))
    for node in nodes:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else \
            node.targets if isinstance(node, ast.Delete) else []
        for target in targets:
            if isinstance(target, (ast.Attribute, ast.Subscript)) and _root(target) in modules:
                found.append(("patches functions", _text(lines, target)))
            if isinstance(target, ast.Name) and target.id == "check":
                found.append(("redefines check()", _text(lines, node)))
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


def _lines(source):
    """A source's lines as UTF-8 bytes (as the parser counts columns), split once: every
    segment is then taken in O(its length), never by splitting the source again."""
    return source.encode("utf-8", "surrogatepass").splitlines()


def _text(lines, node, longest=80):
    """The first line of ``node``'s source text, at most ``longest`` characters."""
    try:
        line = lines[node.lineno - 1]
    except (IndexError, TypeError):
        return ""
    end = node.end_col_offset if node.end_lineno == node.lineno else len(line)
    return line[node.col_offset:min(end, node.col_offset + 4 * longest)].decode("utf-8", "replace")[:longest]


def without_hidden_tests(source):
    """A test cell's source as released: hidden test regions removed (as ClearHiddenTests does)."""
    return re.sub(r"^[^\n]*BEGIN HIDDEN TESTS.*?END HIDDEN TESTS[^\n]*\n?", "", source,
                  flags=re.S | re.M).strip()


def tampering(nb, source_cells, optional=()):
    """Compare a submission with the instructor's cells.

    source_cells: grade_id -> (source, nbgrader metadata) of every locked or grade cell.
    optional: grade ids of cells never run under the grader (tagged ``skip-in-grading``:
    demos, exercise 5's optional LSTM paste): deleting or editing one changes nothing
    graded, so neither is flagged (changed nbgrader metadata still is).
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
        if (meta.get("locked") and not meta.get("solution") and gid not in optional
                and cell.source.strip() not in (source.strip(), without_hidden_tests(source))):
            flags.append(f"edited locked cell {gid}")
        for key in ("points", "grade", "solution", "locked"):
            if key in want and meta.get(key) != want[key]:
                flags.append(f"changed nbgrader metadata of {gid}: {key} {want[key]!r} -> {meta.get(key)!r}")
    for gid in source_cells:
        if gid not in seen and gid not in optional:
            flags.append(f"deleted cell {gid} (or stripped its nbgrader metadata)")
    return flags


def instructor_sources(source_cells):
    """Every source an instructor cell may show: as in the source, and as released (no hidden tests)."""
    return [text for source, _ in source_cells.values() for text in (source, without_hidden_tests(source))]


def review(nb, source_nb):
    """Tampering and suspicious code of submission ``nb`` against the instructor's ``source_nb``."""
    instructor = {c.metadata["nbgrader"]["grade_id"]: (c.source, c.metadata["nbgrader"]) for c in source_nb.cells
                  if "grade_id" in c.metadata.get("nbgrader", {})}
    code = student_code(nb, instructor_sources(instructor))
    return tampering(nb, instructor) + suspicious_source(nb, code=code) + numerical_backward(nb, code=code)


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


def numerical_backward(nb, instructor_sources=(), code=None):
    """Backward functions that differentiate numerically, one flag each.

    Over the call graph of the student's top-level functions (and names bound at top level to
    an expression: ``f_backward = lambda ...``), an edge for every name a body mentions (called
    or passed on, lambdas and nested functions included), a ``*_backward`` that reaches a
    ``*_forward``, ``numerical_gradient``, or a function that takes finite differences
    (:func:`_perturbs`) computes its gradient from the forward, not by the chain rule.
    ``code``: :func:`student_code` of ``nb``, if already parsed (unparsable cells are flagged
    by :func:`suspicious_source`). Linear in the code's size: one walk of each function, one
    search of the graph backwards from what is numerical, at most ``MAX_FUNCTIONS`` functions
    (more are flagged as not reviewed: padding cannot hide a backward).
    """
    functions, skipped = {}, 0   # name -> (node, the lines of its cell)
    for cell in student_code(nb, instructor_sources) if code is None else code:
        lines = _lines(cell.source) if cell.tree is not None else []
        for node in cell.tree.body if cell.tree is not None else ():
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name, body = node.name, node
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and (isinstance(node.value, ast.Lambda) or node.targets[0].id.endswith("_backward")):
                name, body = node.targets[0].id, node.value
            else:
                continue
            if len(functions) < MAX_FUNCTIONS or name in functions:
                functions[name] = (body, lines)
            else:
                skipped += 1
    defined = {n.name for f, _ in functions.values() for n in ast.walk(f)
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))} | set(functions)
    mentions, own, told = {}, {}, {}   # own: why a function is numerical; told: what its callers are told
    for name, (function, lines) in functions.items():
        mentions[name] = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)} \
            | {n.attr for n in ast.walk(function) if isinstance(n, ast.Attribute)}
        if re.fullmatch(NUMERICAL, name):
            told[name] = f"calls {name}"
        elif _perturbs(function, lines, defined):
            own[name] = "perturbs its inputs in a loop"
            told[name] = f"calls {name}, which perturbs its inputs in a loop"
    callers = {}
    for name, mentioned in mentions.items():
        for other in mentioned - {name}:
            if other in functions or re.fullmatch(NUMERICAL, other):
                callers.setdefault(other, []).append(name)
                if other not in functions:   # a forward or numerical_gradient defined elsewhere
                    told.setdefault(other, f"calls {other}")
    todo = list(told)   # backwards from every numerical name, each function reached once
    while todo:
        current = todo.pop()
        for caller in callers.get(current, ()):
            if caller not in own:
                own[caller] = told[current]
                told.setdefault(caller, told[current])
                todo.append(caller)
    return [f"backward pass by numerical differentiation: {name} {own[name]}"
            for name in sorted(functions) if name.endswith("_backward") and name in own] \
        + [f"backward passes not reviewed: {skipped} functions past the first {MAX_FUNCTIONS}"] * bool(skipped)


#: Calls that evaluate no function of the student's: numpy and math, and builtins of loops.
PLAIN_CALLS = {"range", "len", "zip", "reversed", "enumerate", "float", "int", "abs", "min", "max", "sum",
               "list", "tuple", "dict", "print", "isinstance", "sorted", "round", "iter", "next", "map",
               "filter", "any", "all", "set", "bool", "complex", "slice", "type", "str", "repr"}
NUMERIC_MODULES = {"np", "numpy", "math", "scipy", "itertools", "operator", "functools", "copy"}

#: numpy functions and array methods that change elements of an array in place.
IN_PLACE = {"at", "put", "itemset", "copyto", "place", "putmask", "put_along_axis", "fill"}

#: Where a finite difference repeats: loops, comprehensions, and lambdas (``map(lambda e: ...)``).
LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp, ast.Lambda)


def _perturbs(function, lines, defined):
    """Whether ``function`` (a node of the source split in ``lines``: :func:`_lines`) takes
    finite differences of a function of the student's (a name not numpy's, math's or a
    builtin, a method of the student's, a function held in a variable or a parameter:
    ``defined`` names the student's functions) in a loop:

    * the difference of two evaluations of the same function (``f(x + h) - f(x - h)``,
      ``up - down`` with both computed by calls of ``f``, ``np.subtract``), or
    * an element set, the function evaluated, the same element set again
      (``x[i] = old + h; f(); x[i] = old - h``, ``x.flat[i] += h``), or
    * the function evaluated on a whole array whose elements the loop edits
      (``xp = x.copy(); xp[i] += h; f(xp)``, ``np.add.at(x, i, h); f(x)``, ``np.nditer``).

    One walk of the function (each node is in at most one outermost loop), no recursion.
    """
    imported = {a.asname or a.name for n in ast.walk(function) if isinstance(n, ast.ImportFrom)
                for a in n.names}

    def called(call):
        """The key of the function a call evaluates, if it is the student's; else None."""
        func = call.func
        if isinstance(func, ast.Name):
            return None if func.id in PLAIN_CALLS or func.id in imported else func.id
        if isinstance(func, ast.Attribute):
            return func.attr if func.attr in defined or re.fullmatch(NUMERICAL, func.attr) else None
        return _segment(lines, func)   # fs[k](x), (lambda z: ...)(x), make(k)(x)

    results = {}   # name -> keys of the functions whose evaluations it holds
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            keys = {k for n in ast.walk(node.value) if isinstance(n, ast.Call) for k in [called(n)] if k}
            for target in node.targets:
                for name in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if keys and isinstance(name, ast.Name):
                        results.setdefault(name.id, set()).update(keys)
    return any(_finite_differences(loop, lines, called, results) for loop in _outermost_loops(function))


def _outermost_loops(function):
    """The loops of ``function`` that are inside no other loop of it (iterative)."""
    todo = list(ast.iter_child_nodes(function))
    while todo:
        node = todo.pop()
        if isinstance(node, LOOPS):
            yield node
        else:
            todo.extend(ast.iter_child_nodes(node))


def _finite_differences(loop, lines, called, results):
    """See :func:`_perturbs`; ``results``: name -> keys of the functions whose values it holds."""
    def keys(node):
        if isinstance(node, ast.Call):
            key = called(node)
            return {key} if key else set()
        return results.get(node.id, set()) if isinstance(node, ast.Name) else set()

    events, edited, evaluated = [], set(), []   # events: (position, kind, element)
    for node in ast.walk(loop):
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(element, ast.Subscript):   # set once its value is computed
                        events.append(((node.end_lineno, node.end_col_offset), "set", _segment(lines, element)))
                        edited.add(_root(element))
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in IN_PLACE:
                module = _root(func) in NUMERIC_MODULES
                inside = node.args[0] if module and node.args else func.value
                where = node.args[1 if module else 0:-1]   # np.add.at(a, idx, v), a.itemset(i, v)
                edited.add(_root(inside))
                events.append(((node.end_lineno, node.end_col_offset), "set",
                               "|".join(_segment(lines, n) for n in [inside, *where])))
            elif isinstance(func, ast.Attribute) and func.attr == "subtract" and len(node.args) >= 2 \
                    and keys(node.args[0]) & keys(node.args[1]):
                return True
            if called(node):
                evaluated.append(node)
                events.append(((node.lineno, node.col_offset), "call", None))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and keys(node.left) & keys(node.right):
            return True
    for call in evaluated:
        for arg in call.args:
            arg = arg.value if isinstance(arg, ast.Starred) else arg
            if isinstance(arg, ast.Name) and arg.id in edited:
                return True
    state = {}   # element -> 1 once set, 2 once evaluated after being set
    for _, kind, element in sorted(events, key=lambda e: e[0]):
        if kind == "call":
            state = {e: 2 for e in state}
        elif state.get(element) == 2:
            return True
        else:
            state.setdefault(element, 1)
    return False


def _segment(lines, node, longest=200):
    """The source text of ``node`` (:func:`_lines`), spaces removed: a key made without
    recursion; a node longer than ``longest`` or on several lines gets a key of its position
    (each key costs O(1), chains of calls ``f(1)(2)...`` included)."""
    if node.lineno != node.end_lineno or node.end_col_offset - node.col_offset > longest:
        return f"<{node.lineno}:{node.col_offset}>"
    return re.sub(r"\s+", "", _text(lines, node, longest)) or f"<{node.lineno}:{node.col_offset}>"


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
