"""Matching and measurement: pending tokens in, one `ReceiveResult` per token out.

`poll_pending` is the periodic round trip: per mailbox it connects once and
looks for every token still pending there, from any earlier send, so a slow
mailbox never blocks the next probe. `wait_for_arrival` polls one token with
bounded backoff until it is settled (the CLI). Neither raises: a failing
mailbox becomes an `error` result for each of its tokens, classified by
`errors.classify` — the one place exceptions are translated.

A scan is bounded by `ReceiveOptions.scan_timeout`, but the backends run in
worker threads that cancelling an await does not stop. So a scan deletes
nothing until it has committed (`Trace.commit`, backend.py) and the poller,
when time is up, abandons it (`Trace.abandon`); the first of the two wins.
Abandoned, the thread stops at its next checkpoint having deleted nothing, and
the mailbox is reported as timed out; committed, the poller waits for the
deletions to finish (each network step is bounded by `op_timeout`) and uses
the result. A message is thus never deleted without being reported, which
would make a later check report it missing (a false delivery failure). (Only
cancelling the check itself, from outside, can still drop the result of a
scan that had already committed.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from monitor.config import Config, MailboxConfig
from monitor.receive.authresults import auth_results
from monitor.receive.backend import FoundMessage, MailboxBackend, ReceiveOptions, Scan, Trace
from monitor.receive.backend import received_time as topmost_received_time
from monitor.receive.diagnosis import diagnose_delivery
from monitor.receive.errors import MailboxFailure, classify
from monitor.receive.registry import BACKENDS
from monitor.receive.result import PendingToken, Placement, ReceiveResult, ReceiveStatus
from monitor.results import FailureClass

Backends = Mapping[str, MailboxBackend[Any]]  # kind -> backend; default registry.BACKENDS
MAX_PARALLEL_MAILBOXES = 4  # each scan holds a worker thread; the default pool is small
ProgressCallback = Callable[[float], None]
_RESOLUTION_MS = 1000.0  # RFC 5322 date-time has whole seconds


class SentMessage(Protocol):
    """What the receive side needs of a send (a ProbeResult is one)."""

    @property
    def token(self) -> str | None: ...
    @property
    def run_id(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def accepted_at(self) -> datetime | None: ...


def pending_tokens(result: SentMessage, config: Config) -> list[PendingToken]:
    """What a send leaves for the receive side: one token per seed mailbox it went to."""
    if result.token is None or result.accepted_at is None:
        return []
    return [PendingToken(token=result.token, run_id=result.run_id, provider=result.provider,
                         mailbox=m.name, accepted_at=result.accepted_at,
                         deadline=result.accepted_at + m.deliver_within)
            for m in seed_mailboxes(config, result.provider)]


def seed_mailboxes(config: Config, provider_name: str) -> list[MailboxConfig]:
    """The configured mailboxes a provider's sends go to: named in `to`, or addressed
    by the mailbox's address."""
    provider = config.provider(provider_name)
    if provider is None:
        return []
    by_address = {m.address.lower(): m for m in config.mailboxes}
    targets = [config.mailbox(t) or by_address.get(t.lower()) for t in provider.to]
    return list({m.name: m for m in targets if m is not None}.values())


async def poll_pending(config: Config, pending: Sequence[PendingToken],
                        now: datetime | None = None, *,
                        options: ReceiveOptions | None = None,
                        backends: Backends | None = None,
                        recorded: Mapping[str, Collection[str]] | None = None,
                        ) -> list[ReceiveResult]:
    """One result per pending token, in input order; `pending` ones are not settled.

    `now` is when the check starts: a token not found by a check that started
    at or after its deadline is `missing`. `recorded` (mailbox name → tokens
    whose results are stored) makes the scans delete only those messages and
    keep what they find now; without it, what is found is deleted at once.
    """
    options = options or ReceiveOptions()
    checked_at = now or datetime.now(UTC)
    groups: dict[str, list[PendingToken]] = {}
    for item in pending:
        groups.setdefault(item.mailbox, []).append(item)
    slots = asyncio.Semaphore(MAX_PARALLEL_MAILBOXES)

    async def one(name: str, items: list[PendingToken]) -> list[ReceiveResult]:
        delete = None if recorded is None else recorded.get(name, ())
        async with slots:
            return await poll_mailbox(config.mailbox(name), items, checked_at,
                                       options=options, backends=backends, delete=delete)

    grouped = await asyncio.gather(*(one(name, items) for name, items in groups.items()))
    by_key = {(r.token, r.mailbox): r for results in grouped for r in results}
    return [by_key[(p.token, p.mailbox)] for p in pending]


