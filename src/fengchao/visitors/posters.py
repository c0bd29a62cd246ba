"""A gate's visitor poster (访客扫码登记): an A4 page in Chinese with the QR of the form's
address and two lines of instructions, drawn with Pillow at 300 dpi and written as PNG or
as a one-page PDF (Pillow's PDF writer: no extra dependency). The font is Noto Sans CJK
from Debian's ``fonts-noto-cjk`` (any other CJK font may be named by path)."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

DPI = 300
A4 = (2480, 3508)  # 210 × 297 mm at 300 dpi
FONT_DIRS = (Path("/usr/share/fonts/opentype/noto"), Path("/usr/share/fonts/truetype/noto"))
FONT_FILES = ("NotoSansCJK-Bold.ttc", "NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf")


class FontMissing(RuntimeError):
    """No Chinese font was found (install fonts-noto-cjk)."""


@lru_cache(maxsize=8)
def _font_path() -> tuple[str, int]:
    for folder in FONT_DIRS:
        for name in FONT_FILES:
            path = folder / name
            if not path.exists():
                continue
            # A .ttc holds the JP, KR, SC, TC and HK faces: take the Simplified Chinese one.
            for index in range(10):
                try:
                    family = ImageFont.truetype(str(path), 20, index=index).getname()[0] or ""
                except OSError:
                    break
                if family.endswith(" SC"):
                    return str(path), index
            return str(path), 0
    raise FontMissing("no Chinese font: install fonts-noto-cjk")


def _font(size: int) -> ImageFont.FreeTypeFont:
    path, index = _font_path()
    return ImageFont.truetype(path, size, index=index)


def _centred(draw: ImageDraw.ImageDraw, y: int, text: str, size: int, fill: str = "#111") -> int:
    font = _font(size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((A4[0] - (right - left)) // 2, y), text, font=font, fill=fill)
    return y + int(bottom - top)


def draw(*, url: str, compound: str, gate: str) -> Image.Image:
    """The poster as an image (A4 at 300 dpi)."""
    page = Image.new("RGB", A4, "white")
    pen = ImageDraw.Draw(page)
    pen.rectangle((0, 0, A4[0], 420), fill="#b3261e")
    _centred(pen, 110, "访客扫码登记", 170, fill="white")
    y = _centred(pen, 560, f"{compound} · {gate}", 96)
    qr = segno.make(url, error="m")
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=1, border=2)
    buffer.seek(0)
    code = Image.open(buffer).convert("RGB")
    side = 1500
    code = code.resize((side, side), Image.Resampling.NEAREST)
    top = y + 180
    page.paste(code, ((A4[0] - side) // 2, top))
    y = top + side + 140
    y = _centred(pen, y, "① 用手机相机扫描上方二维码，填写访客登记表", 78) + 70
    y = _centred(pen, y, "② 出示手机上的通行证，配合测温后进入", 78) + 150
    _centred(pen, y, "体温 ≥ 37.3 °C 或有发热、咳嗽等症状者请勿进入，联系物业", 54, fill="#555")
    _centred(pen, A4[1] - 200, "蜂巢社区防控平台", 48, fill="#888")
    return page


def png(*, url: str, compound: str, gate: str) -> bytes:
    out = io.BytesIO()
    draw(url=url, compound=compound, gate=gate).save(out, format="PNG", dpi=(DPI, DPI))
    return out.getvalue()


def pdf(*, url: str, compound: str, gate: str) -> bytes:
    out = io.BytesIO()
    draw(url=url, compound=compound, gate=gate).save(
        out, format="PDF", resolution=DPI, title=f"{compound} {gate} 访客扫码登记"
    )
    return out.getvalue()
