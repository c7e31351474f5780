"""Signatures over the chain: HMAC-SHA256 with a shared key, or Ed25519; keys for signing and for
verifying loaded apart.

A hash chain alone proves order and content only to someone who trusts its last hash: whoever can write
the database can rewrite every hash after an edit. Signing the chain head (after every append),
periodic checkpoints, archive records and external anchors with a key the database does not hold
closes that gap: an edit, a deletion or a truncated tail then needs the key to go unnoticed.

Every signature covers a *domain* (``head``, ``checkpoint``, ``archive``, ``anchor``) and the position
it vouches for, so no signature can stand in for another: a checkpoint copied into the head row, or a
head's signature copied into an archive record, no longer verifies.

Keys for signing (``[wfe] audit_signing_key``):

* empty: the *embedded default*, an HMAC key generated into ``$AIRFLOW_HOME/wfe_audit.key`` (mode
  0600) by the first append to an empty trail in a SQLite store; refused for a server store (every
  machine would mint its own) and never generated again for a trail that already has events;
* ``file:/path``: an HMAC key read from that file;
* ``ed25519:/path/key.pem``: an Ed25519 private key (PEM, PKCS#8; ``wfe audit keygen`` writes one);
* anything else: the HMAC key itself (keep it in a secrets backend or ``..._CMD`` / ``..._SECRET``).

Keys for verifying: the signing key's (its public half for Ed25519), every entry of
``[wfe] audit_verify_keys`` (older keys after a rotation, public keys on an auditor's machine) and
``--public-key``; the embedded default only if its file exists. Loading keys to verify never creates
anything.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Iterable
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, Final, Protocol

from airflow_wfe.core.audit.canonical import canonical_json
from airflow_wfe.core.audit.partitions import MAIN, signed_chain
from airflow_wfe.exceptions import AuditError, ConfigError

__all__ = [
    "ANCHOR",
    "ARCHIVE",
    "CHECKPOINT",
    "ED25519",
    "HEAD",
    "HMAC",
    "TREE",
    "Ed25519Signer",
    "GeneratedKey",
    "HmacSigner",
    "Keyring",
    "Signer",
    "anchor_message",
    "archive_message",
    "checkpoint_message",
    "generate_ed25519",
    "head_message",
    "load_public_key",
    "load_signer",
    "load_verify_key",
    "tree_message",
]

HMAC: Final = "hmac-sha256"
ED25519: Final = "ed25519"
_OPTION: Final = "audit_signing_key"

#: Signature domains: what a signature vouches for (part of every signed message).
HEAD: Final = "head"
CHECKPOINT: Final = "checkpoint"
ARCHIVE: Final = "archive"
ANCHOR: Final = "anchor"
TREE: Final = "tree"


class Signer(Protocol):
    """Signs and checks signed messages."""

    @property
    def algorithm(self) -> str: ...

    #: A public fingerprint of the key (never the key), stored beside each signature.
    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> str: ...

    def verify(self, message: bytes, signature: str) -> bool: ...


def _mark_message(domain: str, seq: int, event_hash: str, at: str, chain: str = MAIN) -> bytes:
    name = signed_chain(chain)
    if type(seq) is int and type(event_hash) is str and type(at) is str and type(name) is str:
        # The canonical JSON written out (keys in sorted order): built for every append, of
        # every partition; a test compares it with canonical_json for each domain and chain.
        return (
            f'{{"at":{encode_basestring(at)},"chain":{encode_basestring(name)},'
            f'"domain":"{domain}","hash":{encode_basestring(event_hash)},"seq":{seq}}}'
        ).encode()
    return canonical_json(
        {"chain": name, "domain": domain, "seq": seq, "hash": event_hash, "at": at}
    ).encode()


def head_message(seq: int, event_hash: str, at: str, chain: str = MAIN) -> bytes:
    """What the head's signature covers: ``{"at","chain":"wfe","domain":"head","hash","seq"}``
    as canonical JSON (written out directly: it is built for every append). A partition other
    than ``main`` signs ``"chain":"wfe/<name>"`` (see :mod:`.partitions`)."""
    return _mark_message(HEAD, seq, event_hash, at, chain)


def checkpoint_message(seq: int, event_hash: str, at: str, chain: str = MAIN) -> bytes:
    """What a checkpoint's signature covers (the head's fields, domain ``checkpoint``)."""
    return _mark_message(CHECKPOINT, seq, event_hash, at, chain)


def archive_message(
    first_seq: int, last_seq: int, last_hash: str, at: str, chain: str = MAIN
) -> bytes:
    """What an archive record's (and its file's closing mark's) signature covers: which events
    left the store, and the hash the chain in the store goes on from."""
    return canonical_json(
        {
            "chain": signed_chain(chain),
            "domain": ARCHIVE,
            "first_seq": first_seq,
            "seq": last_seq,
            "hash": last_hash,
            "at": at,
        }
    ).encode()


def tree_message(root: str, at: str) -> bytes:
    """What a tree head's signature covers: the root over every partition's head (see
    :func:`~airflow_wfe.core.audit.partitions.tree_root`) and when it was taken."""
    return canonical_json({"chain": "wfe", "domain": TREE, "root": root, "at": at}).encode()


def anchor_message(fields: dict[str, Any]) -> bytes:
    """What an external anchor's signature covers: its every field but the signature."""
    return canonical_json({**fields, "chain": "wfe", "domain": ANCHOR}).encode()


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
        return hmac.compare_digest(self.sign(message), str(signature))


