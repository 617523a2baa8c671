"""The one place that decides whether the tests run on CI, and what a missing dependency does there.

On CI (``CI`` set to true, 1 or yes, in any case) nothing may skip: a test that cannot run
fails with what to install. Elsewhere (a laptop without PostgreSQL) it skips with the same words.
"""
import os

import pytest


def on_ci():
    """True when the environment variable CI says true, 1 or yes (case-insensitive)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def unavailable(what, install):
    """Skip (fail on CI) because ``what`` is missing here; ``install`` says how to get it."""
    message = f"{what}: {install}"
    if on_ci():
        pytest.fail(f"{message} (CI=true: every test must run)", pytrace=False)
    pytest.skip(message)


def require(ok, what, install):
    """``unavailable(what, install)`` unless ``ok``."""
    if not ok:
        unavailable(what, install)


def require_module(name, install=None):
    """``import name``, or skip (fail on CI) saying which package installs it."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as err:
        unavailable(f"cannot import {name} ({err})", install or "pip install -r requirements.txt")
