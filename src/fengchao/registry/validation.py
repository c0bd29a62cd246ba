"""Checks of the values community sheets hold: ID numbers, phones, dates, addresses.

Pure functions with no database: each returns the normalised value or raises
:class:`FieldError` with a message a community worker can act on.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from fengchao.registry.models import (
    CareTag,
    Gender,
    HealthStatus,
    Relation,
    ResidenceStatus,
)
from fengchao.web.i18n import _


class FieldError(ValueError):
    """A value that cannot be accepted; ``message`` says why and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# GB 11643-1999: weights of the first 17 digits and the check character for sum mod 11.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# First two digits: provinces (GB/T 2260), plus 71/81/82 (Taiwan, Hong Kong, Macao) and 83
# (residence permits of Taiwan residents).
_ID_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)
_SCIENTIFIC = re.compile(r"^\d(\.\d+)?[eE]\+?\d+$")


@dataclass(frozen=True)
class IdNumber:
    """A checked 18-digit resident ID number (居民身份证号码)."""

    number: str
    birth_date: dt.date
    gender: Gender

    @property
    def masked(self) -> str:
        return mask_id_number(self.number)


def mask_id_number(number: str) -> str:
    """Show the region's first three and the last four characters only."""
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def id_check_char(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def _clean_text(value: object) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip()


def clip(text: object, limit: int = 40) -> str:
    """User text as an error message echoes it: short, so that a 30,000-character cell
    repeated on every row cannot make the error list huge."""
    shown = str(text)
    return shown if len(shown) <= limit else shown[:limit] + "…"


def parse_id_number(value: object, *, today: dt.date | None = None) -> IdNumber:
    """Check an ID number by GB 11643-1999 (region, birth date, check character).

    Numbers that Excel turned into floats have already lost their last digits; they are
    refused with how to fix the sheet, never guessed.
    """
    if isinstance(value, bool):
        raise FieldError(_("身份证号格式不对"))
    if isinstance(value, int | float):
        shown = f"{value:.14E}" if isinstance(value, float) else str(value)
        raise FieldError(
            _(
                "身份证号被 Excel 存成了数字（{shown}），后几位已经丢失，无法还原。"
                "请把该列设置为“文本”格式，再按证件重新填写这个号码"
            ).format(shown=shown)
        )
    text = re.sub(r"[\s\u3000-]", "", _clean_text(value)).upper()
    if not text:
        raise FieldError(_("身份证号为空"))
    if _SCIENTIFIC.match(text):
        raise FieldError(
            _(
                "身份证号被 Excel 存成了数字（{shown}），后几位已经丢失，无法还原。"
                "请把该列设置为“文本”格式，再按证件重新填写这个号码"
            ).format(shown=clip(text))
        )
    if len(text) == 15 and text.isdigit():
        upgraded = text[:6] + "19" + text[6:]
        upgraded += id_check_char(upgraded)
        raise FieldError(
            _("这是15位的旧身份证号，请改填18位号码（按国标换算应为 {new}，请与证件核对）").format(
                new=upgraded
            )
        )
    if len(text) != 18:
        raise FieldError(_("身份证号应为18位，这里是{n}位").format(n=len(text)))
    if not (text[:17].isdigit() and (text[17].isdigit() or text[17] == "X")):
        raise FieldError(_("身份证号只能是数字，最后一位可以是 X"))
    if int(text[:2]) not in _ID_PROVINCES:
        raise FieldError(_("身份证号前两位 {code} 不是有效的省级地区码").format(code=text[:2]))
    try:
        birth = dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise FieldError(_("身份证号中的出生日期 {d} 不是有效日期").format(d=text[6:14])) from None
    today = today or dt.date.today()
    if birth > today or birth.year < 1890:
        raise FieldError(_("身份证号中的出生日期 {d} 不合理").format(d=birth.isoformat()))
    expected = id_check_char(text[:17])
    if text[17] != expected:
        hint = ""
        if text.endswith("00"):
            hint = _("；末尾是 0，可能是 Excel 按数字保存时截断了，请把该列设为文本后重新填写")
        raise FieldError(
            _("身份证号校验位不对：按前17位应为 {expected}，实际为 {actual}，请与证件核对").format(
                expected=expected, actual=text[17]
            )
            + hint
        )
    gender = Gender.male if int(text[16]) % 2 == 1 else Gender.female
    return IdNumber(text, birth, gender)


_PHONE = re.compile(r"^1[3-9]\d{9}$")


def parse_mobile(value: object) -> str:
    """A mainland mobile number as 11 digits; spaces, dashes and +86 are removed."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = re.sub(r"[\s\u3000\-()（）]", "", _clean_text(value))
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    elif text.startswith("86") and len(text) == 13:
        text = text[2:]
    if not text.isdigit():
        raise FieldError(_("手机号只能包含数字"))
    if len(text) != 11:
        raise FieldError(_("手机号应为11位，这里是{n}位").format(n=len(text)))
    if not _PHONE.match(text):
        raise FieldError(_("手机号应以 13–19 开头"))
    return text


_GENDERS = {"男": Gender.male, "女": Gender.female, "M": Gender.male, "F": Gender.female}
_GENDERS |= {"MALE": Gender.male, "FEMALE": Gender.female}


def parse_gender(value: object) -> Gender:
    text = _clean_text(value).upper()
    if text in _GENDERS:
        return _GENDERS[text]
    raise FieldError(_("性别应填“男”或“女”"))


_OWNER_WORDS = ("户主", "业主", "本人", "房主", "产权人")
_TENANT_WORDS = ("租户", "租客", "承租", "租住")
_FAMILY_WORDS = (
    "配偶", "妻", "夫", "子", "女", "儿", "父", "母", "孙", "兄", "弟", "姐", "妹",
    "岳", "公公", "婆婆", "媳", "婿", "家属", "亲属", "外甥", "侄", "祖",
)  # fmt: skip


def parse_relation(value: object) -> Relation:
    """Sheets write the relation many ways; anything unknown is kept as 'other'."""
    text = _clean_text(value)
    if not text:
        return Relation.other
    if any(w in text for w in _OWNER_WORDS):
        return Relation.owner
    if any(w in text for w in _TENANT_WORDS):
        return Relation.tenant
    if any(w in text for w in _FAMILY_WORDS):
        return Relation.family
    return Relation.other


_RESIDENCE = {
    ResidenceStatus.living: ("在住", "常住", "居住", "现住", "是"),
    ResidenceStatus.away: ("外出", "暂离", "不在", "临时", "出差"),
    ResidenceStatus.moved_out: ("迁出", "搬离", "搬走", "已搬", "否"),
}


def parse_residence(value: object) -> ResidenceStatus:
    text = _clean_text(value)
    if not text:
        return ResidenceStatus.living
    for status, words in _RESIDENCE.items():
        if any(w in text for w in words):
            return status
    raise FieldError(_("居住状态应为“在住”“外出”或“迁出”"))


_HEALTH = {
    HealthStatus.home_isolation: ("居家隔离", "居家"),
    HealthStatus.central_isolation: ("集中隔离", "集中"),
    HealthStatus.recovered: ("康复", "转阴", "治愈"),
    HealthStatus.positive: ("阳性", "确诊"),
    HealthStatus.normal: ("正常", "健康", "无", "阴性"),
}


def parse_health(value: object) -> HealthStatus:
    text = _clean_text(value)
    if not text:
        return HealthStatus.normal
    for status, words in _HEALTH.items():
        if any(w in text for w in words):
            return status
    raise FieldError(_("健康状态应为“正常”“居家隔离”“集中隔离”“阳性”或“康复”"))


_CARE = {
    "独居": CareTag.elderly_alone,
    "空巢": CareTag.elderly_alone,
    "残": CareTag.disabled,
    "孕": CareTag.pregnant,
    "慢": CareTag.chronic_illness,
    "基础病": CareTag.chronic_illness,
}


def parse_care_tags(value: object) -> list[str]:
    text = _clean_text(value)
    tags: list[str] = []
    for part in re.split(r"[,，、;；/\s]+", text):
        if not part or part in ("无", "-"):
            continue
        tag = next((t for key, t in _CARE.items() if key in part), None)
        if tag is None:
            raise FieldError(
                _("不认识的关怀标签“{tag}”（可填：独居老人、残疾、孕妇、慢性病）").format(
                    tag=clip(part)
                )
            )
        if tag.value not in tags:
            tags.append(tag.value)
    return tags


_EXCEL_EPOCH = dt.date(1899, 12, 30)


def parse_date(value: object) -> dt.date:
    """Dates as Excel keeps them: real dates, serial numbers, or text in common forms."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 1 <= value < 80000:
            return _EXCEL_EPOCH + dt.timedelta(days=int(value))
        raise FieldError(_("日期数字 {v} 超出范围").format(v=value))
    text = _clean_text(value)
    match = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", text) or re.fullmatch(
        r"(\d{4})(\d{2})(\d{2})", text
    )
    if match:
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            pass
    raise FieldError(_("日期“{v}”看不懂，请写成 1980-01-31").format(v=clip(text)))