class Ed25519Signer:
    """Ed25519 through ``cryptography``; built from a private key signs, from a public key verifies."""

    algorithm = ED25519

    def __init__(self, private_key: object | None = None, public_key: object | None = None) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (
            Ed25519PrivateKey,
            Ed25519PublicKey,
        )

        if isinstance(private_key, Ed25519PrivateKey):
            public_key = private_key.public_key()
        if not isinstance(public_key, Ed25519PublicKey):
            raise ConfigError(_OPTION, "(hidden)", "not an Ed25519 key")
        self._private = private_key if isinstance(private_key, Ed25519PrivateKey) else None
        self._public = public_key
        self.key_id = ed25519_key_id(public_key)

    @property
    def can_sign(self) -> bool:
        return self._private is not None

    def public_only(self) -> Ed25519Signer:
        """The same key, able to verify only (what a verifier is given)."""
        return Ed25519Signer(public_key=self._public)

    def sign(self, message: bytes) -> str:
        if self._private is None:
            raise ConfigError(_OPTION, "(public key)", "a public key can verify but not sign")
        return base64.b64encode(self._private.sign(message)).decode()

    def verify(self, message: bytes, signature: str) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._public.verify(base64.b64decode(signature), message)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True


def ed25519_key_id(public_key: Any) -> str:
    """``ed25519:`` and the first 16 hex digits of the SHA-256 of the raw public key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


class GeneratedKey:
    """The embedded default: an HMAC key in ``$AIRFLOW_HOME/wfe_audit.key``, one machine only.

    Nothing is read or written when this object is built (task processes build it at start-up). The
    store's writer calls :meth:`for_store` under the chain's lock, which is where the facts that
    decide whether a key may be generated are known: the kind of store, and whether the trail is
    empty. A key file that has gone missing under a trail that already has events is never replaced
    by a new key: that key would sign whatever the store holds now, rewritten or not.
    """

    algorithm = HMAC
    generated = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._signer: HmacSigner | None = None

    def existing(self) -> HmacSigner | None:
        """The key if its file exists (never creates it)."""
        if self._signer is None and self.path.exists():
            self._signer = HmacSigner(_read(self.path, "generated HMAC key").strip())
        return self._signer

    def for_store(self, dialect: str, *, trail_empty: bool, head_key: str | None) -> HmacSigner:
        """The key to sign with in a store of ``dialect`` (creating it only where that is safe).

        Raises:
            ConfigError: a server store (every machine would generate its own key).
            AuditError: the key file is missing but the trail already has events.
        """
        if dialect != "sqlite":
            raise ConfigError(
                _OPTION,
                "(empty)",
                f"the audit trail is in a {dialect} store, shared by several machines, and no "
                "signing key is configured: a generated key is only for the embedded SQLite store "
                "on one machine. Run `wfe audit keygen --out DIR` and set [wfe] audit_signing_key "
                "= ed25519:DIR/wfe-audit.pem on every machine that writes",
            )
        found = self.existing()
        if found is not None:
            return found
        if not trail_empty:
            raise AuditError(
                str(self.path),
                "the generated audit signing key is missing, but the trail already has events"
                + (f" signed with key {head_key}" if head_key else "")
                + ": no new key is generated for a non-empty trail (it would sign whatever the "
                "store holds now). Restore the key file, or configure [wfe] audit_signing_key "
                "and list the old key in [wfe] audit_verify_keys",
            )
        self._signer = HmacSigner(_create_default_key(self.path))
        return self._signer

    @property
    def key_id(self) -> str:
        return self._loaded().key_id

    def _loaded(self) -> HmacSigner:
        found = self.existing()
        if found is None:
            raise ConfigError(
                _OPTION, "(empty)", f"no audit signing key: {self.path} does not exist yet"
            )
        return found

    def sign(self, message: bytes) -> str:
        return self._loaded().sign(message)

    def verify(self, message: bytes, signature: str) -> bool:
        return self._loaded().verify(message, signature)


class Keyring:
    """The keys a verification accepts, by key id (the current key, older ones, public keys)."""

    def __init__(self, keys: Iterable[Signer] = ()) -> None:
        self.keys: dict[str, Signer] = {}
        for key in keys:
            self.add(key)

    def add(self, key: Signer) -> None:
        if isinstance(key, Ed25519Signer):
            key = key.public_only()
        self.keys[key.key_id] = key

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.keys

    def check(self, key_id: str | None, message: bytes, signature: str | None) -> str | None:
        """``None`` when the signature holds, else what is wrong: ``"unsigned"``,
        ``"unknown key"`` or ``"bad signature"``."""
        if not signature or not key_id:
            return "unsigned"
        key = self.keys.get(key_id)
        if key is None:
            return "unknown key"
        return None if key.verify(message, signature) else "bad signature"

    def describe(self) -> str:
        return ", ".join(sorted(self.keys)) or "none"


def _read(path: Path, what: str, option: str = _OPTION) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(option, str(path), f"cannot read the {what}: {exc.strerror}") from None


def load_signer(spec: str, default_key_file: Path) -> Signer:
    """The signer that ``[wfe] audit_signing_key`` describes (see the module docstring).

    An empty ``spec`` gives a :class:`GeneratedKey`, which reads or creates nothing yet.

    Raises:
        ConfigError: the key cannot be read or is not a usable key.
    """
    if spec.startswith("ed25519:"):
        path = Path(spec.removeprefix("ed25519:")).expanduser()
        key = _load_ed25519(path, _OPTION)
        if not key.can_sign:
            raise ConfigError(
                _OPTION, str(path), "a public key can verify but not sign; give the private key"
            )
        return key
    if spec.startswith("file:"):
        path = Path(spec.removeprefix("file:")).expanduser()
        return HmacSigner(_read(path, "HMAC key").strip())
    if spec:
        return HmacSigner(spec.encode())
    return GeneratedKey(default_key_file)


def load_verify_key(spec: str, option: str = "audit_verify_keys") -> Signer:
    """One key to verify with: ``ed25519:PATH`` or a bare ``PATH`` (an Ed25519 public or private
    PEM), ``file:PATH`` (an HMAC key file). Reads only; never creates anything.

    Raises:
        ConfigError: naming ``option`` and the file, when it cannot be read or is not a key.
    """
    spec = spec.strip()
    if spec.startswith("file:"):
        path = Path(spec.removeprefix("file:")).expanduser()
        return HmacSigner(_read(path, "HMAC key", option).strip())
    return _load_ed25519(Path(spec.removeprefix("ed25519:")).expanduser(), option).public_only()


def load_public_key(path: Path) -> Signer:
    """A verify-only Ed25519 signer from a PEM key (public, or private: only its public half is
    kept), for auditors without the private key."""
    return _load_ed25519(path, "--public-key").public_only()


def _load_ed25519(path: Path, option: str) -> Ed25519Signer:
    from cryptography.hazmat.primitives.serialization import (
        load_pem_private_key,
        load_pem_public_key,
    )

    data = _read(path, "Ed25519 key", option)
    try:
        if b"PRIVATE KEY" in data:
            return Ed25519Signer(private_key=load_pem_private_key(data, password=None))
        return Ed25519Signer(public_key=load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        raise ConfigError(option, str(path), f"not an Ed25519 PEM key: {exc}") from None


def generate_ed25519(folder: Path, name: str = "wfe-audit") -> tuple[Path, Path, str]:
    """Write a new Ed25519 key pair: ``NAME.pem`` (private, mode 0600) and ``NAME.pub.pem``.

    Returns (private path, public path, key id). Refuses to overwrite an existing key.

    Raises:
        AuditError: a key file of that name exists, or the folder cannot be written.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    private_path, public_path = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise AuditError(str(path), "a key file of that name exists; it is never overwritten")
    key = Ed25519PrivateKey.generate()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        public_path.write_bytes(
            key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
    except OSError as exc:
        raise AuditError(str(folder), f"cannot write the key files: {exc.strerror}") from None
    return private_path, public_path, ed25519_key_id(key.public_key())


def _create_default_key(path: Path) -> bytes:
    """The machine's generated HMAC key, created now (or read, if a racing process won).

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
