"""The expected outputs of the public cases, shipped with the kit as data.

``expected.npz`` holds, for every task, the inputs of its public cases and the
outputs the references give on them and on their diagnostic probes (float64),
with one *release stamp* per assignment: a digest of exactly that data. The
instructor's ``release`` writes the file (:func:`save`); check() reads it
(:class:`ShippedData`). No reference code and no hidden case is in it.
"""
import hashlib
import json
from pathlib import Path

import numpy as np

from .compare import case_key

PATH = Path(__file__).with_name("expected.npz")


class StaleKit(RuntimeError):
    """The notebook and the kit's data belong to different releases."""


def entry_key(task_name, case, probe=None):
    """Key of one record: ``task|case`` or ``task|case|probe``, like the kernel's result keys."""
    return "|".join([task_name, case_key(case)] + ([probe] if probe else []))


def digest(records):
    """Release stamp of ``records`` ({key: {"inputs": {...}, "outputs": [...]}}): 10 hex digits.

    Arrays enter rounded to 6 decimals, so a machine whose BLAS differs in the last
    bits computes the same stamp.
    """
    h = hashlib.sha256()
    for key in sorted(records):
        h.update(key.encode())
        record = records[key]
        for name in sorted(record.get("inputs", {})):
            h.update(name.encode() + _canonical(record["inputs"][name]))
        for value in record["outputs"]:
            h.update(_canonical(value))
    return h.hexdigest()[:10]


def _canonical(value):
    rounded = np.round(np.asarray(value, dtype=np.float64), 6) + 0.0   # + 0.0 turns -0.0 into 0.0
    return json.dumps([list(rounded.shape), rounded.ravel().tolist()]).encode()


def save(path, records, assignments):
    """Write ``records`` and the stamps of ``assignments`` ({assignment: [task names]})."""
    arrays, manifest = {}, {"stamps": {}, "tasks": assignments, "records": {}}

    def store(value):
        if isinstance(value, (int, float)):
            return value
        name = f"a{len(arrays)}"
        value = np.asarray(value)   # ids stay integers, masks booleans; outputs are float64
        arrays[name] = value if value.dtype.kind in "bi" else value.astype(np.float64)
        return name
    for key, record in sorted(records.items()):
        manifest["records"][key] = {"inputs": {k: store(v) for k, v in record.get("inputs", {}).items()},
                                    "outputs": [store(v) for v in record["outputs"]]}
    for assignment, tasks in assignments.items():
        mine = {k: r for k, r in records.items() if k.split("|", 1)[0] in tasks}
        manifest["stamps"][assignment] = digest(mine)
    np.savez_compressed(path, manifest=np.array(json.dumps(manifest, sort_keys=True)), **arrays)
    return manifest["stamps"]


class ShippedData:
    """Read access to ``expected.npz``: inputs, expected outputs and release stamps."""

    def __init__(self, path=PATH):
        with np.load(path, allow_pickle=False) as data:
            self._arrays = {name: data[name] for name in data.files if name != "manifest"}
            manifest = json.loads(str(data["manifest"]))
        self.stamps, self._records = manifest["stamps"], manifest["records"]

    def _value(self, ref):
        return self._arrays[ref].copy() if isinstance(ref, str) else ref

    def has(self, task_name, case):
        return entry_key(task_name, case) in self._records

    def inputs(self, task_name, case):
        record = self._records[entry_key(task_name, case)]
        return {name: self._value(ref) for name, ref in record["inputs"].items()}

    def outputs(self, task_name, case, probe=None):
        return [self._value(ref) for ref in self._records[entry_key(task_name, case, probe)]["outputs"]]

    def probe_names(self, task_name, case):
        prefix = entry_key(task_name, case) + "|"
        return [k[len(prefix):] for k in self._records if k.startswith(prefix)]

    def expected(self, task, case):
        """``(outputs, probes)`` in the form :func:`rnnkit.compare.grade_check` takes."""
        names = self.probe_names(task.name, case)
        return (self.outputs(task.name, case),
                lambda: {p: self.outputs(task.name, case, p) for p in names})

    def require(self, assignment, stamp, version):
        """Raise :class:`StaleKit` unless this data is the release ``stamp`` of ``assignment``."""
        have = self.stamps.get(assignment)
        if have == stamp:
            return
        held = f"holds release {have} of it" if have else "does not know this assignment"
        raise StaleKit(f"this notebook is release {stamp} of {assignment}, but the installed rnnkit "
                       f"{version} {held}: the checks would not be the grader's. Install the student "
                       f"kit that came with this notebook (pip install --force-reinstall rnnkit-*.whl), "
                       f"or download both again from the course's page.")
