"""Duty: the volunteer register, posts and shifts, and the roster solver (M10, M11)."""
