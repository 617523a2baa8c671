#!/usr/bin/env python3
"""Vendor MathJax 3 into the book, so equations render with no internet.

The book's pages load MathJax from ``_static/mathjax/`` (``mathjax_path`` in
_config.yml) instead of a CDN. This script fetches the official npm package
``mathjax`` at a pinned version with ``npm pack`` (the npm registry's ordinary
client), checks the tarball against a pinned sha512, and unpacks its ``es5/``
build into ``_vendor/html/_static/mathjax/``. _config.yml lists ``_vendor/html``
in ``html_extra_path``, so Sphinx copies it into ``_build/html/``.

Nothing it writes is committed: ``_vendor/`` carries its own ``.gitignore``.
The Makefile runs it before every book build; it returns at once when the
pinned version is already in place.

    python3 scripts/vendor_mathjax.py            # fetch with npm (default)
    python3 scripts/vendor_mathjax.py --tarball mathjax-3.2.2.tgz   # no npm
    python3 scripts/vendor_mathjax.py --force    # unpack again

Standard library only; needs ``npm`` on PATH unless ``--tarball`` is given.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.2.2"
# `npm view mathjax@3.2.2 dist.integrity`
INTEGRITY = (
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "_vendor"
DEST = VENDOR / "html" / "_static" / "mathjax"
STAMP = DEST / ".vendored"  # dotfile: Sphinx copies it, harmless; records what is unpacked
ENTRY = "tex-mml-chtml.js"  # the combined component _config.yml's mathjax_path names


def _integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def _npm_pack(workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit(
            "vendor_mathjax: `npm` not found. Install Node.js/npm (Debian: apt-get install npm), "
            "or pass --tarball PATH to a mathjax-%s.tgz from the npm registry." % VERSION
        )
    cmd = [npm, "pack", f"mathjax@{VERSION}", "--pack-destination", str(workdir),
           "--silent", "--no-fund", "--no-audit"]
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        sys.exit(f"vendor_mathjax: `{' '.join(cmd)}` failed ({exc}); is the npm registry reachable?")
    tgz = workdir / f"mathjax-{VERSION}.tgz"
    if not tgz.is_file():
        sys.exit(f"vendor_mathjax: npm pack did not produce {tgz.name}")
    return tgz


def _unpack(tgz: Path, staging: Path) -> None:
    """Extract package/es5/** and package/LICENSE into staging, refusing odd members."""
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if name == "package/LICENSE":
                rel = "LICENSE"
            elif name.startswith("package/es5/"):
                rel = name[len("package/es5/"):]
            else:
                continue
            parts = Path(rel).parts
            if not rel or rel.startswith("/") or ".." in parts:
                sys.exit(f"vendor_mathjax: unsafe path in tarball: {name!r}")
            if member.isdir():
                continue
            if not member.isfile():
                sys.exit(f"vendor_mathjax: unexpected non-file member in tarball: {name!r}")
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tarball", type=Path, help="use this mathjax-%s.tgz instead of `npm pack`" % VERSION)
    ap.add_argument("--force", action="store_true", help="unpack again even if up to date")
    args = ap.parse_args(argv)

    VENDOR.mkdir(exist_ok=True)
    # Keep everything here out of git, whatever the top-level .gitignore says.
    (VENDOR / ".gitignore").write_text("# written by scripts/vendor_mathjax.py: vendored at build time, never committed\n*\n")

    wanted = f"mathjax {VERSION} {INTEGRITY}\n"
    if not args.force and STAMP.is_file() and STAMP.read_text() == wanted and (DEST / ENTRY).is_file():
        print(f"vendor_mathjax: MathJax {VERSION} already in {DEST.relative_to(ROOT)}")
        return 0

    with tempfile.TemporaryDirectory(prefix="mathjax-", dir=VENDOR) as tmp:
        tmpdir = Path(tmp)
        tgz = args.tarball.resolve() if args.tarball else _npm_pack(tmpdir)
        got = _integrity(tgz)
        if got != INTEGRITY:
            sys.exit(f"vendor_mathjax: {tgz.name} fails its integrity check:\n  want {INTEGRITY}\n  got  {got}")
        staging = tmpdir / "mathjax"
        staging.mkdir()
        _unpack(tgz, staging)
        if not (staging / ENTRY).is_file():
            sys.exit(f"vendor_mathjax: {ENTRY} missing from the package")
        (staging / ".vendored").write_text(wanted)
        # Swap in atomically-ish: a half-written tree never sits at DEST.
        DEST.parent.mkdir(parents=True, exist_ok=True)
        old = tmpdir / "old"
        if DEST.exists():
            os.replace(DEST, old)
        os.replace(staging, DEST)
    n = sum(1 for p in DEST.rglob("*") if p.is_file())
    print(f"vendor_mathjax: MathJax {VERSION} ({n} files) -> {DEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
