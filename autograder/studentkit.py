"""``make student-kit``: everything a student installs, in one zip, and nothing else.

``dist/student-kit.zip`` holds the wheel of the student package ``rnnkit`` (check(),
the tasks, the comparison and the expected outputs of the public cases), the
released exercise notebooks and a short README. It is built from the committed
sources: ``kit/`` and ``exercises/``. No reference, solution or hidden case is in
it (tests/test_student_kit.py reads every byte to make sure).
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rnnkit.expected import ShippedData

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO / "dist" / "student-kit.zip"

README = """\
# RNNs and LSTMs, from scratch: student kit

Install the kit (Python 3.10 or later), then open the exercises:

    pip install {wheel} jupyterlab
    jupyter lab exercises/

Every exercise's test cells call `check(...)`: it runs the public tests, the very
ones the grader runs, and says which output, gate or time step is wrong. The
grader adds hidden cases with shapes you have not seen.

This kit checks these releases of the exercises (a notebook of another
release says so when you run its first check):
{stamps}
"""


def build_wheel(out):
    """Build the rnnkit wheel into ``out`` from a copy of kit/ (no build files left in the repo)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "kit"
        shutil.copytree(REPO / "kit", source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "-q", "-w", str(out), str(source)], check=True)
    (wheel,) = Path(out).glob("rnnkit-*.whl")
    return wheel


def notebooks(exercises=REPO / "exercises"):
    """(path in the zip, file) of every released exercise file; checkpoints left out."""
    for path in sorted(Path(exercises).rglob("*")):
        if path.is_file() and ".ipynb_checkpoints" not in path.parts and "__pycache__" not in path.parts:
            yield Path("exercises") / path.relative_to(exercises), path


def build(dest=DEFAULT_DEST):
    """Write the student kit to ``dest``; returns its path."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(tmp)
        stamps = "\n".join(f"    {a}  {s}" for a, s in sorted(ShippedData().stamps.items()))
        partial = dest.with_suffix(".zip.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(wheel, wheel.name)
            for name, path in notebooks():
                z.write(path, str(name))
            z.writestr("README.md", README.format(wheel=wheel.name, stamps=stamps))
        partial.replace(dest)   # never a half-written kit under the real name
    return dest


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.studentkit", description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"default: {DEFAULT_DEST.relative_to(REPO)}")
    args = parser.parse_args(argv)
    print(f"student kit written to {build(args.dest)}")


if __name__ == "__main__":
    main()
