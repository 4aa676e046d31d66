"""Translate whatever a mailbox check threw into a classified failure — in one place.

A check never raises out of `monitor.receive`: the poller catches at one
boundary and calls `classify(exc, step)`. The tree it understands:

    ReceiveError(failure_class, text)   raised by our backends for what they detect
                                        themselves (STARTTLS not offered, folder or
                                        Maildir missing, mailbox not configured)
    imapclient LoginError               -> auth (LOGIN answered NO)
    imaplib.IMAP4.abort                 -> network for "socket error…" (EOF, reset),
                                           else protocol (garbage, unexpected reply)
    imapclient ProtocolError            -> protocol (a reply it could not parse)
    imaplib.IMAP4.error                 -> a NO: auth at login, permanent at select
                                           (no such folder), else protocol
    poplib.error_proto                  -> network for "-ERR EOF", auth for an -ERR
                                           at login, else protocol (garbage, a line
                                           over poplib's 2,048 bytes)
    TimeoutError (socket timeouts too)  -> timeout, naming the step
    ssl.*, OSError                      -> tls / network, as for SMTP probes
                                           (monitor.probe.errors.classify)
    anything else                       -> protocol, with the exception type
"""

from __future__ import annotations

import imaplib
import poplib
import re
from dataclasses import dataclass

from imapclient.exceptions import LoginError, ProtocolError

from monitor.network import os_failure
from monitor.results import FailureClass

_IMAP_REFUSAL = {"login": FailureClass.AUTH, "select": FailureClass.PERMANENT}
_BYTES_REPR = re.compile(r"\bb'([^']*)'")


class ReceiveError(Exception):
    """A failure a backend recognised itself; carries its class."""

    def __init__(self, failure_class: FailureClass, text: str) -> None:
        super().__init__(text)
        self.failure_class = failure_class
        self.text = text


@dataclass(frozen=True)
class MailboxFailure:
    failure_class: FailureClass
    text: str


def classify(exc: BaseException, step: str) -> MailboxFailure:
    """Map an exception raised during `step` of a mailbox check to its class."""
    if isinstance(exc, ReceiveError):
        return MailboxFailure(exc.failure_class, exc.text)
    if isinstance(exc, LoginError):
        return MailboxFailure(FailureClass.AUTH, f"login refused: {_text(exc)}")
    if isinstance(exc, imaplib.IMAP4.abort):
        text = _text(exc)
        if "socket error" in text:
            return MailboxFailure(FailureClass.NETWORK, f"connection lost ({text})")
        return MailboxFailure(FailureClass.PROTOCOL, text)
    if isinstance(exc, ProtocolError):
        return MailboxFailure(FailureClass.PROTOCOL, _text(exc))
    if isinstance(exc, imaplib.IMAP4.error):
        # A well-formed NO: to LOGIN it is auth, to SELECT a folder that is not
        # there (config to fix), elsewhere an answer we did not expect.
        failure_class = _IMAP_REFUSAL.get(step, FailureClass.PROTOCOL)
        return MailboxFailure(failure_class, _text(exc))
    if isinstance(exc, poplib.error_proto):
        text = _text(exc)
        if text == "-ERR EOF":  # poplib's marker for a closed connection
            return MailboxFailure(FailureClass.NETWORK, "server closed the connection")
        # Only a well-formed refusal to USER/PASS says the credentials are wrong.
        refused = step == "login" and text.startswith("-ERR")
        return MailboxFailure(FailureClass.AUTH if refused else FailureClass.PROTOCOL, text)
    if isinstance(exc, EOFError):
        return MailboxFailure(FailureClass.NETWORK, "server closed the connection")
    if isinstance(exc, TimeoutError):
        return MailboxFailure(FailureClass.TIMEOUT, f"no answer in time at step {step}")
    if isinstance(exc, OSError):  # ssl.SSLError is an OSError too
        failure_class, text = os_failure(exc)
        return MailboxFailure(failure_class, text)
    return MailboxFailure(FailureClass.PROTOCOL, f"{type(exc).__name__}: {_text(exc)}")


def _text(exc: BaseException, limit: int = 500) -> str:
    """Server text is untrusted: decode bytes, flatten, and cap its length."""
    arg = exc.args[0] if len(exc.args) == 1 else str(exc)
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    text = _BYTES_REPR.sub(r"\1", " ".join(text.split()))  # imapclient formats b'…'
    return text if len(text) <= limit else text[:limit] + "…"
