"""nbgrader's formgrader as an instructor starts it: a Jupyter server in the course directory.

The server listens on 127.0.0.1 only, with token authentication; ``formgrader(course)``
yields its base URL and token, and stops it afterwards.
"""
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

BIN = os.path.dirname(sys.executable)
ENV = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
TOKEN = "formgrader-test-token"


@contextlib.contextmanager
def formgrader(course, timeout=60):
    """A Jupyter server with nbgrader's formgrader, run in ``course``: (base URL, token)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [os.path.join(BIN, "jupyter"), "server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={TOKEN}", "--ServerApp.open_browser=False", "--allow-root",
         "--ServerApp.jpserver_extensions={'nbgrader.server_extensions.formgrader': True}"],
        cwd=course, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "the Jupyter server did not start"
                time.sleep(0.3)
        yield url, TOKEN
    finally:
        server.terminate()
        server.wait(30)


def api(url, token, path, body=None, method=None):
    """A call of the formgrader's JSON API (``/formgrader/api/<path>``): its answer."""
    request = urllib.request.Request(f"{url}/formgrader/api/{path}", method=method or ("PUT" if body else "GET"),
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
