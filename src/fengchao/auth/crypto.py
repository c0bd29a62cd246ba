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

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()


@lru_cache(maxsize=1)
def get_cipher() -> DataCipher:
    return DataCipher(get_settings().security.data_key_bytes())
