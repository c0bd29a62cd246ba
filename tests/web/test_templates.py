"""Every template keeps to the Content-Security-Policy: no inline script, no inline event
handlers, no style attributes (they would silently stop working in the browser)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "src" / "fengchao"
TEMPLATES = sorted(ROOT.rglob("templates/**/*.html"))

INLINE = {
    "an inline event handler": re.compile(r"\son[a-z]+\s*=", re.I),
    "a style attribute": re.compile(r"\sstyle\s*=", re.I),
    "an inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "a <style> element": re.compile(r"<style[\s>]", re.I),
    "a javascript: URL": re.compile(r"javascript:", re.I),
}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_template_needs_no_inline_script_or_style(path: Path) -> None:
    text = path.read_text()
    found = [what for what, pattern in INLINE.items() if pattern.search(text)]
    assert not found, f"{path.name} has {', '.join(found)}"
