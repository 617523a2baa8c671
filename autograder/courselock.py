"""One ``grade`` at a time per course directory.

:func:`holding` takes an exclusive ``flock`` on ``COURSE/.rnn-course/grade.lock`` and
writes the holder's pid, host and start time into it. The kernel releases the lock when
the holder dies, however it dies (``kill -9`` included), so a stale lock file never
blocks: only a running holder does. A second ``grade`` on the same course refuses with
one line naming the holder, and changes nothing.
"""
import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path


class Busy(RuntimeError):
    """Another process holds the course's lock; the message names it."""


@contextlib.contextmanager
def holding(course):
    """Hold the course's grading lock for the ``with`` block; :class:`Busy` if another process has it."""
    folder = Path(course) / ".rnn-course"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "grade.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise Busy(f"{course} is being graded by {holder}: wait for it to finish "
                       f"(nothing was changed)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)   # closing the last descriptor releases the lock
