"""Run independent tasks in parallel: local worker processes, or a Dask cluster.

Generic on purpose: a task is ``fn(*args)`` returning a picklable result; the grader
passes :func:`autograder.batch.grade_submission` and one argument tuple per submission.
Results come back in completion order, each also handed to ``progress``.
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed


def default_workers():
    """One more than the cores this process may use: a grading worker waits on its kernel
    about half the time (start-up handshake, replies), so cores alone would sit idle."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


def run(fn, arglist, workers=None, scheduler=None, progress=None):
    """``[fn(*args) for args in arglist]`` in completion order, in parallel.

    workers: local processes (default: :func:`default_workers`; 1 runs in this process).
    scheduler: a Dask scheduler address ("tcp://host:8786"), or "local" for a
    LocalCluster of ``workers`` processes; the course directory must then be on a
    file system every worker sees.
    """
    workers = workers or default_workers()
    if scheduler:
        results = _dask(fn, arglist, workers, scheduler)
    elif workers == 1 or len(arglist) <= 1:
        results = (fn(*args) for args in arglist)
    else:
        results = _processes(fn, arglist, workers)
    done = []
    for result in results:
        done.append(result)
        if progress:
            progress(result)
    return done


def _processes(fn, arglist, workers):
    # spawn, not fork: the parent holds SQLAlchemy engines and asyncio loops
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(arglist)), mp_context=context) as pool:
        for future in as_completed([pool.submit(fn, *args) for args in arglist]):
            yield future.result()


def _dask(fn, arglist, workers, scheduler):
    from dask.distributed import Client, LocalCluster, as_completed as dask_completed

    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        cluster, client = None, Client(scheduler)
    try:
        futures = [client.submit(fn, *args, pure=False) for args in arglist]
        for future in dask_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
