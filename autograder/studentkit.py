"""``make student-kit``: everything a student installs, in one zip, and nothing else.

``dist/student-kit.zip`` holds the wheel of the student package ``rnnkit`` (check(),
the tasks, the comparison and the expected outputs of the public cases, and the text
corpora of exercise 5), the released exercise notebooks and the students' README.
It is built from the committed sources, ``kit/`` and ``exercises/``, plus the
corpora, extracted at build time from this machine (Debian's fortunes-zh, this
Python's ``pydoc_data``) into a copy of ``kit/``: they are never committed. No
reference, solution or hidden case is in it (tests/test_student_kit.py reads every
byte to make sure).
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rnnkit import corpus
from rnnkit.expected import ShippedData

from .public_repo import REPO, public_repository

DEFAULT_DEST = REPO / "dist" / "student-kit.zip"

NOTICE = """\
# Third-party text in rnnkit/data

The course's code and notebooks are the course team's. The two text corpora that
exercise 5 trains on are not; the kit carries them so that it runs without a system
package. Both were extracted when this kit was built.

## tang300.json: Tang poems

The titles, authors and texts of the poems in the file
`/usr/share/games/fortunes/tang300` of Debian's package `fortunes-zh` ({fortunes}),
a selection from *Three Hundred Tang Poems* (唐诗三百首, compiled about 1763). The
poems were written in the 7th to 10th centuries and are in the public domain. The
package is copyright 2001-2009 Yu Guanghui, 2015-2019 Mo Zhou, 2020-2021 xiao sheng
wen, and distributed under the GNU General Public License, version 3 or later
(source: https://salsa.debian.org/chinese-team/fortunes-zh). Only the poems were
kept: colour codes, separators and prefaces were dropped.

## pydoc.json: Python's documentation

The text of the documentation topics shipped with CPython {python} as
`pydoc_data.topics`. Copyright 2001 Python Software Foundation; licensed under the
PSF License Agreement (https://docs.python.org/3/license.html).
"""

README = """\
# RNNs and LSTMs, from scratch: exercises

The course book: {site}
The exercises, ready to run on Binder (nothing to install):
{binder}

Every exercise's test cells call `check(...)`: it runs the public tests, the very
ones the grader runs, and says which output, gate or time step is wrong. The grader
adds hidden cases with shapes you have not seen.

## Install on your computer

You need Python 3.10 to 3.13 (python.org, your system's Python, or Homebrew's).
Install the kit in a *virtual environment*, a folder of its own: Debian 12, Ubuntu
23.04 and later and Homebrew refuse `pip install` outside one
("externally-managed-environment", PEP 668). In a terminal, in {folder}:

Linux (Debian and Ubuntu: once, `sudo apt-get install python3-venv`) and macOS:

    python3 -m venv .venv
    source .venv/bin/activate
    python -m pip install {install} jupyterlab
    python -m jupyter lab exercises

Windows (PowerShell or cmd; `py` comes with the python.org installer):

    py -m venv .venv
    .venv\\Scripts\\activate
    python -m pip install {install} jupyterlab
    python -m jupyter lab exercises

(If PowerShell refuses to run `activate`, run once
`Set-ExecutionPolicy -Scope CurrentUser RemoteSigned`, or use cmd.) Next time,
activate the environment again (second line) and start JupyterLab (last line).

## When `check` is missing

If the first code cell of a notebook says "This notebook needs rnnkit", or
`check` is not defined, the notebook's kernel is not the Python you installed the
kit into. Start JupyterLab from the activated environment as above (`python -m
jupyter lab`), or, in a cell of the notebook, install the kit into the kernel's
own Python and restart the kernel:

    %pip install {install_from_notebook}

Then run the notebook again from its first cell. A message that the notebook and
the kit belong to different releases means one of them is old: download both
again.

## Exercise 5's texts

The kit carries the texts exercise 5 trains on (Tang poems, Python's
documentation): see {notice} for their origin and licences.

This kit checks these releases of the exercises (a notebook of another release
says so when you run its first check):
{stamps}
"""


def tang300_version():
    """fortunes-zh's version as dpkg knows it, or a sentence saying it is unknown."""
    try:
        run = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "fortunes-zh"],
                             capture_output=True, text=True)
    except FileNotFoundError:
        return "version unknown"
    return f"version {run.stdout.strip()}" if run.returncode == 0 and run.stdout.strip() else "version unknown"


def stage_kit(dest):
    """Copy kit/ to ``dest`` and add the corpora and their NOTICE under rnnkit/data/; returns ``dest``.

    The Tang poems come from Debian's file only (never from a kit's copy): a kit is
    built on the instructor's machine, with fortunes-zh installed (``make corpora``).
    """
    if not corpus.TANG300.is_file():
        raise SystemExit(f"{corpus.TANG300} is missing: the kit carries the Tang poems from it; "
                         "install Debian's fortunes-zh first (make corpora)")
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise SystemExit("this Python has no pydoc_data.topics: build the kit with a standard CPython") from None
    dest = Path(dest)
    shutil.copytree(REPO / "kit", dest,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "data"))
    data = dest / "rnnkit" / "data"
    corpus.write_packaged("tang300", corpus.load_tang300(corpus.TANG300), data)
    corpus.write_packaged("pydoc", corpus.pydoc_documents(topics), data)
    (data / "NOTICE.md").write_text(NOTICE.format(fortunes=tang300_version(), python=sys.version.split()[0]),
                                    encoding="utf8")
    return dest


def build_wheel(out, source=None):
    """Build the rnnkit wheel into ``out`` from ``source`` (default: a staged copy of kit/)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = source or stage_kit(Path(tmp) / "kit")
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "-q", "-w", str(out), str(source)], check=True)
    (wheel,) = Path(out).glob("rnnkit-*.whl")
    return wheel


def notebooks(exercises=REPO / "exercises"):
    """(path in the zip, file) of every released exercise file; checkpoints left out."""
    for path in sorted(Path(exercises).rglob("*")):
        if path.is_file() and ".ipynb_checkpoints" not in path.parts and "__pycache__" not in path.parts:
            yield Path("exercises") / path.relative_to(exercises), path


def readme(install, install_from_notebook, folder, notice):
    """The students' README: where the book and Binder are, how to install, what if check is missing."""
    public = public_repository()
    stamps = "\n".join(f"    {a}  {s}" for a, s in sorted(ShippedData().stamps.items()))
    return README.format(site=public.site_url, binder=public.binder_url(), install=install,
                         install_from_notebook=install_from_notebook, folder=folder, notice=notice,
                         stamps=stamps)


def build(dest=DEFAULT_DEST, source=None):
    """Write the student kit to ``dest`` (the wheel built from ``source``, default a staged kit/); returns its path."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(tmp, source)
        text = readme(install=wheel.name, install_from_notebook=f"path/to/the/unzipped/kit/{wheel.name}",
                      folder="the folder where you unzipped student-kit.zip",
                      notice=f"rnnkit/data/NOTICE.md inside {wheel.name}")
        partial = dest.with_suffix(".zip.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(wheel, wheel.name)
            for name, path in notebooks():
                z.write(path, str(name))
            z.writestr("README.md", text)
        partial.replace(dest)   # never a half-written kit under the real name
    return dest


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.studentkit", description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"default: {DEFAULT_DEST.relative_to(REPO)}")
    args = parser.parse_args(argv)
    print(f"student kit written to {build(args.dest)}")


if __name__ == "__main__":
    main()
