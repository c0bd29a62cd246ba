"""A report's photo as it is kept: decoded safely (``vision.images``), shrunk, re-encoded as
a JPEG built from the pixels alone (so no EXIF, GPS or maker notes survive) and sealed with
the data key, bound to its report."""

from __future__ import annotations

import io

from cryptography.exceptions import InvalidTag
from PIL import Image

from fengchao.auth.crypto import get_cipher
from fengchao.vision.images import ImageLimits, decode_image, fit_within

# A phone photo is a few MB; the page says so and the app's body limit for the form
# (``app.body_limit``) leaves room for the form's other fields.
PHOTO_MAX_BYTES = 8 * 1024 * 1024
KEPT_SIDE = 1280
LIMITS = ImageLimits(max_bytes=PHOTO_MAX_BYTES, max_pixels=40_000_000, min_side=32)


def prepare(data: bytes) -> bytes:
    """JPEG bytes of the photo, oriented, at most :data:`KEPT_SIDE` on its longest side,
    with no metadata. Raises ``vision.images.ImageError`` (code and message for the user)."""
    pixels = fit_within(decode_image(data, LIMITS), KEPT_SIDE)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=82, optimize=True)
    return out.getvalue()


def _context(token_hash: str) -> bytes:
    return b"gridwork_report_photo:" + token_hash.encode()


def seal(jpeg: bytes, token_hash: str) -> bytes:
    return get_cipher().encrypt_bytes(jpeg, context=_context(token_hash))


def unseal(sealed: bytes, token_hash: str) -> bytes | None:
    """The JPEG, or None when it cannot be opened (the data key changed)."""
    try:
        return get_cipher().decrypt_bytes(sealed, context=_context(token_hash))
    except (InvalidTag, ValueError):
        return None
