"""Safe image decoding: bytes from an upload or a camera → 8-bit RGB pixels.

Every image the platform accepts passes through :func:`decode_image`, which refuses
what would hurt the process (decompression bombs, huge files) before decoding pixels,
applies the EXIF orientation a phone camera sets, and gives back the one pixel format
the models take: a ``uint8`` array of shape (height, width, 3) in RGB order.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

RGBImage = npt.NDArray[np.uint8]
"""Pixels as (height, width, 3) uint8 in RGB order."""

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})


class ImageError(ValueError):
    """An image the platform refuses; ``code`` is stable, ``message`` is for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageLimits:
    """What an accepted image may be. Defaults suit phone photos and gate cameras."""

    max_bytes: int = 15 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 16
    # Larger images are shrunk to this longest side after decoding: the detectors do
    # not gain from more pixels and their time grows with the area.
    working_side: int = 1920


def decode_image(data: bytes, limits: ImageLimits = ImageLimits()) -> RGBImage:
    """Decode JPEG, PNG or WebP bytes to RGB pixels, oriented and within ``limits``.

    Raises :class:`ImageError` with code ``empty``, ``too_large``, ``not_an_image``,
    ``unsupported_format``, ``too_many_pixels``, ``too_small`` or ``truncated``.
    """
    if not data:
        raise ImageError("empty", "文件是空的")
    if len(data) > limits.max_bytes:
        raise ImageError(
            "too_large",
            f"图片太大（{len(data) / 1048576:.1f} MB），最大 {limits.max_bytes / 1048576:.0f} MB",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Opening reads only the header, so the size is known before any pixel is decoded.
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageError("too_many_pixels", "图片像素太多") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ImageError("not_an_image", "不是图片文件（支持 JPEG、PNG、WebP）") from None
    if image.format not in ACCEPTED_FORMATS:
        raise ImageError(
            "unsupported_format", f"不支持 {image.format} 格式，请用 JPEG、PNG 或 WebP"
        )
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageError(
            "too_many_pixels",
            f"图片像素太多（{width}×{height}），最多 {limits.max_pixels // 1_000_000} 百万像素",
        )
    if min(width, height) < limits.min_side:
        raise ImageError(
            "too_small", f"图片太小（{width}×{height}），至少 {limits.min_side} 像素见方"
        )
    try:
        image.load()
        # In place: without it Pillow copies every frame, even one with no orientation set.
        ImageOps.exif_transpose(image, in_place=True)
    except (OSError, SyntaxError, ValueError):
        raise ImageError("truncated", "图片文件不完整或已损坏") from None
    return fit_within(to_rgb(image), limits.working_side)


def to_rgb(image: Image.Image) -> RGBImage:
    """Any Pillow mode (CMYK, 16-bit, grayscale, palette, alpha) → 8-bit RGB pixels."""
    if image.mode in {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}:
        wide = np.asarray(image, dtype=np.float64)
        # 16-bit scans use 0..65535; scale by the real range, not by 255, or they go white.
        peak = 65535.0 if wide.max(initial=0) > 255 else 255.0
        gray = np.clip(wide * (255.0 / peak), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    # convert() copies even an image already in RGB (a camera's JPEG): only when needed.
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def fit_within(pixels: RGBImage, max_side: int) -> RGBImage:
    """Shrink (never enlarge) so that the longest side is at most ``max_side``."""
    height, width = pixels.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return pixels
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    shrunk = Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.ascontiguousarray(np.asarray(shrunk, dtype=np.uint8))


def as_rgb(pixels: npt.NDArray[np.generic]) -> RGBImage:
    """Check a frame handed over as an array (from a camera) and make it contiguous RGB uint8.

    Raises :class:`ImageError` (``bad_frame``) for the wrong shape or type.
    """
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageError("bad_frame", f"画面应为 高×宽×3 的 RGB 像素，这里是 {pixels.shape}")
    if pixels.dtype != np.uint8:
        raise ImageError("bad_frame", f"画面像素应为 8 位（uint8），这里是 {pixels.dtype}")
    return np.ascontiguousarray(pixels)
