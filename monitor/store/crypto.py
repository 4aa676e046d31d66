"""Subscription secrets at rest: the key, encryption, and the column types that use it.

Webhook signing secrets, PagerDuty routing keys and subscriber URLs (a Slack
webhook URL is itself a credential) are stored as Fernet tokens (AES-128-CBC
with HMAC-SHA256, https://github.com/fernet/spec). The keys come from
`MONITOR_SECRET_KEY`: one or more Fernet keys, comma-separated, newest first.
The newest encrypts; every one decrypts (`MultiFernet`), so a key is rotated by
putting the new one in front and restarting: `monitor serve` re-encrypts every
row under it before it serves, after which the old key can be dropped.

Without the variable, an SQLite database gets a key generated once into
`secret.key` beside its file (mode 0600) and reused; PostgreSQL refuses to
start, because replicas must share one key and none may invent its own.

The cipher travels with the engine: `monitor.store.db.make_engine` binds it to
the engine's dialect, and the column types below find it there, since SQLAlchemy
hands a type nothing but the dialect. That attribute is the only state this
module keeps; two engines with different keys live side by side.

A stored value that is not a Fernet token is a row written before encryption
existed: it reads as the plaintext it is, and migration 0002 (or the next
start) encrypts it. A Fernet token that no key opens is a `SecretKeyError`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from monitor.store.errors import SecretKeyError

__all__ = ["ENV", "KEY_FILE", "Cipher", "EncryptedString", "EncryptedStringList",
           "SecretKeyError", "bind_cipher", "cipher_for", "load_cipher"]

ENV = "MONITOR_SECRET_KEY"
KEY_FILE = "secret.key"
GENERATE = ("python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'")

_ATTRIBUTE = "_monitor_cipher"  # on an engine's Dialect; see bind_cipher
_FERNET_VERSION = 0x80
_TOKEN_OVERHEAD = 1 + 8 + 16 + 32  # version, timestamp, IV, HMAC (Fernet spec)
_URLSAFE_BASE64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")


def _is_token(value: str) -> bool:
    """Whether `value` is shaped like a Fernet token (legacy plaintext is not)."""
    if not _URLSAFE_BASE64.fullmatch(value):  # b64decode would skip a URL's ':' and '.'
        return False
    try:
        raw = base64.urlsafe_b64decode(value)
    except (binascii.Error, ValueError):
        return False
    body = len(raw) - _TOKEN_OVERHEAD
    return raw[:1] == bytes([_FERNET_VERSION]) and body >= 16 and body % 16 == 0


class Cipher:
    """Fernet keys, newest first: the newest encrypts, any of them decrypts."""

    def __init__(self, keys: Sequence[str | bytes], *, source: str = ENV) -> None:
        if not keys:
            raise SecretKeyError(f"{source} holds no key")
        fernets = []
        for number, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):  # never echo the key itself
                where = f"key {number} of {len(keys)} in {source}" if len(keys) > 1 else source
                raise SecretKeyError(
                    f"{where} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    f"generate one with {GENERATE}") from None
        self._newest = fernets[0]
        self._all = MultiFernet(fernets)
        self.source = source

    @classmethod
    def generate(cls) -> Cipher:
        """A one-off key, for a database that lives no longer than the process."""
        return cls([Fernet.generate_key()], source="a generated key")

    def __repr__(self) -> str:
        return f"Cipher(source={self.source!r})"

    def encrypt(self, plaintext: str) -> str:
        return self._newest.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """The plaintext of a stored value; a legacy (never encrypted) value as it is."""
        if not _is_token(stored):
            return stored
        try:
            return self._all.decrypt(stored.encode("ascii")).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"a stored subscription secret does not decrypt with {self.source}: the key "
                f"was replaced rather than rotated? Put the previous key after the new one "
                f"({ENV}=NEW,OLD) and start again") from None

    def is_current(self, stored: str) -> bool:
        """Whether `stored` is already encrypted under the newest key."""
        if not _is_token(stored):
            return False
        try:
            self._newest.decrypt(stored.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def rotate(self, stored: str) -> str:
        """`stored` encrypted under the newest key (legacy plaintext included)."""
        return self.encrypt(self.decrypt(stored))


def load_cipher(url: str, env: Mapping[str, str] | None = None) -> Cipher:
    """The cipher for the database at `url`: `MONITOR_SECRET_KEY`, else SQLite's key file.

    Raises SecretKeyError for PostgreSQL without the variable, and for a key
    (variable or file) that is not a Fernet key.
    """
    environ = os.environ if env is None else env
    keys = [k.strip() for k in environ.get(ENV, "").split(",") if k.strip()]
    if keys:
        return Cipher(keys)
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise SecretKeyError(
            f"{ENV} is not set: on {parsed.get_backend_name()} every replica must encrypt "
            f"subscription secrets with the same key. Generate one with {GENERATE} and set it "
            f"on every replica")
    if parsed.database in (None, "", ":memory:"):
        return Cipher.generate()
    return _key_file(Path(parsed.database).absolute().parent / KEY_FILE)


def _key_file(path: Path) -> Cipher:
    """Read the key beside an SQLite database, generating it (0600) the first time."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        text = _create_key_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(f"{path}: cannot read the secret key: {exc}") from None
    _private(path)
    return Cipher([text.strip()] if text.strip() else [], source=str(path))


def _create_key_file(path: Path) -> str:
    """Write a new key atomically; if another process got there first, read its key."""
    key = Fernet.generate_key().decode("ascii") + "\n"
    temporary: str | None = None
    try:
        # mkstemp: mode 0600 whatever the umask says; link() never overwrites, so two
        # processes starting together agree on whichever key landed first.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(key)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text(encoding="ascii")
    except OSError as exc:
        raise SecretKeyError(f"{path}: cannot create the secret key: {exc}") from None
    finally:
        if temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    return key


def _private(path: Path) -> None:
    """Owner-only access for a file holding secrets (a copy restored with 0644, say)."""
    with contextlib.suppress(OSError):  # not ours to change: reading still works
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)


# -- binding to an engine, and the column types -------------------------------------------


def bind_cipher(dialect: sa.Dialect, cipher: Cipher) -> None:
    """Give an engine's dialect the cipher its encrypted columns use."""
    setattr(dialect, _ATTRIBUTE, cipher)


def cipher_for(dialect: sa.Dialect) -> Cipher:
    cipher: Cipher | None = getattr(dialect, _ATTRIBUTE, None)
    if cipher is None:
        raise SecretKeyError("this database engine has no secret key: create it with "
                             "monitor.store.db.make_engine")
    return cipher


class EncryptedString(sa.TypeDecorator[str]):
    """A string stored as a Fernet token. Fernet is randomised: never compare it in SQL."""

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else cipher_for(dialect).encrypt(value)

    def process_result_value(self, value: Any | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else cipher_for(dialect).decrypt(value)


class EncryptedStringList(sa.TypeDecorator[list[str]]):
    """A JSON list of strings, each stored as a Fernet token."""

    impl = sa.JSON
    cache_ok = True

    def process_bind_param(self, value: list[str] | None,
                           dialect: sa.Dialect) -> list[str] | None:
        if value is None:
            return None
        cipher = cipher_for(dialect)
        return [cipher.encrypt(item) for item in value]

    def process_result_value(self, value: Any | None, dialect: sa.Dialect) -> list[str] | None:
        if value is None:
            return None
        cipher = cipher_for(dialect)
        return [cipher.decrypt(item) for item in value]
