"""Run independent tasks in parallel: local worker processes, or a Dask cluster.

Generic on purpose: a task is ``fn(*args)`` returning a picklable result; the grader
passes :func:`autograder.batch.grade_submission` and one argument tuple per submission.
Results come back in completion order, each also handed to ``progress``.

Stopping: Ctrl-C or SIGTERM in the calling process stops every task within seconds and
raises :class:`Interrupted` with the results that finished. A task in flight is told to
stop (:func:`stop_requested` turns true, SIGTERM raises :class:`Stopped` in it), killed if
it does not, and then ``abort(*args)`` is called for it, once its process is gone.

On Dask, every worker thread runs its tasks in a grading process of its own (started by
the worker, kept for the thread's next task), so a worker with several threads grades
correctly (nbgrader's autograde changes the process's environment, which threads
share), and a task can be stopped: it watches ``stop_file``, which must be on a file
system the workers see.
"""
import ctypes
import functools
import gc
import multiprocessing
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

GRACE = 5.0   # seconds a stopped task may take to clean up before it is killed
_stop = threading.Event()


class Stopped(BaseException):
    """Raised in a task whose batch is being stopped: nothing it did may count."""


class Interrupted(KeyboardInterrupt):
    """The batch was stopped; ``results`` are those of the tasks that finished."""

    def __init__(self, results):
        super().__init__(f"interrupted after {len(results)} tasks")
        self.results = results


class SchedulerLost(RuntimeError):
    """The Dask scheduler went away (killed, its machine lost); ``results`` are those of the
    tasks that finished before, ``pending`` the argument tuples of the others, whose tasks may
    still be running on workers: nothing is aborted for them."""

    def __init__(self, why, results=(), pending=()):
        super().__init__(why)
        self.why, self.results, self.pending = why, list(results), list(pending)


def stop_requested():
    """True in a task once its batch is being stopped (the task must then not record anything)."""
    return _stop.is_set()


def _on_sigterm(signum, frame):
    _stop.set()
    # What this process was doing is discarded: its dying words (asyncio's "Task exception
    # was never retrieved", kernel shutdown noise) would only clutter the instructor's terminal.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    raise Stopped()


def _on_sigint(signum, frame):   # Ctrl-C reaches the whole process group: the parent decides
    _stop.set()


PR_SET_PDEATHSIG = 1   # prctl(2)


def _worker_signals(parent=None):
    """A worker's set-up: stop signals, and, in a pool worker, death with ``parent`` (the
    batch's process, which forked it from the thread that waits for its results).

    However the batch dies, ``kill -9`` included, the kernel kills its workers with it: none
    goes on grading, holding the gradebook, after the command is gone (what they had in
    flight stays in its journal, which the next run restores). A Dask grading process
    instead ends when its worker's pipe closes, after the task in hand (:data:`_SERVER`).
    """
    signal.signal(signal.SIGINT, _on_sigint)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:   # the parent died before the line above
        os._exit(1)


def default_workers():
    """One more than the cores this process may use: a grading worker waits on its kernel
    about half the time (start-up handshake, replies), so cores alone would sit idle."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


def run(fn, arglist, workers=None, scheduler=None, progress=None, stop_file=None, abort=None, lost=None):
    """``[fn(*args) for args in arglist]`` in completion order, in parallel.

    workers: local processes (default: :func:`default_workers`; 1 runs in this process).
    scheduler: a Dask scheduler address ("tcp://host:8786"), or "local" for a
    LocalCluster of ``workers`` processes; the course directory must then be on a
    file system every worker sees. stop_file, abort: see the module's docstring.
    lost: ``lost(*args, why)`` is the result of a task whose process died under it (killed,
    out of memory): the other tasks go on.
    """
    workers = workers or default_workers()
    _stop.clear()
    done = []
    stopping = functools.partial(_stopping, stop_file)
    if scheduler:
        results = _dask(fn, arglist, workers, scheduler, stop_file, abort, stopping, lost)
    elif workers == 1 or len(arglist) <= 1:
        results = _here(fn, arglist, abort)
    else:
        results = _processes(fn, arglist, workers, abort, stopping, lost)
    handlers = _catch_stop_signals()
    try:
        for result in results:
            done.append(result)
            if progress:
                progress(result)
    except KeyboardInterrupt:
        stopping()
        results.close()   # a generator still open stops its tasks and aborts those in flight
        raise Interrupted(done) from None
    except SchedulerLost as exc:
        raise SchedulerLost(exc.why, done, exc.pending) from None
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        if stop_file:
            Path(stop_file).unlink(missing_ok=True)
    return done


def _catch_stop_signals():
    """In the main thread: SIGINT and SIGTERM raise KeyboardInterrupt once, then only mark the stop."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        if not _stop.is_set():
            _stop.set()
            raise KeyboardInterrupt()
    return {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}


