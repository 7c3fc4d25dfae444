"""Sealing answers at rest: AES-GCM under a key the database never holds.

Whoever reads the database (its files, WAL, dead tuples, backups) sees only ciphertext for
answers in progress and for ballots waiting in a branch's box (see storage.ballots). The
key comes from the environment: ``CEPING_BALLOT_KEY`` when set, else derived from the bot
token with HKDF-SHA256 (every process of one bot derives the same key, so a draft survives
a restart and a second process). Without either — ``ceping demo``, tests — a fixed,
public test key is used and a warning says so: such a database protects nothing.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from storage.settings import settings

log = logging.getLogger(__name__)

PREFIX = "v1:"
"""Marks a sealed value (and its format version) inside the JSON column."""

TEST_KEY_MATERIAL = "ceping test ballot key: not a secret"
_INFO = b"ceping ballot sealing v1"
_AAD = b"ceping:v1"
_NONCE = 12


def derive_key(material: str) -> bytes:
    """A 256-bit AES key from any secret text (the ballot key or the bot token)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return hkdf.derive(material.encode())


@cache
def ballot_key() -> bytes:
    """The process's sealing key, read once from the settings."""
    current = settings()
    if current.ballot_key is not None and current.ballot_key.get_secret_value().strip():
        return derive_key(current.ballot_key.get_secret_value().strip())
    if current.bot_token is not None and current.bot_token.get_secret_value().strip():
        return derive_key(current.bot_token.get_secret_value().strip())
    log.warning("no CEPING_BALLOT_KEY or bot token: answers are sealed with the public test key")
    return derive_key(TEST_KEY_MATERIAL)


def seal(value: Any, key: bytes | None = None) -> str:
    """The value as JSON, encrypted and authenticated, in printable form."""
    nonce = os.urandom(_NONCE)
    plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    sealed = AESGCM(key or ballot_key()).encrypt(nonce, plain, _AAD)
    return PREFIX + base64.b64encode(nonce + sealed).decode()


def unseal(text: str, key: bytes | None = None) -> Any:
    """The value seal() sealed; InvalidTag when the key or the bytes are wrong."""
    raw = base64.b64decode(text.removeprefix(PREFIX))
    plain = AESGCM(key or ballot_key()).decrypt(raw[:_NONCE], raw[_NONCE:], _AAD)
    return json.loads(plain)


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


class SealedJSON(TypeDecorator[Any]):
    """A JSON column whose value is sealed on the way in and opened on the way out.

    Rows written before sealing existed (plain JSON) still read as they are, so an upgrade
    needs no data migration; the next save seals them.
    """

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else seal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return unseal(value) if is_sealed(value) else value
