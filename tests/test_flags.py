"""Review flags on student code: every reach for the grader or the machine is named; ordinary code is not."""
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder import flags

ORDINARY = {
    "a cache class that sets its attributes by name": """
        class Cache:
            def __init__(self, **arrays):
                for name, value in arrays.items():
                    setattr(self, name, value)
            def get(self, name):
                return getattr(self, name)
    """,
    "einsum, scipy and math": """
        import math
        import numpy as np
        from scipy.special import expit
        from functools import reduce
        def step(x, Wx):
            return expit(np.einsum("nd,dh->nh", x, Wx)) * math.pi
    """,
    "the kit's public parts": """
        from rnnkit import check
        from rnnkit.conventions import GATES, gate_slice
        from rnnkit.adding import train
    """,
    "indexing and assignment into its own arrays": """
        h = np.zeros((2, 3, 4))
        h[:, 0] = 1.0
        cache = {}
        cache["x"] = h
        rng = np.random.default_rng(0)
        dWx, dWh = 0, 0
        dWx += 1
    """,
    "a dataclass and a docstring that mentions In and open(": '''
        from dataclasses import dataclass
        @dataclass
        class Step:
            """In this step we open( nothing."""
            x: object
    ''',
}

SUSPICIOUS = {
    "os.popen": ("import os\nos.popen('ls')", "uses os process/file calls"),
    "getattr(os, ...)": ("getattr(os, 'list' + 'dir')('.')", "looks up attributes by name"),
    "ndarray.tofile": ("x = np.ones(3)\nx.tofile('/tmp/a')", "reads or writes files"),
    "np.save": ("np.save('a.npy', np.ones(3))", "reads or writes files"),
    "_thread": ("import _thread", "imports a module the exercises do not use"),
    "autograder internals": ("import autograder.reference.rnn as r", "imports the grader's references"),
    "the kit's internals": ("from rnnkit import probe", "imports a module the exercises do not use"),
    "numpy.random patched": ("np.random.seed = lambda *a: None", "patches functions"),
    "vars(np)": ("vars(np)['array_equal'] = lambda *a, **k: True", "patches functions"),
    "setattr(np, ...)": ("setattr(np, 'array_equal', lambda *a, **k: True)", "patches functions"),
    "np.__dict__": ("np.__dict__['allclose'] = 1", "patches functions"),
    "check redefined": ("check = lambda *a, **k: None", "redefines check()"),
    "def check": ("def check(task, cases=None):\n    pass", "redefines check()"),
    "torch": ("import torch", "imports a module the exercises do not use"),
    "from jax": ("from jax import grad", "imports a module the exercises do not use"),
    "__import__": ("m = __import__('to' + 'rch')", "runs generated code"),
    "shell escape": ("!cat /etc/passwd", "runs shell commands or IPython magics"),
    "input history": ("print('\\n'.join(In))", "reads the kernel's input history"),
    "_ih": ("print(_ih[-1])", "reads the kernel's input history"),
    "get_ipython": ("get_ipython().events.register('post_run_cell', print)", "talks to IPython"),
    "relative import": ("from . import x", "imports a module the exercises do not use"),
}


def dedent(code):
    import textwrap
    return textwrap.dedent(code).strip()


@pytest.mark.parametrize("what", ORDINARY)
def test_ordinary_code_is_not_flagged(what):
    assert flags.suspicious_code(dedent(ORDINARY[what])) == []


@pytest.mark.parametrize("what", SUSPICIOUS)
def test_suspicious_code_is_named(what):
    code, words = SUSPICIOUS[what]
    found = flags.suspicious_code(code)
    assert any(w == words for w, _ in found), found


def released_cells():
    nb = nbformat.read(flags_source(), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: (c.source, c.metadata["nbgrader"]) for c in nb.cells
            if "grade_id" in c.metadata.get("nbgrader", {})}


def flags_source():
    from submissions import REPO
    return REPO / "solutions" / "01_rnn" / "01_rnn.ipynb"


def test_every_cell_whose_code_is_not_the_instructors_is_read():
    """Code hidden in a cell that claims a test cell's grade id, or in an edited locked cell, is read too."""
    instructor = released_cells()
    test_source, test_meta = instructor["test_rnn_forward"]
    nb = new_notebook(cells=[
        new_code_cell(instructor["setup"][0], metadata={"nbgrader": dict(instructor["setup"][1])}),
        new_code_cell("import os\nos.system('true')", metadata={"nbgrader": dict(test_meta)}),
        new_code_cell(test_source, metadata={"nbgrader": dict(test_meta)}),
    ])
    found = flags.tampering(nb, instructor) + flags.suspicious_source(nb, flags.instructor_sources(instructor))
    assert "two cells claim grade id test_rnn_forward" in found
    assert any(f.startswith("suspicious code in test_rnn_forward: uses os process/file calls") for f in found)
    assert not any("setup" in f for f in found)
