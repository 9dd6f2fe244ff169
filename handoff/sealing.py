"""Encryption at rest of what must not be stored in clear: AES-256-GCM, keys from the secrets chain.

A :class:`KeyringSealer` is a ``Sealer`` (``seal(bytes) -> str``, ``unseal(str) -> bytes``)
for the sensitive section of checkpoints (:class:`handoff.persistence.Checkpointer`) and
for anything else that stores a secret value (the event log). Its keys are one secret,
``HANDOFF_SEAL_KEYS``, resolved like every other (environment, a mounted Kubernetes
Secret, Vault)::

    HANDOFF_SEAL_KEYS="k2:<base64 of 32 bytes>,k1:<base64 of 32 bytes>"

The first key seals; every listed key unseals, so rotation is: put a new key first,
keep the old ones while anything sealed with them may be read (a checkpoint is
re-sealed with the new key on its next write), then drop them. A new key entry:
``python -m handoff.sealing k3``.

A token is ``hs1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>``: a random 96-bit
nonce per seal, the key id authenticated as associated data (a token cannot be
passed off as sealed by another key). Unsealing with a missing key or a tampered
token is a :class:`SealError` naming the key id, never the data.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import SecretError

KEYS_SECRET = "HANDOFF_SEAL_KEYS"
PREFIX = "hs1"
_NONCE = 12


class SealError(SecretError):
    """A token could not be sealed or unsealed (unknown key, tampered data, bad key text).

    A :class:`~handoff.errors.SecretError`: a malformed key set stops ``handoff run`` and
    ``handoff migrate`` at start-up with this one line (exit 2), naming the key, never its bytes."""


class KeyringSealer:
    """AES-256-GCM with a keyring: seals with the first key, unseals with any."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise SealError(f"{KEYS_SECRET} holds no key")
        self._keys: dict[str, AESGCM] = {}
        for key_id, key in keys:
            if not key_id or "." in key_id or "," in key_id or ":" in key_id:
                raise SealError(f"{KEYS_SECRET}: key id {key_id!r} must be a non-empty name "
                                "without '.', ',' or ':'")
            if len(key) != 32:
                raise SealError(f"{KEYS_SECRET}: key {key_id!r} is {len(key)} bytes; AES-256 "
                                "needs 32")
            if key_id in self._keys:
                raise SealError(f"{KEYS_SECRET}: key id {key_id!r} is listed twice")
            self._keys[key_id] = AESGCM(key)
        self.current = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> KeyringSealer:
        """From ``"id:base64key,id:base64key"`` (the first one seals)."""
        keys: list[tuple[str, bytes]] = []
        for n, entry in enumerate(filter(None, (e.strip() for e in text.split(","))), 1):
            key_id, sep, encoded = entry.partition(":")
            if not sep:  # the entry may be a bare key: never shown
                raise SealError(f"{KEYS_SECRET}: each entry is ID:BASE64KEY (entry {n} has no "
                                "':')")
            try:
                keys.append((key_id.strip(), base64.b64decode(encoded.strip(), validate=True)))
            except (binascii.Error, ValueError):
                raise SealError(f"{KEYS_SECRET}: key {key_id.strip()!r} is not base64") from None
        return cls(keys)

    @classmethod
    def from_secrets(cls, lookup: Callable[[str], str | None]) -> KeyringSealer | None:
        """The sealer whose keys the secrets chain holds, or None when it holds none."""
        text = lookup(KEYS_SECRET)
        return cls.parse(text) if text else None

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def seal(self, data: bytes) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._keys[self.current].encrypt(nonce, data, self._aad(self.current))
        return f"{PREFIX}.{self.current}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def unseal(self, token: str) -> bytes:
        prefix, key_id, body = [*token.split(".", 2), "", ""][:3]
        if prefix != PREFIX or not key_id or not body:
            raise SealError("not a sealed token (expected hs1.KEYID.DATA)")
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise SealError(f"sealed with key {key_id!r}, which is not in {KEYS_SECRET} "
                            f"(it has {', '.join(self._keys)})")
        try:
            raw = base64.urlsafe_b64decode(body)
            return cipher.decrypt(raw[:_NONCE], raw[_NONCE:], self._aad(key_id))
        except (binascii.Error, ValueError, InvalidTag):
            raise SealError(f"a token sealed with key {key_id!r} does not open: altered, "
                            "or sealed with another key of that id") from None

    @staticmethod
    def _aad(key_id: str) -> bytes:
        return f"{PREFIX}.{key_id}".encode()

    def __repr__(self) -> str:  # never the keys
        return f"<KeyringSealer seals with {self.current!r}, opens {', '.join(self._keys)}>"


def new_key_entry(key_id: str) -> str:
    """A fresh ``ID:BASE64KEY`` entry for ``HANDOFF_SEAL_KEYS`` (32 random bytes)."""
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


if __name__ == "__main__":  # python -m handoff.sealing KEY_ID
    print(new_key_entry(sys.argv[1] if len(sys.argv) > 1 else "k1"))