async def poll_mailbox(mailbox: MailboxConfig | None, pending: Sequence[PendingToken],
                        checked_at: datetime, *, options: ReceiveOptions,
                        backends: Backends | None = None,
                        delete: Collection[str] | None = None,
                        ) -> list[ReceiveResult]:
    """Scan one mailbox once for all of its pending tokens."""
    if mailbox is None:
        failure = MailboxFailure(FailureClass.PERMANENT, "mailbox is no longer configured")
        return [_error(p, "?", None, failure, checked_at) for p in pending]
    backend = (backends or BACKENDS)[mailbox.kind]
    trace = Trace()
    try:
        scan = await _scan_in_time(
            backend.scan(mailbox, {p.token for p in pending}, options, trace, delete), trace,
            options.scan_timeout)
    except Exception as exc:  # translated in one place: errors.classify
        failure = classify(exc, trace.step)
        return [_error(p, mailbox.kind, trace, failure, checked_at) for p in pending]
    return [_result(p, mailbox, scan, checked_at, options) for p in pending]


async def _scan_in_time(scan: Awaitable[Scan], trace: Trace, seconds: float) -> Scan:
    """The scan's result, or TimeoutError after `seconds` — unless the backend has
    already begun deleting (`Trace.commit`): then its result is awaited and used,
    since the messages it found will be gone. A scan given up on is abandoned
    (`Trace.abandon`), so its worker thread deletes nothing and stops reading."""
    task = asyncio.ensure_future(scan)
    try:
        return await asyncio.wait_for(asyncio.shield(task), seconds)
    except TimeoutError:  # ours, or the backend's own (a socket timeout)
        if not trace.abandon():
            return await task  # committed: deleting, or even done deleting
        _drop(task)
        raise
    except BaseException:  # the backend failed, or we were cancelled: no result to use
        trace.abandon()
        _drop(task)
        raise


def _drop(task: asyncio.Future[Scan]) -> None:
    """Stop waiting for `task` (its thread, if any, stops at the next checkpoint) and
    swallow whatever it ends with."""
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


async def wait_for_arrival(config: Config, pending: PendingToken,
                           on_progress: ProgressCallback | None = None, *,
                           options: ReceiveOptions | None = None,
                           backends: Backends | None = None,
                           first_interval: float = 0.2, max_interval: float = 2.0,
                           clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                           sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                           ) -> ReceiveResult:
    """Poll until the token is settled; the last check starts at the deadline.

    A mailbox error that retrying cannot fix (auth, tls, protocol, a missing
    folder) ends the wait at once; network trouble and timeouts are retried
    until the deadline. `on_progress` gets the seconds since DATA was accepted.
    `clock` and `sleep` are the time it waits in (tests pass their own).
    """
    interval = first_interval
    while True:
        now = clock()
        [result] = await poll_pending(config, [pending], now, options=options,
                                       backends=backends)
        give_up = result.failure_class is not None and not result.failure_class.retryable
        if result.settled or (result.status is ReceiveStatus.ERROR and give_up):
            return result
        after = clock()
        if on_progress is not None:
            on_progress((after - pending.accepted_at).total_seconds())
        remaining = (pending.deadline - after).total_seconds()
        await sleep(max(0.0, min(interval, remaining)))
        interval = min(interval * 1.5, max_interval)


