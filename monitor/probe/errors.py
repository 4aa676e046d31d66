"""Translate whatever the wire threw into a classified step failure — in one place.

The probe never raises. aiosmtplib, ssl, asyncio and the OS each have their own
exception trees; `classify()` maps all of them to (class, code, text):

    SMTPResponseException(code)      -> by reply code: 4xx transient, 5xx permanent,
                                        530/534/535/538 auth; code -1 (unparseable
                                        or over-long reply) protocol
    SMTPTimeoutError, TimeoutError   -> timeout
    ssl.SSLCertVerificationError     -> tls, with the reason (expired, self-signed…)
    ssl.SSLError                     -> tls
    SMTPServerDisconnected, OSError  -> network (refused, reset, DNS, unreachable)
    anything else                    -> protocol (an unexpected reply or state)
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

import aiosmtplib

from monitor.network import os_failure, short
from monitor.results import FailureClass

AUTH_CODES = frozenset({530, 534, 535, 538})

# aiosmtplib's caps (protocol.py: MAX_LINE_LENGTH, MAX_RESPONSE_LENGTH); it reports
# both as "Response too long", so the text names both.
_TOO_LONG = ("reply too long: over aiosmtplib's limit of 8,192 octets a line "
             "or 32 KiB a reply")


@dataclass(frozen=True)
class Classified:
    failure_class: FailureClass
    code: int | None
    text: str


def class_for_code(code: int) -> FailureClass:
    """The class of a reply that was not the one a step expected."""
    if code in AUTH_CODES:
        return FailureClass.AUTH
    if 400 <= code < 500:
        return FailureClass.TRANSIENT
    if 500 <= code < 600:
        return FailureClass.PERMANENT
    return FailureClass.PROTOCOL  # 2xx/3xx where another was due, or not a reply code


def classify(exc: BaseException) -> Classified:
    """Map any exception raised while running a step to its failure class."""
    cause = _root(exc)
    if isinstance(cause, ssl.SSLError):
        return _os(cause)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if exc.code < 0:  # aiosmtplib's marker for an unparseable or over-long reply
            if exc.message == "Response too long":
                return Classified(FailureClass.PROTOCOL, None, _TOO_LONG)
            return Classified(FailureClass.PROTOCOL, None, short(exc.message))
        return Classified(class_for_code(exc.code), exc.code, short(exc.message))
    if isinstance(exc, TimeoutError):  # SMTPTimeoutError is a TimeoutError too
        return Classified(FailureClass.TIMEOUT, None, short(str(exc)) or "timed out")
    named = socket.gaierror | ConnectionRefusedError | ConnectionResetError
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected) and not isinstance(cause, named):
        return Classified(FailureClass.NETWORK, None,
                          f"server closed the connection ({short(exc.message)})")
    if isinstance(cause, OSError):
        return _os(cause)
    if isinstance(exc, aiosmtplib.SMTPException):
        return Classified(FailureClass.PROTOCOL, None, short(exc.message))
    return Classified(FailureClass.PROTOCOL, None, f"{type(exc).__name__}: {short(str(exc))}")


def _os(exc: OSError) -> Classified:
    failure_class, text = os_failure(exc)
    return Classified(failure_class, None, text)


def _root(exc: BaseException) -> BaseException:
    """aiosmtplib wraps OS and ssl errors (`raise … from exc`); classify by the origin."""
    seen = 0
    while exc.__cause__ is not None and seen < 5:
        exc = exc.__cause__
        seen += 1
    return exc
