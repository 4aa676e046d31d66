"""Receive side: did the probe message arrive, how fast, where, and how was it judged.

Public surface:

    pending_tokens(probe_result, config) -> list[PendingToken]     after a send
    poll_pending(config, pending, now=None, *, options) -> list[ReceiveResult]
    wait_for_arrival(config, pending, on_progress=None, *, options) -> ReceiveResult
    ReceiveOptions (data_dir, authserv_id, timeouts, sweep age)

Backends, one module each (imap, pop3, maildir, inbound) holding the kind's config
model and its `MailboxBackend`, listed in `registry.KINDS`, from which config
validation and `BACKENDS` (kind -> backend) are derived. Nothing here raises out
of a check; exceptions are classified once, in `errors.classify`. The HTTP intake
of the inbound kind is `monitor.receive.intake` (kept out of here: it loads starlette).
"""

from monitor.receive.authresults import AuthResults, auth_results
from monitor.receive.backend import MailboxBackend, ReceiveOptions
from monitor.receive.poller import (
    pending_tokens,
    poll_mailbox,
    poll_pending,
    seed_mailboxes,
    wait_for_arrival,
)
from monitor.receive.registry import BACKENDS, KINDS, MODELS
from monitor.receive.result import (
    AuthVerdict,
    PendingToken,
    Placement,
    ReceiveResult,
    ReceiveStatus,
)

__all__ = [
    "BACKENDS",
    "KINDS",
    "MODELS",
    "AuthResults",
    "AuthVerdict",
    "MailboxBackend",
    "PendingToken",
    "Placement",
    "ReceiveOptions",
    "ReceiveResult",
    "ReceiveStatus",
    "auth_results",
    "pending_tokens",
    "poll_mailbox",
    "poll_pending",
    "seed_mailboxes",
    "wait_for_arrival",
]