def clean_cell_text(value: object) -> str:
    """A cell as text: Excel's 5.0 becomes "5"; full-width characters become half-width."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _clean_text(value) if value is not None else ""


def grid_part(value: object, suffixes: tuple[str, ...]) -> str:
    """One part of an address with its decorations removed: 5号楼 → 5, 2单元 → 2, 1302室 → 1302."""
    text = clean_cell_text(value).replace(" ", "")
    for suffix in suffixes:
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    if text.startswith("第") and len(text) > 1:
        text = text[1:]
    return text


MAX_ADDRESS_CHARS = 100
BUILDING_SUFFIXES = ("号楼", "栋", "幢", "号", "楼", "座")
UNIT_SUFFIXES = ("单元", "单")
ROOM_SUFFIXES = ("室", "号", "房")

# "5-2-1302", "5-2-1302室", "华润中央公园5-2-1302" (a compound may lead either form).
_ADDRESS_SHORT = re.compile(
    r"^(?P<c>\D*?)(?P<b>[0-9A-Za-z]+)[-—–](?P<u>[0-9A-Za-z]+)[-—–](?P<r>[0-9A-Za-z]+)[室号]?$"
)
_ADDRESS_LONG = re.compile(
    r"^(?P<c>.*?)(?P<b>[0-9A-Za-z]+)(号楼|栋|幢|号|座)(?P<u>[0-9A-Za-z]+)单元?(?P<r>[0-9A-Za-z]+)[室号]?$"
)


@dataclass(frozen=True)
class Address:
    """Where a household is: compound (may be empty when the sheet omits it), building,
    unit, room."""

    compound: str
    building: str
    unit: str
    room: str

    @property
    def short(self) -> str:
        return f"{self.building}-{self.unit}-{self.room}"


def parse_address(text: object) -> Address:
    """ "5-2-1302", "5-2-1302室", "5栋2单元1302" or "华润中央公园5栋2单元1302室"; the
    compound, when given, is kept as written (callers match it against the grid).
    Shared by the importer's address column and the search box."""
    clean = clean_cell_text(text).replace(" ", "")
    if len(clean) > MAX_ADDRESS_CHARS:
        # Also keeps the long-form pattern, which backtracks, away from long text.
        raise FieldError(
            _("地址太长（{n} 个字），请写成 5-2-1302 或 5栋2单元1302").format(n=len(clean))
        )
    match = _ADDRESS_SHORT.match(clean) or _ADDRESS_LONG.match(clean)
    if not match:
        raise FieldError(
            _("地址“{v}”看不懂，请写成 5-2-1302 或 5栋2单元1302").format(v=clip(clean))
        )
    parts = match.groupdict()
    return Address(parts.get("c") or "", parts["b"], parts["u"], parts["r"])
