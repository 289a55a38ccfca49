"""Payload encryption: AES-256-GCM over every payload when a key is configured."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
NONCE_BYTES = 12


class EncryptionCodec(PayloadCodec):
    """Encrypts whole serialized payloads; the key id travels in metadata for rotation."""

    def __init__(self, key: bytes, key_id: str = "default") -> None:
        if len(key) != 32:
            raise ValueError("STEPGATE_ENCRYPTION_KEY must decode to 32 bytes (AES-256)")
        self._aead = AESGCM(key)
        self._key_id = key_id

    @classmethod
    def from_base64(cls, key_b64: str, key_id: str = "default") -> EncryptionCodec:
        try:
            key = base64.b64decode(key_b64, validate=True)
        except ValueError as err:
            raise ValueError("STEPGATE_ENCRYPTION_KEY is not valid base64") from err
        return cls(key, key_id)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, "encryption-key-id": self._key_id.encode()},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get("encryption-key-id", b"").decode()
        if key_id != self._key_id:
            raise ValueError(f"payload was encrypted with unknown key id {key_id!r}")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        return Payload.FromString(self._aead.decrypt(nonce, sealed, None))
