"""A fake camera for Chromium: frames written as a Y4M video with numpy (Chromium plays it
in a loop with --use-file-for-fake-video-capture)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import segno
from PIL import Image

WIDTH, HEIGHT = 640, 480


def write_y4m(path: Path, frames: Iterable[np.ndarray], fps: int = 10) -> Path:
    """RGB frames of WIDTH×HEIGHT as 4:2:0 Y4M (BT.601, full range)."""
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            rgb = frame.astype(np.float32)
            r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
            y = 0.299 * r + 0.587 * g + 0.114 * b
            u = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
            v = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
            u = u.reshape(HEIGHT // 2, 2, WIDTH // 2, 2).mean(axis=(1, 3))
            v = v.reshape(HEIGHT // 2, 2, WIDTH // 2, 2).mean(axis=(1, 3))
            out.write(b"FRAME\n")
            for plane in (y, u, v):
                out.write(np.clip(plane, 0, 255).round().astype(np.uint8).tobytes())
    return path


def blank(level: int = 70) -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), level, dtype=np.uint8)


def with_qr(text: str, level: int = 70) -> np.ndarray:
    """A frame with the QR of ``text`` held up in the middle."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=8, border=4)
    symbol = np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))
    frame = blank(level)
    h, w = symbol.shape[:2]
    top, left = (HEIGHT - h) // 2, (WIDTH - w) // 2
    frame[top : top + h, left : left + w] = symbol
    return frame


def photo(path: Path, size: int | None = None) -> np.ndarray:
    """A face photo fitted into the frame (letterboxed on grey); ``size`` scales a small
    face crop up to that many pixels square first."""
    image = Image.open(path).convert("RGB")
    if size is not None:
        image = image.resize((size, size))
    image.thumbnail((WIDTH, HEIGHT))
    frame = blank(60)
    pixels = np.asarray(image)
    h, w = pixels.shape[:2]
    top, left = (HEIGHT - h) // 2, (WIDTH - w) // 2
    frame[top : top + h, left : left + w] = pixels
    return frame


def camera_args(video: Path) -> list[str]:
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        "--autoplay-policy=no-user-gesture-required",
    ]


def square(path: Path, size: int = 360) -> bytes:
    """A small face crop scaled up and encoded as an enrolment photo."""
    out = io.BytesIO()
    Image.open(path).convert("RGB").resize((size, size)).save(out, "JPEG", quality=92)
    return out.getvalue()