def _stopping(stop_file):
    """Tell every task to stop: the flag here, the stop file for tasks elsewhere."""
    _stop.set()
    if stop_file:
        Path(stop_file).parent.mkdir(parents=True, exist_ok=True)
        Path(stop_file).touch()


def _here(fn, arglist, abort):
    for args in arglist:
        if _stop.is_set():
            raise KeyboardInterrupt()
        try:
            result = fn(*args)
        except (KeyboardInterrupt, Stopped):
            if abort:
                abort(*args)
            raise KeyboardInterrupt() from None
        if _stop.is_set():   # Ctrl-C arrived while the task was finishing
            if abort:
                abort(*args)
            raise KeyboardInterrupt()
        yield result


#: Host pid of the worker that started each task of the pool being run (0: not started);
#: made before the pool's workers are forked, so they share it.
_started = None


def _processes(fn, arglist, workers, abort, stopping, lost=None):
    """The tasks in pools of forked workers. A worker that dies (out of memory, a signal)
    costs only the task it was running: ``lost(*args, why)`` is its result (an error if there
    is no ``lost``); the pool is replaced and the other tasks in flight run again, after
    ``abort``."""
    todo, rounds = list(arglist), 0
    while todo:
        rounds += 1
        broken = yield from _pool(fn, todo, workers, abort, stopping)
        if not broken:
            return
        left, gone = broken
        todo = []
        for args, pid in left:
            code = gone.get(pid)
            if pid and (code not in (None, 1, -signal.SIGTERM) or rounds > len(arglist)):
                if lost is None:
                    raise BrokenProcessPool(f"a grading process died ({_death(code)})")
                if abort:
                    abort(*args)
                yield lost(*args, _death(code))
            else:
                if pid and abort:   # stopped by the pool when another worker died: run again
                    abort(*args)
                todo.append(args)


def _death(code):
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        return f"killed by {name}" + (", out of memory?" if name == "SIGKILL" else "")
    return f"exited with status {code}"


def _pool(fn, arglist, workers, abort, stopping):
    """One pool's results; returns None when all are done, or, if a worker died,
    ``([(args, pid of the worker that started it or 0)], {pid: exit code})`` of what is left."""
    global _started
    # fork: a worker starts with what the parent has imported and set up (nbgrader, the
    # course's API, the zygote's address) instead of 1.5 s of imports of its own. The
    # parent holds no gradebook connection meanwhile (batch.autograde), and what must
    # not be shared is made anew in the child (os.register_at_fork in session and forkserver).
    context = multiprocessing.get_context("fork")
    _started = context.Array("l", len(arglist), lock=False)
    # The workers' garbage collector leaves what they inherit alone (its collections would
    # write to every inherited object, copying the parent's memory into each worker).
    gc.freeze()
    try:
        pool = ProcessPoolExecutor(max_workers=min(workers, len(arglist)), mp_context=context,
                                   initializer=_worker_signals, initargs=(os.getpid(),))
        futures = {pool.submit(_in_worker, fn, i, *args): (i, args) for i, args in enumerate(arglist)}
        processes = list((pool._processes or {}).values())
    finally:
        gc.unfreeze()   # the workers are forked (at the first submit, all at once): collected here as before
    finished = set()
    try:
        for future in as_completed(futures):
            try:
                result = future.result()
            except BrokenProcessPool:
                if _stop.is_set():
                    raise KeyboardInterrupt() from None   # a worker ended itself: the batch is stopping
                pool.shutdown(wait=False, cancel_futures=True)
                _terminate(processes)
                gone = {p.pid: p.exitcode for p in processes}
                for other in futures:   # finished before the break, not yet handed over
                    if other not in finished and other.done() and other.exception() is None:
                        finished.add(other)
                        yield other.result()
                return [(args, _started[i]) for f, (i, args) in sorted(futures.items(), key=lambda kv: kv[1][0])
                        if f not in finished], gone
            finished.add(future)
            yield result
    except (GeneratorExit, KeyboardInterrupt):
        stopping()
        processes = list((pool._processes or {}).values()) or processes
        pool.shutdown(wait=False, cancel_futures=True)
        _terminate(processes)
        if abort:
            for future, (_, args) in futures.items():
                if future not in finished:
                    abort(*args)
        raise
    pool.shutdown()
    return None


def _in_worker(fn, index, *args):
    """``fn(*args)`` in a pool worker; a stopped task ends its process (the parent aborts the task)."""
    _started[index] = os.getpid()
    try:
        return fn(*args)
    except Stopped:
        os._exit(1)


