"""A Dask scheduler and worker on localhost, started with the `dask` command as an instructor would."""
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager


@contextmanager
def dask_cluster(cwd, nthreads=2):
    """Yield the address of a scheduler with one `dask worker --nthreads NTHREADS`; stop both after."""
    from dask.distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "cwd": cwd}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              **quiet)]
    try:
        procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", str(nthreads), "--nworkers", "1",
                                       "--no-dashboard"], **quiet))
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout=5) as client:
                    workers = client.scheduler_info()["workers"]
                    if workers:
                        assert [w["nthreads"] for w in workers.values()] == [nthreads]
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the Dask worker did not come up"
            time.sleep(0.5)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)