def _result(pending: PendingToken, mailbox: MailboxConfig, scan: Scan, checked_at: datetime,
            options: ReceiveOptions) -> ReceiveResult:
    base = _base(pending, mailbox.kind, checked_at)
    found = scan.found.get(pending.token)
    if found is not None:
        return _arrival(pending, found, base, scan, options)
    if checked_at < pending.deadline:
        return ReceiveResult(**base, status=ReceiveStatus.PENDING, notes=tuple(scan.notes))
    within = (pending.deadline - pending.accepted_at).total_seconds()
    error = (f"not seen in {', '.join(scan.folders) or 'the mailbox'} within {within:g}s "
             f"of DATA being accepted")
    return ReceiveResult(
        **base, status=ReceiveStatus.MISSING, failure_class=FailureClass.DELIVERY,
        error=error, diagnosis=diagnose_delivery(error), notes=tuple(scan.notes))


def _arrival(pending: PendingToken, found: FoundMessage, base: dict[str, Any], scan: Scan,
             options: ReceiveOptions) -> ReceiveResult:
    notes = list(scan.notes)
    received_at = topmost_received_time(found.headers)
    verdicts = auth_results(found.headers, options.authserv_id)
    if verdicts.note:
        notes.append(verdicts.note)
    seen_ms = _ms(found.seen_at - pending.accepted_at)
    latency = seen_ms
    if received_at is not None:
        latency, note = _received_latency(_ms(received_at - pending.accepted_at), seen_ms)
        if note:
            notes.append(note)
    # Judged on our clock: a receiver whose clock runs ahead must not make it late.
    arrived_at = pending.accepted_at + timedelta(milliseconds=latency)
    late = arrived_at > pending.deadline
    error = None
    if late:
        error = f"arrived {_ms(arrived_at - pending.deadline) / 1000:.1f}s after the deadline"
    elif found.placement is Placement.JUNK:
        error = f"landed in the junk folder {found.folder!r}, not the inbox"
    result = ReceiveResult(
        **base, status=ReceiveStatus.LATE if late else ReceiveStatus.ARRIVED,
        seen_at=found.seen_at, received_at=received_at, latency_ms=latency,
        seen_latency_ms=seen_ms, folder=found.folder, folder_known=found.folder_known,
        placement=found.placement, spf=verdicts.spf, dkim=verdicts.dkim, dmarc=verdicts.dmarc,
        authserv_id=verdicts.authserv_id, deleted=found.deleted,
        failure_class=FailureClass.DELIVERY if error else None, error=error,
        diagnosis=diagnose_delivery(error) if error else None, notes=tuple(notes))
    return result.with_message(found.raw) if found.raw is not None else result


def _received_latency(received_ms: float, seen_ms: float) -> tuple[float, str | None]:
    """Latency to the topmost Received timestamp, kept within what we know for sure.

    Received has one-second resolution and the receiver's clock: it may read
    up to a second before DATA was accepted, or after we saw the message.
    Within that tolerance the value is clamped to [0, seen]; beyond it the
    clocks disagree, which is worth a note.
    """
    note = None
    if received_ms < -_RESOLUTION_MS or received_ms > seen_ms + _RESOLUTION_MS:
        note = (f"Received timestamp is {received_ms:.0f} ms from DATA accepted but the "
                f"message was seen after {seen_ms:.0f} ms: the receiver's clock is off")
    return min(max(received_ms, 0.0), seen_ms), note


def _error(pending: PendingToken, backend: str, trace: Trace | None, failure: MailboxFailure,
           checked_at: datetime) -> ReceiveResult:
    where = ""
    if trace is not None:
        where = f" at {trace.step}" + (f" of folder {trace.folder!r}" if trace.folder else "")
    return ReceiveResult(
        **_base(pending, backend, checked_at), status=ReceiveStatus.ERROR,
        failure_class=failure.failure_class, step=trace.step if trace else None,
        error=f"mailbox {pending.mailbox} ({backend}){where}: {failure.text}")


def _base(pending: PendingToken, backend: str, checked_at: datetime) -> dict[str, Any]:
    return {"token": pending.token, "run_id": pending.run_id, "provider": pending.provider,
            "mailbox": pending.mailbox, "backend": backend, "checked_at": checked_at,
            "accepted_at": pending.accepted_at, "deadline": pending.deadline}


def _ms(delta: timedelta) -> float:
    return round(delta.total_seconds() * 1000, 1)
