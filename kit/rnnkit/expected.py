"""The expected outputs of the public cases, shipped with the kit as data.

``expected.npz`` holds, for every task, the inputs of its public cases and the
outputs the references give on them and on their diagnostic probes (float64),
with one *release stamp* per assignment: a digest of exactly that data. The
instructor's ``release`` writes the file (:func:`save`); check() reads it
(:class:`ShippedData`). No reference code and no hidden case is in it.
"""
import hashlib
import json
import os
import zipfile
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
    """Write ``records`` and the stamps of ``assignments`` ({assignment: [task names]}).

    Byte-identical when nothing changed: a file at ``path`` whose data equals the new
    data to 1e-12 (last-bit noise of another BLAS) is kept as it is, and a new file is
    a zip with fixed timestamps and a sorted member order, written atomically.
    """
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
    text = json.dumps(manifest, sort_keys=True)
    if not _same_as_file(path, text, arrays):
        _write_npz(Path(path), {"manifest": np.array(text), **arrays})
    return manifest["stamps"]


def _same_as_file(path, manifest_text, arrays):
    """True if ``path`` holds this manifest and these arrays (floats equal to 1e-12)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if set(data.files) != set(arrays) | {"manifest"} or str(data["manifest"]) != manifest_text:
                return False
            for name, new in arrays.items():
                old = data[name]
                if old.dtype != new.dtype or old.shape != new.shape:
                    return False
                if not np.allclose(old, new, rtol=1e-12, atol=1e-14, equal_nan=True):
                    return False
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False
    return True


def _write_npz(path, arrays):
    """``np.savez_compressed`` with a fixed date on every member, in name order, via a temporary file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(arrays):
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(arrays[name]), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
