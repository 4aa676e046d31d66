"""SASL XOAUTH2 for the IMAP backend: the client exchange and the token file.

XOAUTH2 is the mechanism of Google's "OAuth 2.0 Mechanism" page and Microsoft's
"Authenticate an IMAP, POP or SMTP connection using OAuth": one base64 response
`user=<username>^Aauth=Bearer <token>^A^A`. A server refusing the token first
sends an error challenge (base64 JSON, e.g. `{"status":"401",...}`); the client
answers it with an empty response, and the server then says NO.

The token stays out of every error, since a server may echo what it was sent
(`Xoauth2.redact`), and out of the logs: IMAPClient logs the AUTHENTICATE line
redacted and imaplib the response by its size only. A token file that cannot be
used is an `auth` failure naming the file, never showing what it holds.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from monitor.receive.errors import ReceiveError
from monitor.results import FailureClass

# An access token is one word: a space or a control character (^A ends a field of the
# response) would change what the server reads.
_NOT_IN_TOKEN = re.compile(r"[\s\x00-\x1f\x7f]")
MAX_TOKEN_FILE_BYTES = 64 * 1024  # an Entra ID JWT is a few KB
REDACTED = "***"


def is_token(value: str) -> bool:
    return bool(value) and not _NOT_IN_TOKEN.search(value)


def read_token_file(path: Path) -> str:
    """The access token `path` holds now (surrounding whitespace dropped)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise ReceiveError(FailureClass.AUTH, f"cannot read token_file {path}: "
                           f"{exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise ReceiveError(FailureClass.AUTH, f"token_file {path} is larger than 64 KiB")
    try:
        token = data.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if not is_token(token):
        problem = "is empty" if not data.strip() else "does not hold an access token (one word)"
        raise ReceiveError(FailureClass.AUTH, f"token_file {path} {problem}")
    return token


class Xoauth2:
    """The client side, as IMAPClient.sasl_login calls it: the initial response first;
    to anything after it (the error challenge) an empty response."""

    def __init__(self, username: str, token: str) -> None:
        self.response = f"user={username}\x01auth=Bearer {token}\x01\x01".encode()
        self._secrets = (token, base64.b64encode(self.response).decode("ascii"))
        self._sent = False

    def __call__(self, challenge: bytes) -> bytes:
        if self._sent:
            return b""
        self._sent = True
        return self.response

    def redact(self, value: object) -> object:
        """`value` (an exception argument) without the token or the encoded response."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            return value
        for secret in self._secrets:
            value = value.replace(secret, REDACTED)
        return value
