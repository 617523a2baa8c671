"""Stands in for a package the exercises must not use (torch, jax, ...) inside the grading jail.

:mod:`autograder.sandbox` binds this folder over the package's own folder, so that
``import torch`` in a grading kernel fails with this message (the grader flags it),
whatever name the package is imported under.
"""
raise ModuleNotFoundError(
    f"{__name__} is not available while grading: the exercises are written from scratch "
    "with numpy", name=__name__)
