"""Receive side: did the probe message arrive, how fast, where, and how was it judged.

Public surface:

    pending_tokens(probe_result, config) -> list[PendingToken]     after a send
    poll_pending(config, pending, now=None, *, options) -> list[ReceiveResult]
    wait_for_arrival(config, pending, on_progress=None, *, options) -> ReceiveResult
    inbound_routes(config, data_dir, *, max_bytes) / inbound_app(...)   HTTP intake
    ReceiveOptions (data_dir, authserv_id, timeouts, sweep age)

Backends, one module each (imap, pop3, maildir, inbound) holding the kind's config
model and its `MailboxBackend`, listed in `registry.KINDS`, from which config
validation and `BACKENDS` (kind -> backend) are derived. Nothing here raises out
of a check; exceptions are classified once, in `errors.classify`.
"""

from monitor.receive.authresults import AuthResults, auth_results
from monitor.receive.backend import MailboxBackend, ReceiveOptions
from monitor.receive.inbound import DEFAULT_MAX_BYTES, inbound_app, inbound_routes
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
    "DEFAULT_MAX_BYTES",
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
    "inbound_app",
    "inbound_routes",
    "pending_tokens",
    "poll_mailbox",
    "poll_pending",
    "seed_mailboxes",
    "wait_for_arrival",
]
