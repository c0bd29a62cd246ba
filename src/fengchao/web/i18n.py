"""Translations: Simplified Chinese is the source language, English the catalog.

Message ids are the Chinese texts themselves, so a missing English entry falls back to
Chinese rather than to a code. The ``.po`` files are compiled in memory at first use, so
there is no build step.
"""

from __future__ import annotations

import io
from contextvars import ContextVar
from functools import cache
from gettext import NullTranslations
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = {"zh_CN": "简体中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"
_TRANSLATIONS_DIR = Path(__file__).parent / "translations"

current_language: ContextVar[str] = ContextVar("current_language", default=DEFAULT_LANGUAGE)


@cache
def translations_for(language: str) -> NullTranslations:
    po_path = _TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po"
    if not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer)


def gettext(message: str) -> str:
    """Translate ``message`` into the language of the current request (or CLI run)."""
    return translations_for(current_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations_for(current_language.get()).ngettext(singular, plural, n)


_ = gettext


def pick_language(cookie: str | None, default: str) -> str:
    """The user's explicit choice (cookie) wins; otherwise the configured default (zh_CN),
    whatever the browser asks for, since most gate PCs run English-language browsers."""
    return cookie if cookie in LANGUAGES else default
