"""Every image the platform accepts is decoded safely, or refused with a reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fengchao.vision.images import ImageError, ImageLimits, as_rgb, decode_image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)
    pixels[:, :, 1] = 100
    return Image.fromarray(pixels)


def refused(data: bytes, limits: ImageLimits = ImageLimits()) -> str:
    with pytest.raises(ImageError) as caught:
        decode_image(data, limits)
    assert caught.value.message
    return caught.value.code


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_decode_to_rgb_uint8(fmt: str) -> None:
    pixels = decode_image(encode(gradient(), fmt))
    assert pixels.shape == (48, 64, 3)
    assert pixels.dtype == np.uint8
    # Red rises left to right; green stays: channels are in RGB order.
    assert pixels[24, 60, 0] > 200 > pixels[24, 2, 0]
    assert abs(int(pixels[24, 30, 1]) - 100) < 8


def test_not_an_image() -> None:
    assert refused(b"name,phone\n\xe5\xbc\xa0\xe4\xb8\x89,138\n") == "not_an_image"


def test_empty_file() -> None:
    assert refused(b"") == "empty"


def test_truncated_jpeg() -> None:
    data = encode(gradient(400, 300), "JPEG")
    assert refused(data[: len(data) // 2]) == "truncated"


def test_one_pixel_image() -> None:
    assert refused(encode(Image.new("RGB", (1, 1)), "PNG")) == "too_small"


def test_png_header_claiming_30000_by_30000_is_refused_before_decoding() -> None:
    # A PNG whose header claims 30000×30000 followed by a small compressed stream of
    # zeros: decoded, it would take 2.7 GB.
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1_000_000, 9)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
    assert len(data) < 10_000
    assert refused(data) == "too_many_pixels"


def test_file_over_the_byte_limit() -> None:
    assert refused(encode(gradient(), "PNG"), ImageLimits(max_bytes=100)) == "too_large"


def test_other_formats_are_refused_by_name() -> None:
    with pytest.raises(ImageError) as caught:
        decode_image(encode(gradient(), "BMP"))
    assert caught.value.code == "unsupported_format"
    assert "BMP" in caught.value.message


def test_cmyk_jpeg_becomes_rgb() -> None:
    pixels = decode_image(encode(gradient().convert("CMYK"), "JPEG"))
    assert pixels.shape == (48, 64, 3)
    assert pixels[24, 60, 0] > 200


def test_sixteen_bit_png_keeps_its_tones() -> None:
    wide = (np.tile(np.linspace(0, 65535, 64), (48, 1))).astype(np.uint16)
    pixels = decode_image(encode(Image.fromarray(wide), "PNG"))
    assert pixels.dtype == np.uint8
    # Mid-grey stays mid-grey: a 16-bit image is scaled, not clipped to white.
    assert 100 < pixels[24, 32, 0] < 160
    assert pixels[24, 0, 0] < 10 and pixels[24, 63, 0] > 245


def test_grayscale_becomes_three_channels() -> None:
    pixels = decode_image(encode(gradient().convert("L"), "PNG"))
    assert pixels.shape == (48, 64, 3)
    assert (pixels[:, :, 0] == pixels[:, :, 2]).all()


def test_transparent_png_is_put_on_white() -> None:
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    assert decode_image(encode(image, "PNG"))[20, 20].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied() -> None:
    # A phone photo stored landscape with "rotate 90°" in EXIF is shown portrait.
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels = decode_image(encode(gradient(64, 48), "JPEG", exif=exif))
    assert pixels.shape == (64, 48, 3)


def test_large_images_are_shrunk_to_the_working_size() -> None:
    pixels = decode_image(encode(gradient(3000, 1000), "PNG"), ImageLimits(working_side=1500))
    assert pixels.shape == (500, 1500, 3)


def test_frames_from_a_camera_are_checked() -> None:
    assert as_rgb(np.zeros((10, 10), dtype=np.uint8)).shape == (10, 10, 3)
    with pytest.raises(ImageError, match="uint8"):
        as_rgb(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ImageError):
        as_rgb(np.zeros((10, 10, 4), dtype=np.uint8))
