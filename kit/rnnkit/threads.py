"""One BLAS thread while the kit trains a model.

The training loops multiply small matrices (a batch of 8 to 64 rows by a hidden size
of 32 to 128) thousands of times. A multi-threaded BLAS (OpenBLAS and MKL start one
thread per core) spends longer waking and synchronising its threads than
multiplying such matrices: exercise 5 trained about 5 times slower with it on two
cores. ``benchmarks/blas_threads.py`` (course repository) measures the ratio.
"""
import functools

from threadpoolctl import threadpool_limits


def one_blas_thread(function):
    """Decorator: ``function`` runs with every BLAS library limited to one thread.

    The limits in force before the call are restored when it returns or raises.
    """
    @functools.wraps(function)
    def limited(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)
    return limited
