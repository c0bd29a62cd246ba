"""Encryption at rest and keyed hashes for sensitive identifiers (ID numbers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fengchao.settings import get_settings

_VERSION = "v1"
_BYTES_MAGIC = b"FCv1"


def derive_key(
    data_key: bytes, info: bytes, *, salt: bytes | None = None, length: int = 32
) -> bytes:
    """A key for one purpose (``info``) derived from the data key with HKDF-SHA256, so that
    each use (values at rest, lookup hashes, backups) has its own key and one setting rules all."""
    return HKDF(algorithm=SHA256(), length=length, salt=salt, info=info).derive(data_key)


class DataCipher:
    """AES-GCM for values at rest and HMAC-SHA256 for exact-match lookups.

    Both keys are derived from one data key so that rotating it is one setting.
    Ciphertext is ``v1:`` + base64(nonce ‖ ciphertext ‖ tag).
    """

    def __init__(self, data_key: bytes) -> None:
        def derive(info: bytes) -> bytes:
            return HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(data_key)

        self._aead = AESGCM(derive(b"fengchao/encrypt"))
        self._hash_key = derive(b"fengchao/lookup-hash")

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return f"{_VERSION}:" + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, token: str) -> str:
        version, _, body = token.partition(":")
        if version != _VERSION:
            raise ValueError(f"unknown ciphertext version {version!r}")
        raw = base64.b64decode(body)
        return self._aead.decrypt(raw[:12], raw[12:], None).decode()

    def encrypt_bytes(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        """Seal a whole file (e.g. an uploaded sheet); ``context`` binds it to its owner
        (a row's token), so a sealed blob copied to another row does not open there."""
        nonce = os.urandom(12)
        return _BYTES_MAGIC + nonce + self._aead.encrypt(nonce, plaintext, context)

    def decrypt_bytes(self, sealed: bytes, *, context: bytes = b"") -> bytes:
        """The plaintext of :meth:`encrypt_bytes`; ``InvalidTag`` or ``ValueError`` when it
        was not sealed by this key for this context."""
        if not sealed.startswith(_BYTES_MAGIC):
            raise ValueError("not a sealed blob")
        body = sealed[len(_BYTES_MAGIC) :]
        return self._aead.decrypt(body[:12], body[12:], context)

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()


@lru_cache(maxsize=1)
def get_cipher() -> DataCipher:
    return DataCipher(get_settings().security.data_key_bytes())
