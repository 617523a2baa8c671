"""The course's grading secret: what makes hidden and fresh inputs unknowable to a kernel.

A hidden case is written in a source notebook as a spec without a seed
(``{"N": 3, "D": 5, "H": 2}``); its inputs come from a 128-bit seed that only the
grader's process computes, ``HMAC-SHA256(secret, purpose|task|spec)``, so no kernel can
search for it from the inputs it is given, and the same secret gives the same inputs at
every regrade. ``purpose`` is ``hidden`` for the instructor's hidden cases (the same
for every student) and ``fresh|<student>`` for the twins of the public cases (see
:mod:`autograder.verify`).

The secret is 32 random bytes in a file only the instructor reads: the course
directory's ``.rnn-course/secret`` (created 0600 by the first grade), or the file
named by the environment variable :data:`SECRET_ENV`. A new term rotates it by
starting from a new course directory, or by deleting the file (the next grade
creates another; regrades of older submissions then use new inputs).
"""
import hashlib
import hmac
import json
import os
from pathlib import Path

#: Path of the secret file, overriding the course directory's (not ``RNN_COURSE_*``:
#: those variables reach the grading kernel).
SECRET_ENV = "RNN_GRADER_SECRET"
SECRET_BYTES = 32


class SecretError(RuntimeError):
    """The secret file exists but is not one."""


def course_secret_path(root):
    """``<course directory>/.rnn-course/secret``, unless :data:`SECRET_ENV` names another file."""
    return Path(os.environ.get(SECRET_ENV) or Path(root) / ".rnn-course" / "secret")


def instructor_secret_path(start=None):
    """The secret of the course directory around ``start`` (default: the working directory):
    the nearest folder holding ``nbgrader_config.py``, else ``start`` itself."""
    if os.environ.get(SECRET_ENV):
        return Path(os.environ[SECRET_ENV])
    here = Path(start or os.getcwd()).resolve()
    root = next((p for p in [here, *here.parents] if (p / "nbgrader_config.py").is_file()), here)
    return course_secret_path(root)


def load(path):
    """The secret in ``path``, created (0600, in a 0700 folder) if there is none yet.

    Creation is atomic: two processes that create it at once both end up with the one
    that was linked first.
    """
    path = Path(path)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(SECRET_BYTES).hex().encode() + b"\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _read(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        text = f.read(4 * SECRET_BYTES).strip()
    try:
        secret = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        secret = b""
    if len(secret) < 16:
        raise SecretError(f"{path} does not hold a grading secret (hex digits, 16 bytes or more): "
                          f"delete it to have a new one created")
    return secret


def seeded(secret, purpose, task_name, spec):
    """``spec`` with the 128-bit seed of its inputs for ``purpose`` (``hidden``, ``fresh|<student>``).

    Any ``seed`` in ``spec`` is ignored: the seed is the secret's alone.
    """
    plain = {k: v for k, v in spec.items() if k != "seed"}
    message = "|".join([purpose, task_name, json.dumps(plain, sort_keys=True)]).encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return {**plain, "seed": int.from_bytes(digest[:16], "big")}
