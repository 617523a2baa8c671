"""Experiments the book runs at build time and the exercises reuse."""
