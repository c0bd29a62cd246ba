"""The checks a community sheet's values go through."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from fengchao.registry.models import Gender, HealthStatus, Relation, ResidenceStatus
from fengchao.registry.validation import (
    FieldError,
    id_check_char,
    mask_id_number,
    parse_address,
    parse_care_tags,
    parse_date,
    parse_gender,
    parse_health,
    parse_id_number,
    parse_mobile,
    parse_relation,
    parse_residence,
)


def test_valid_id_number_gives_birth_date_and_gender() -> None:
    parsed = parse_id_number("11010519491231002X")
    assert parsed.number == "11010519491231002X"
    assert parsed.birth_date == dt.date(1949, 12, 31)
    assert parsed.gender == Gender.female
    assert parsed.masked == "110***********002X"


def test_lower_case_x_and_spaces_are_normalised() -> None:
    assert parse_id_number(" 1101 0519 4912 31002x ").number == "11010519491231002X"


def test_check_character_follows_gb11643() -> None:
    assert id_check_char("11010519491231002") == "X"
    assert id_check_char("35018119731022560") == "7"


def test_bad_checksum_names_the_expected_character() -> None:
    with pytest.raises(FieldError) as err:
        parse_id_number("350181197910117800")
    assert "校验位" in err.value.message and "应为 2" in err.value.message


def test_id_that_excel_stored_as_a_number_is_refused_without_guessing() -> None:
    with pytest.raises(FieldError) as err:
        parse_id_number(3.50181201105152e17)
    message = err.value.message
    assert "文本" in message and "丢失" in message
    assert not re.search(r"\d{17}[\dX]", message)  # never a guessed full number


def test_scientific_notation_text_is_recognised_as_an_excel_number() -> None:
    with pytest.raises(FieldError) as err:
        parse_id_number("3.50181E+17")
    assert "Excel" in err.value.message


def test_fifteen_digit_old_id_is_refused_with_its_18_digit_form() -> None:
    with pytest.raises(FieldError) as err:
        parse_id_number("110105491231002")
    assert "15位" in err.value.message
    assert "11010519491231002X" in err.value.message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "为空"),
        ("12345", "18位"),
        ("11010519491231A02X", "数字"),
        ("99010519491231002X", "地区码"),
        ("110105194913310021", "出生日期"),
        ("110105213001010021", "不合理"),
    ],
)
def test_malformed_ids_say_what_is_wrong(value: str, fragment: str) -> None:
    with pytest.raises(FieldError) as err:
        parse_id_number(value)
    assert fragment in err.value.message


def test_mask_keeps_region_and_last_four() -> None:
    assert mask_id_number("350181197310225607") == "350***********5607"


@pytest.mark.parametrize(
    "raw",
    [
        "13757527960",
        "137 5752 7960",
        "+86 137-5752-7960",
        "008613757527960",
        "8613757527960",
        13757527960,
        13757527960.0,
        "１３７５７５２７９６０",
    ],
)
def test_mobile_numbers_in_common_forms(raw: object) -> None:
    assert parse_mobile(raw) == "13757527960"


@pytest.mark.parametrize(
    ("raw", "fragment"), [("1385901", "11位"), ("23757527960", "开头"), ("1375752796a", "数字")]
)
def test_bad_mobile_numbers(raw: str, fragment: str) -> None:
    with pytest.raises(FieldError) as err:
        parse_mobile(raw)
    assert fragment in err.value.message


def test_dates_as_excel_keeps_them() -> None:
    assert parse_date(29150) == dt.date(1979, 10, 22)  # a serial number
    assert parse_date(dt.datetime(1979, 10, 22, 0, 0)) == dt.date(1979, 10, 22)
    assert parse_date("1979年10月22日") == dt.date(1979, 10, 22)
    assert parse_date("19791022") == dt.date(1979, 10, 22)
    with pytest.raises(FieldError):
        parse_date("昨天")


def test_addresses_short_and_long() -> None:
    assert parse_address("5-2-1302").short == "5-2-1302"
    long = parse_address("华润中央公园5栋2单元1302室")
    assert (long.compound, long.short) == ("华润中央公园", "5-2-1302")
    with pytest.raises(FieldError):
        parse_address("五栋")


def test_words_for_relation_status_health_and_care() -> None:
    assert parse_relation("户主") == Relation.owner
    assert parse_relation("子女") == Relation.family
    assert parse_relation("租客") == Relation.tenant
    assert parse_relation("保姆") == Relation.other
    assert parse_gender("女") == Gender.female
    assert parse_residence("已迁出") == ResidenceStatus.moved_out
    assert parse_health("居家隔离") == HealthStatus.home_isolation
    assert parse_care_tags("独居老人、慢性病") == ["elderly_alone", "chronic_illness"]
    with pytest.raises(FieldError):
        parse_care_tags("富豪")
    with pytest.raises(FieldError):
        parse_gender("未知")
