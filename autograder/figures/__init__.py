"""Figures the book draws with its own code (matplotlib, no torch)."""
