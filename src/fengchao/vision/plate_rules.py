"""Chinese licence plate rules (GA 36): normal form and validity with a reason.

Pure: no image, model, database or web.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
SPECIAL_SUFFIXES = "警学挂港澳领"
# I and O are never used on plates: they would be read as 1 and 0.
_LETTER = "A-HJ-NP-Z"
_ALNUM = "A-HJ-NP-Z0-9"

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ordinary", re.compile(rf"^[{PROVINCES}][{_LETTER}][{_ALNUM}]{{5}}$")),
    ("new_energy_small", re.compile(rf"^[{PROVINCES}][{_LETTER}][DF][{_ALNUM}]\d{{4}}$")),
    ("new_energy_large", re.compile(rf"^[{PROVINCES}][{_LETTER}]\d{{5}}[DF]$")),
    ("special", re.compile(rf"^[{PROVINCES}][{_LETTER}][{_ALNUM}]{{4}}[{SPECIAL_SUFFIXES}]$")),
    ("embassy", re.compile(r"^使\d{6}$|^\d{6}使$")),
)


@dataclass(frozen=True)
class PlateCheck:
    """The outcome of checking a plate text: its normal form, kind and, if invalid, why."""

    text: str
    valid: bool
    kind: str | None
    reason: str | None


def normalise_plate(text: str) -> str:
    """Upper case, half-width, without spaces, dots or dashes: 闽A·12345 → 闽A12345."""
    clean = unicodedata.normalize("NFKC", text).upper()
    return re.sub(r"[\s·•.\-_]", "", clean)


def check_plate(text: str) -> PlateCheck:
    plate = normalise_plate(text)
    for kind, pattern in _RULES:
        if pattern.match(plate):
            return PlateCheck(plate, True, kind, None)
    return PlateCheck(plate, False, None, _reason(plate))


def _reason(plate: str) -> str:
    if not plate:
        return "车牌号为空"
    if plate[0] not in PROVINCES and plate[0] != "使":
        return f"第一位“{plate[0]}”不是省份简称"
    if len(plate) not in (7, 8):
        return f"车牌应为7位（新能源8位），这里是{len(plate)}位"
    if len(plate) > 1 and not re.match(f"[{_LETTER}]", plate[1]):
        return "第二位应为发牌机关字母（不用 I 和 O）"
    if "I" in plate[2:] or "O" in plate[2:]:
        return "车牌不使用字母 I 和 O（应为数字 1 和 0）"
    if len(plate) == 8:
        return "8位新能源车牌第三位应为 D 或 F（小型车），或最后一位为 D 或 F（大型车）"
    return "车牌号格式不对"
