"""Base templates, static assets and translations shared by every slice."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
"""Stylesheets, scripts and images served under ``/static`` (and the console's service
worker, served under ``/gates/``)."""
