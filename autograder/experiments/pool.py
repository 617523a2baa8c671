"""Independent training runs of the book's chapters, spread over the machine's cores.

A chapter is executed by one kernel, which uses one core; its training runs
(seeds, learning rates, cells) do not depend on each other, so
:func:`map_in_workers` runs them in worker processes, one per core (each with
one BLAS thread, as the trainers set). The results are those of a plain
``map``: they depend neither on the number of workers nor on their order.
"""
import concurrent.futures
import multiprocessing
import os

#: At most this many worker processes.
MAX_WORKERS = 4


def workers():
    """Worker processes to use: one per core this process may run on, at most MAX_WORKERS."""
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))


def map_in_workers(function, jobs):
    """[function(job) for job in jobs], computed in worker processes.

    function must be importable by name (defined at a module's top level) and
    jobs picklable. Workers are started with "spawn", never by forking the
    kernel's threaded process.
    """
    jobs = list(jobs)
    if len(jobs) <= 1 or workers() == 1:
        return [function(job) for job in jobs]
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(min(workers(), len(jobs)),
                                                mp_context=spawn) as pool:
        return list(pool.map(function, jobs))
