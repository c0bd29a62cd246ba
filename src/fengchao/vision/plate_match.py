"""Matching a plate read to the registered vehicles of a community (车辆比对).

Pure: takes plate strings and a :class:`~fengchao.vision.plates.PlateRead`, returns a
:class:`PlateMatch`. Order of trust: the exact plate; the same plate with the local
province when the recogniser was unsure of the province character; a tolerant match over
the characters the recogniser is known to confuse, only for a valid, confident read
whose tolerant form points at exactly one vehicle. Anything else is refused with the
read text, for the guard to decide by hand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from fengchao.vision.plate_rules import check_plate, normalise_plate
from fengchao.vision.plates import PlateRead

# Characters the recogniser mixes up; within a group they count as the same.
CONFUSIONS = ("0DQU", "1LI", "8B", "2Z", "5S")
_CANONICAL = {ch: group[0] for group in CONFUSIONS for ch in group}

MatchKind = Literal["exact", "local_province", "tolerant"]


@dataclass(frozen=True)
class PlateMatch:
    """The outcome for one read: the registered plate matched, or why none was.

    ``how`` says how sure the match is (``tolerant`` must be shown as such to the
    guard); ``refusal`` is a stable code and ``message`` is for the guard, always with
    the text that was read.
    """

    read: str
    plate: str | None
    how: MatchKind | None
    refusal: str | None
    message: str

    @property
    def matched(self) -> bool:
        return self.plate is not None


def _tolerant_key(plate: str) -> str:
    return plate[:1] + "".join(_CANONICAL.get(ch, ch) for ch in plate[1:])


class PlateIndex:
    """The registered plates of one community, indexed for exact and tolerant lookup."""

    def __init__(
        self,
        plates: Iterable[str],
        *,
        local_province: str = "闽",
        province_unsure_below: float = 0.9,
        tolerant_min_confidence: float = 0.85,
    ) -> None:
        self.local_province = local_province
        self.province_unsure_below = province_unsure_below
        self.tolerant_min_confidence = tolerant_min_confidence
        self._exact = {normalise_plate(p) for p in plates if p}
        self._tolerant: dict[str, set[str]] = defaultdict(set)
        for plate in self._exact:
            self._tolerant[_tolerant_key(plate)].add(plate)

    def __len__(self) -> int:
        return len(self._exact)

    def match(self, read: PlateRead) -> PlateMatch:
        text = normalise_plate(read.text)
        if not text:
            return PlateMatch(text, None, None, "no_read", "未读出车牌，请人工核对")
        if not self._exact:
            return PlateMatch(
                text, None, None, "no_vehicles", f"识别为 {text}；本小区尚无登记车辆，请人工核对"
            )
        if text in self._exact:
            return PlateMatch(text, text, "exact", None, f"{text} 已登记")

        local = self._local_province_form(read, text)
        if local is not None and local in self._exact:
            return PlateMatch(
                text,
                local,
                "local_province",
                None,
                f"识别为 {text}，省份字不确定，按本地车牌 {local} 匹配",
            )

        check = check_plate(text)
        if not check.valid:
            return PlateMatch(
                text,
                None,
                None,
                "invalid",
                f"识别为 {text}，不是有效车牌（{check.reason}），请人工核对",
            )
        if read.confidence < self.tolerant_min_confidence:
            return PlateMatch(
                text, None, None, "unknown", f"{text} 未登记（识别把握不高），请人工核对"
            )
        candidates = set(self._tolerant.get(_tolerant_key(text), set()))
        if local is not None:
            candidates |= self._tolerant.get(_tolerant_key(local), set())
        if len(candidates) == 1:
            (plate,) = candidates
            return PlateMatch(
                text,
                plate,
                "tolerant",
                None,
                f"识别为 {text}，按易混字符容错匹配到 {plate}，请核对",
            )
        if len(candidates) > 1:
            listed = "、".join(sorted(candidates))
            return PlateMatch(
                text,
                None,
                None,
                "ambiguous",
                f"识别为 {text}，与多辆登记车辆相近（{listed}），请人工核对",
            )
        return PlateMatch(text, None, None, "unknown", f"{text} 未登记，请人工核对")

    def match_frame(self, reads: Sequence[PlateRead]) -> PlateMatch:
        """The outcome for a frame that may show several plates (a car behind, a parked
        one): the registered plate when exactly one vehicle matches, surest kind of match
        first; two different registered vehicles are refused (``several_vehicles``: the
        guard sees which one is at the barrier); with none, the refusal of the first
        (most certain) read, naming every plate read."""
        if not reads:
            return PlateMatch("", None, None, "no_read", "未读出车牌，请人工核对")
        outcomes = [self.match(read) for read in reads]
        matched = [m for m in outcomes if m.matched]
        vehicles = sorted({m.plate for m in matched if m.plate})
        if len(vehicles) > 1:
            listed = "、".join(vehicles)
            return PlateMatch(
                "、".join(m.read for m in outcomes),
                None,
                None,
                "several_vehicles",
                f"画面里有多辆登记车辆（{listed}），请人工核对哪一辆在道闸前",
            )
        if matched:
            trust: tuple[MatchKind, ...] = ("exact", "local_province", "tolerant")
            return min(matched, key=lambda m: trust.index(m.how) if m.how else len(trust))
        first = outcomes[0]
        if len(outcomes) == 1:
            return first
        others = "、".join(m.read for m in outcomes[1:] if m.read)
        extra = f"（画面里还有 {others}）" if others else ""
        return PlateMatch(first.read, None, None, first.refusal, first.message + extra)

    def _local_province_form(self, read: PlateRead, text: str) -> str | None:
        """The read with the local province, when the province character is unsure."""
        if len(text) < 2 or text[0] == self.local_province:
            return None
        province_sure = read.char_confidences[0] if read.char_confidences else 0.0
        if read.province_candidates:
            local_share = dict(read.province_candidates).get(self.local_province, 0.0)
            # The local province among the recogniser's own alternatives is a strong hint.
            if local_share >= 0.05:
                return self.local_province + text[1:]
        if province_sure < self.province_unsure_below:
            return self.local_province + text[1:]
        return None
