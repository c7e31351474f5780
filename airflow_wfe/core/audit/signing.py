"""Signatures over chain checkpoints: HMAC-SHA256 with a shared key, or Ed25519.

A hash chain alone proves order and content only to someone who trusts its last hash: whoever can write
the database can rewrite every hash after an edit. Signing the chain head (after every append) and
periodic checkpoints with a key the database does not hold closes that gap: an edit, a deletion or a
truncated tail then needs the key to go unnoticed.

Keys (``[wfe] audit_signing_key``):

* empty: an HMAC key generated once into ``$AIRFLOW_HOME/wfe_audit.key`` (mode 0600); fine for one
  machine, but every machine that writes or verifies must share the same key;
* ``file:/path``: an HMAC key read from that file;
* ``ed25519:/path/key.pem``: an Ed25519 private key (PEM, PKCS#8); verifiers need only the public key;
* anything else: the HMAC key itself (keep it in a secrets backend or ``..._CMD`` / ``..._SECRET``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from json.encoder import encode_basestring
from pathlib import Path
from typing import Final, Protocol

from airflow_wfe.core.audit.canonical import canonical_json
from airflow_wfe.exceptions import ConfigError

__all__ = [
    "ED25519",
    "HMAC",
    "Ed25519Signer",
    "HmacSigner",
    "Signer",
    "checkpoint_message",
    "load_public_key",
    "load_signer",
]

HMAC: Final = "hmac-sha256"
ED25519: Final = "ed25519"
_OPTION: Final = "audit_signing_key"


class Signer(Protocol):
    """Signs and checks checkpoint messages."""

    algorithm: str
    #: A public fingerprint of the key (never the key), stored beside each signature.
    key_id: str

    def sign(self, message: bytes) -> str: ...

    def verify(self, message: bytes, signature: str) -> bool: ...


def checkpoint_message(seq: int, event_hash: str, at: str) -> bytes:
    """What a signature covers: the chain position, the hash of the event there, and when.

    The canonical JSON of ``{"chain": "wfe", "seq": seq, "hash": event_hash, "at": at}``, written
    out directly for the usual types (it is built for every append).
    """
    if type(seq) is int and type(event_hash) is str and type(at) is str:
        return (
            f'{{"at":{encode_basestring(at)},"chain":"wfe",'
            f'"hash":{encode_basestring(event_hash)},"seq":{seq}}}'
        ).encode()
    return canonical_json({"chain": "wfe", "seq": seq, "hash": event_hash, "at": at}).encode()


class HmacSigner:
    """HMAC-SHA256; the same key signs and verifies."""

    algorithm = HMAC

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError(_OPTION, "(hidden)", "an HMAC key needs at least 16 bytes")
        self._key = key
        # Keyed once; each signature copies it (the key's two SHA-256 blocks are not rehashed).
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        self.key_id = "hmac:" + hashlib.sha256(b"wfe-key-id:" + key).hexdigest()[:16]

    def sign(self, message: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(message)
        return mac.hexdigest()

    def verify(self, message: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)


class Ed25519Signer:
    """Ed25519 through ``cryptography``; built from a private key signs, from a public key verifies."""

    algorithm = ED25519

    def __init__(self, private_key: object | None = None, public_key: object | None = None) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (
            Ed25519PrivateKey,
            Ed25519PublicKey,
        )
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        if isinstance(private_key, Ed25519PrivateKey):
            public_key = private_key.public_key()
        if not isinstance(public_key, Ed25519PublicKey):
            raise ConfigError(_OPTION, "(hidden)", "not an Ed25519 key")
        self._private = private_key if isinstance(private_key, Ed25519PrivateKey) else None
        self._public = public_key
        raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]

    def sign(self, message: bytes) -> str:
        if self._private is None:
            raise ConfigError(_OPTION, "(public key)", "a public key can verify but not sign")
        return base64.b64encode(self._private.sign(message)).decode()

    def verify(self, message: bytes, signature: str) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._public.verify(base64.b64decode(signature), message)
        except (InvalidSignature, ValueError):
            return False
        return True


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(_OPTION, str(path), f"cannot read the {what}: {exc.strerror}") from None


def load_signer(spec: str, default_key_file: Path) -> Signer:
    """The signer that ``[wfe] audit_signing_key`` describes (see the module docstring).

    Raises:
        ConfigError: the key cannot be read or is not a usable key.
    """
    if spec.startswith("ed25519:"):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        path = Path(spec.removeprefix("ed25519:")).expanduser()
        try:
            key = load_pem_private_key(_read(path, "Ed25519 private key"), password=None)
        except ValueError as exc:
            raise ConfigError(_OPTION, str(path), f"not a PEM private key: {exc}") from None
        return Ed25519Signer(private_key=key)
    if spec.startswith("file:"):
        path = Path(spec.removeprefix("file:")).expanduser()
        return HmacSigner(_read(path, "HMAC key").strip())
    if spec:
        return HmacSigner(spec.encode())
    return HmacSigner(_default_key(default_key_file))


def load_public_key(path: Path) -> Signer:
    """A verify-only Ed25519 signer from a PEM public key (for auditors without the private key)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(_read(path, "public key"))
    except ValueError as exc:
        raise ConfigError(_OPTION, str(path), f"not a PEM public key: {exc}") from None
    return Ed25519Signer(public_key=key)


def _default_key(path: Path) -> bytes:
    """The machine's generated HMAC key, created on first use.

    Written to a private temporary file and linked into place, so a racing process either wins or
    reads the complete key of the winner, never a half-written one.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".wfe_audit.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            os.chmod(temporary, 0o600)
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return _read(path, "generated HMAC key").strip()