def _terminate(processes):
    """SIGTERM, then after GRACE seconds SIGKILL; returns when every process is gone."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + GRACE
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join()


def _dask(fn, arglist, workers, scheduler, stop_file, abort, stopping, lost=None):
    from asyncio import CancelledError

    from dask.distributed import Client, LocalCluster, as_completed as dask_completed, wait

    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        cluster, client = None, Client(scheduler)
    quiet = _quiet_dask_logs()   # a lost scheduler is said in one line, not in logged tracebacks
    try:
        futures = [client.submit(isolated, fn, args, str(stop_file) if stop_file else None, abort, lost,
                                 pure=False) for args in arglist]
        pending = dict(zip(futures, arglist))
        try:
            for future in dask_completed(futures):
                try:
                    result = future.result()
                except Exception as exc:
                    if client.status == "running" and not isinstance(exc, CancelledError) and lost is not None:
                        result = lost(*pending[future], f"its Dask task failed: {type(exc).__name__}: {exc}"[:300])
                    else:
                        raise SchedulerLost(f"the Dask scheduler {scheduler} was lost ({type(exc).__name__}); "
                                            f"a rerun grades it again", pending=list(pending.values())) from None
                del pending[future]
                yield result
        except (GeneratorExit, KeyboardInterrupt):
            # Running tasks see the stop file, stop their process and abort themselves;
            # tasks not started yet return at once: wait until none touches the course.
            stopping()
            try:
                wait(futures, timeout=GRACE * 4)
            except Exception:   # distributed's TimeoutError
                pass
            raise
    finally:
        try:
            client.close(timeout=GRACE)
            if cluster is not None:
                cluster.close()
        except Exception:   # closing a client whose scheduler is gone
            pass
        quiet()


def _quiet_dask_logs():
    """Silence distributed's loggers; returns what puts their levels back."""
    import logging
    names = ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL + 1)

    def restore():
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
    return restore


_SERVER = """\
import os, pickle, struct, traceback
from autograder import scheduling
scheduling._worker_signals()
replies = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)   # what grading prints goes to the log, never into the replies
while True:
    head = os.read(0, 8)
    if len(head) < 8:
        break
    size, data = struct.unpack("!Q", head)[0], b""
    while len(data) < size:
        data += os.read(0, size - len(data))
    fn, args = pickle.loads(data)
    try:
        reply = (True, fn(*args))
    except Exception:
        reply = (False, traceback.format_exc(limit=5))
    data = pickle.dumps(reply)
    replies.write(struct.pack("!Q", len(data)) + data)
    replies.flush()
"""
_thread = threading.local()   # each Dask worker thread keeps its own grading process


class GradingProcessDied(RuntimeError):
    """The process running a task died; ``why``: how, in words."""

    def __init__(self, message, why):
        super().__init__(f"grading process {message}")
        self.why = why


def isolated(fn, args, stop_file=None, abort=None, lost=None):
    """``fn(*args)`` in a Python process of this thread's own; None if ``stop_file`` appeared meanwhile.

    What a Dask worker runs: whatever its threads, tasks never share a process, and the
    process (with its imports and caches) serves the thread's next task. A stopped task's
    process is killed, then ``abort(*args)`` is called; a task whose process died under it
    returns ``lost(*args, why)`` (after ``abort``), if given.
    """
    if stop_file and os.path.exists(stop_file):
        return None
    child = _server()
    data = pickle.dumps((fn, args))
    os.write(child.stdin.fileno(), struct.pack("!Q", len(data)) + data)
    try:
        reply = _reply(child, stop_file)
    except GradingProcessDied as exc:
        if lost is None:
            raise RuntimeError(str(exc)) from None
        if abort:
            abort(*args)
        return lost(*args, exc.why)
    if reply is None:
        _stop_child(child)
        _thread.child = None
        if abort:
            abort(*args)
        return None
    ok, value = reply
    if not ok:
        raise RuntimeError(f"grading process failed: {value.strip().splitlines()[-1]}")
    return value


def _server():
    child = getattr(_thread, "child", None)
    if child is None or child.poll() is not None:
        _thread.log = tempfile.TemporaryFile()
        child = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=_thread.log, bufsize=0, start_new_session=True)
        _thread.child = child
    return child


def _reply(child, stop_file):
    """The child's (ok, value) for the task sent; None if the stop file appeared first."""
    fd = child.stdout.fileno()
    while not select.select([fd], [], [], 0.2)[0]:
        if stop_file and os.path.exists(stop_file):
            return None
    head = _read(fd, 8)
    if len(head) < 8:   # the process died
        child.wait()
        _thread.log.seek(0)
        tail = _thread.log.read().decode(errors="replace").strip().splitlines()[-3:]
        _thread.child = None
        raise GradingProcessDied(f"{_death(child.returncode)}: {' | '.join(tail)}", _death(child.returncode))
    return pickle.loads(_read(fd, struct.unpack("!Q", head)[0]))


def _read(fd, size):
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _stop_child(child):
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        child.wait()
