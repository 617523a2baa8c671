"""How results travel from the student's kernel to the grader: JSON, never pickle.

An array becomes ``{"dtype": "<f8", "shape": [...], "data": base64}``. The grader
decodes only float32/float64 arrays of bounded size, so a forged payload can
at worst be wrong, never executed or huge. The other way, the grader hands a kernel
the inputs of sealed cases (:func:`seal_inputs`): the same form, float64, int64 ids
and boolean masks, numbers as they are.
"""
import base64

import numpy as np

#: MIME type of the display message that carries one check's results.
MIME = "application/vnd.rnn-course.results+json"

ACCEPTED_DTYPES = ("<f4", "<f8")
MAX_ELEMENTS = 1_000_000
MAX_NDIM = 4


class WireError(ValueError):
    """A payload that cannot be a student's array."""


def encode(value):
    """Student output -> JSON-able dict, or a string saying why it is not an array."""
    try:
        a = np.asarray(value)
    except Exception as exc:  # arbitrary student objects
        return f"not convertible to an array ({type(exc).__name__})"
    if a.dtype.kind not in "fiu":
        return f"has dtype {a.dtype}, expected a float array"
    if a.dtype.kind != "f" or a.dtype.itemsize not in (4, 8):   # float16, longdouble, integers
        a = a.astype(np.float64)
    a = a.astype(a.dtype.newbyteorder("<"), order="C")  # ascontiguousarray would make 0-d 1-d
    return {"dtype": a.dtype.str, "shape": list(a.shape),
            "data": base64.b64encode(a.tobytes()).decode("ascii")}


def decode(payload):
    """Inverse of :func:`encode`; raises WireError on anything else."""
    if isinstance(payload, str):
        raise WireError(payload)
    if not isinstance(payload, dict) or set(payload) != {"dtype", "shape", "data"}:
        raise WireError("malformed result")
    dtype, shape, data = payload["dtype"], payload["shape"], payload["data"]
    if dtype not in ACCEPTED_DTYPES:
        raise WireError(f"has dtype {dtype}, expected a float array")
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM
            or not all(isinstance(n, int) and 0 <= n <= MAX_ELEMENTS for n in shape)
            or int(np.prod(shape)) > MAX_ELEMENTS):
        raise WireError("has an impossible shape")
    try:
        raw = base64.b64decode(data, validate=True)
    except (ValueError, TypeError) as exc:
        raise WireError("malformed result") from exc
    if len(raw) != int(np.prod(shape)) * np.dtype(dtype).itemsize:
        raise WireError("malformed result")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(np.float64)


# ---------------------------------------------------------------- sealed inputs (grader -> kernel)

#: dtypes of the inputs the grader hands a kernel: float arrays, integer ids, boolean masks.
INPUT_DTYPES = ("<f8", "<i8", "|b1")
MAX_SEALED_CHARS = 4_000_000


def seal_inputs(inputs):
    """Inputs of one case (name -> array or number) -> a JSON-able dict, for the grader's
    sealed cells: arrays as dtype, shape and base64, numbers as they are."""
    sealed = {}
    for name, value in inputs.items():
        if isinstance(value, np.ndarray):
            a = value.astype({"f": "<f8", "b": "|b1"}.get(value.dtype.kind, "<i8"), order="C")
            sealed[name] = {"dtype": a.dtype.str, "shape": list(a.shape),
                            "data": base64.b64encode(a.tobytes()).decode("ascii")}
        else:
            sealed[name] = value.item() if isinstance(value, np.generic) else value
    return sealed


def unseal_inputs(sealed):
    """Inverse of :func:`seal_inputs`; raises WireError on anything else."""
    if not isinstance(sealed, dict):
        raise WireError("malformed inputs")
    inputs = {}
    for name, value in sealed.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            inputs[name] = value
            continue
        if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data"} \
                or value["dtype"] not in INPUT_DTYPES:
            raise WireError("malformed inputs")
        shape = value["shape"]
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(isinstance(n, int) and 0 <= n <= MAX_ELEMENTS for n in shape)
                or int(np.prod(shape)) > MAX_ELEMENTS):
            raise WireError("malformed inputs")
        try:
            raw = base64.b64decode(value["data"], validate=True)
        except (ValueError, TypeError) as exc:
            raise WireError("malformed inputs") from exc
        if len(raw) != int(np.prod(shape)) * np.dtype(value["dtype"]).itemsize:
            raise WireError("malformed inputs")
        inputs[name] = np.frombuffer(raw, dtype=value["dtype"]).reshape(shape).copy()
    return inputs
