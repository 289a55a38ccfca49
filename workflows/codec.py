"""Payload encryption: AES-256-GCM over every payload when a key is configured, with a keyring so
keys rotate without a restart of history: new payloads use the current key, old ones still open."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12


class EncryptionCodec(PayloadCodec):
    """Encrypts whole serialized payloads with the current key; the key id travels in metadata,
    and decryption picks the key by that id from the keyring."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"the current encryption key id {current!r} is not in the keyring")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"encryption key {key_id!r} must be 32 bytes (AES-256)")
        self._aeads = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = current
        self._current_id = current.encode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[self._current].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: self._current_id},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        aead = self._aeads.get(key_id)
        if aead is None:
            raise ValueError(
                f"payload was encrypted with key id {key_id[:64]!r}, which is not in the keyring "
                "(STEPGATE_ENCRYPTION_KEYS)"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        return Payload.FromString(aead.decrypt(nonce, sealed, None))
