"""``make publish``: the public side of the course in ``dist/public/``, and nothing else.

    python -m autograder.publish [--dest dist/public] [--no-site] [--print-repository]

writes

* ``site/``: the book as a static site (GitHub Pages or any web server), the
  *public edition*: every chapter and exercise, the glossary, not the instructors'
  page (it is about the solutions, the hidden tests and this repository);
* ``student-kit.zip``: what students download (the site serves the same file from
  every exercise page);
* ``repo/``: the students' repository, to push as its own public git repository
  (``repository`` of ``_config.yml``, see :mod:`autograder.public_repo`): the released
  exercises, the kit's source with its corpora, Binder's configuration (``binder/``),
  the students' README and a NOTICE for the third-party texts.

Nothing of ``solutions/``, ``autograder/``, ``tests/``, no hidden case and no reference
code (tests/test_publish.py scans every file). The folder is written next to its
place and moved there when complete. ``publish/workflow.yml`` runs this on CI and
pushes the result; ``--print-repository`` prints ``OWNER/NAME BRANCH`` for it.
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from . import studentkit
from .public_repo import CONFIG, REPO, public_repository

DEFAULT_DEST = REPO / "dist" / "public"
#: The book's parts students do not get.
INSTRUCTOR_PARTS = ("Instructors",)
#: The execution cache `make book` fills: the public edition reuses its outputs.
CACHE = REPO / "_build" / ".jupyter_cache"

GITIGNORE = ".venv/\n.ipynb_checkpoints/\n__pycache__/\n*.egg-info/\nbuild/\n"


def build_repo(dest, kit_source):
    """The students' repository in ``dest``: README, NOTICE, exercises, kit (``kit_source``), binder."""
    dest = Path(dest)
    dest.mkdir(parents=True)
    shutil.copytree(kit_source, dest / "kit", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    shutil.copytree(REPO / "binder", dest / "binder")
    for name, path in studentkit.notebooks():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / name)
    shutil.copyfile(dest / "kit" / "rnnkit" / "data" / "NOTICE.md", dest / "NOTICE.md")
    (dest / ".gitignore").write_text(GITIGNORE)
    (dest / "README.md").write_text(studentkit.readme(
        install="./kit", install_from_notebook="path/to/this/repository/kit",
        folder="this repository's folder (a `git clone`, or GitHub's *Download ZIP* unzipped)",
        notice="NOTICE.md"), encoding="utf8")
    return dest


def public_book_config(kit_zip, config=CONFIG):
    """The book's configuration for the public edition: the same, with absolute paths
    (it is read from elsewhere), the student kit ``kit_zip`` and `make book`'s cache."""
    book = yaml.safe_load(Path(config).read_text(encoding="utf8"))
    sphinx = book["sphinx"]
    sphinx["local_extensions"] = {name: str(REPO / path) for name, path in sphinx["local_extensions"].items()}
    sphinx["config"]["html_extra_path"] = [str(REPO / p) for p in sphinx["config"]["html_extra_path"]]
    sphinx["config"]["student_kit_zip"] = str(Path(kit_zip).resolve())
    book["execute"]["cache"] = str(CACHE)
    return book


def public_toc(toc=REPO / "_toc.yml"):
    """_toc.yml without the instructors' part."""
    toc = yaml.safe_load(Path(toc).read_text(encoding="utf8"))
    toc["parts"] = [part for part in toc["parts"] if part.get("caption") not in INSTRUCTOR_PARTS]
    return toc


def build_site(dest, kit_zip):
    """Build the public edition of the book (strict: any warning fails) into ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "_config.yml").write_text(yaml.safe_dump(public_book_config(kit_zip)), encoding="utf8")
        (tmp / "_toc.yml").write_text(yaml.safe_dump(public_toc()), encoding="utf8")
        out = REPO / "_build" / "public"
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(REPO),
                        "--path-output", str(out), "--config", str(tmp / "_config.yml"),
                        "--toc", str(tmp / "_toc.yml"), "-W", "-n", "--keep-going"], check=True)
    shutil.copytree(out / "_build" / "html", dest, ignore=shutil.ignore_patterns(".buildinfo", ".doctrees"))
    return dest


def build(dest=DEFAULT_DEST, site=True):
    """Write the public side to ``dest`` (without the site if ``site`` is false); returns ``dest``."""
    dest = Path(dest)
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        kit_source = studentkit.stage_kit(Path(tmp) / "kit")
        kit_zip = studentkit.build(partial / "student-kit.zip", source=kit_source)
        build_repo(partial / "repo", kit_source)
    if site:
        build_site(partial / "site", kit_zip)
    shutil.rmtree(dest, ignore_errors=True)
    partial.replace(dest)
    return dest


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.publish", description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"default: {DEFAULT_DEST.relative_to(REPO)}")
    parser.add_argument("--no-site", action="store_true", help="the kit and the repository only, not the book")
    parser.add_argument("--print-repository", action="store_true", help="print OWNER/NAME BRANCH and exit")
    args = parser.parse_args(argv)
    if args.print_repository:
        public = public_repository()
        print(public.slug, public.branch)
        return
    print(f"public side written to {build(args.dest, site=not args.no_site)}")


if __name__ == "__main__":
    main()
