"""The one place that POSTs a webhook, and turns whatever happened into an AttemptResult.

httpx's exceptions are translated here, once (like `map_httpcore_exceptions` in httpx):

    httpx.HTTPError / deadline
    ├── TimeoutError (our overall deadline), httpx.TimeoutException   → transient "timed out"
    ├── httpx.UnsupportedProtocol, httpx.InvalidURL                 → permanent "unusable URL"
    └── httpx.TransportError and the rest (refused, reset, TLS, …)  → transient

A response is read to at most 1 KB, scrubbed of anything the request must keep secret
(routing key, a chat webhook's URL, signing secrets), and classified by its channel.

One shared `httpx.AsyncClient` from `make_client()` serves every delivery: building a
client costs about 20 ms (issue 5), and the pool keeps connections to busy receivers
warm. Redirects are never followed (see `outcome.py`). `sniffio` is a declared
dependency: without it httpcore retries a failing import on every request (+27-31 %).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from monitor.redact import redact
from monitor.webhooks.channels import channel_for
from monitor.webhooks.channels.base import USER_AGENT, OutgoingRequest
from monitor.webhooks.limits import DeliveryLimiter, rate_key
from monitor.webhooks.outcome import Outcome, OutcomeKind

DEFAULT_TIMEOUT = 15.0  # the Standard Webhooks spec suggests 15-30 s
SNIPPET_BYTES = 1024

# (rate key, seconds per request) → None to send now, else seconds to wait and ask again.
SharedPace = Callable[[str, float], Awaitable[float | None]]


@dataclass(frozen=True)
class AttemptResult:
    status: int | None  # None when no response came back
    latency_ms: float
    response_snippet: str  # first KB of the response body, scrubbed; "" when none
    outcome: Outcome

    @property
    def retry_after(self) -> float | None:
        return self.outcome.retry_after

    @property
    def record(self) -> str:
        """What to store with the attempt: the response, or why there was none."""
        return self.response_snippet if self.status is not None else self.outcome.reason


def make_client(*, max_connections: int = 20, max_keepalive: int = 10,
                timeout: float = DEFAULT_TIMEOUT, proxy: str | None = None,
                verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """The shared client. Size the pool above the limiter's overall concurrency.

    `trust_env=False`: HTTP(S)_PROXY from the environment would silently route
    webhooks around the egress check; a proxy must be configured on purpose.
    """
    return httpx.AsyncClient(
        follow_redirects=False,
        limits=httpx.Limits(max_connections=max_connections,
                            max_keepalive_connections=max_keepalive, keepalive_expiry=30.0),
        timeout=httpx.Timeout(timeout),
        headers={"user-agent": USER_AGENT},
        trust_env=False,
        proxy=proxy,
        verify=verify,
    )


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` without any of `secrets` (nor a whsec_ key's base64 part, nor a URL's path)."""
    needles: set[str] = set()
    for secret in secrets:
        needles.add(secret)
        needles.add(secret.removeprefix("whsec_"))
        if "://" in secret:
            path = urlsplit(secret).path
            needles.update({path, path.rsplit("/", 1)[-1]})
    return redact(text, (n for n in needles if len(n) >= 8))


def _failure(exc: BaseException, timeout: float) -> Outcome:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        phases: dict[type[BaseException], str] = {
            httpx.ConnectTimeout: "connecting", httpx.WriteTimeout: "sending",
            httpx.PoolTimeout: "waiting for a connection"}
        phase = phases.get(type(exc), "waiting for the response")
        return Outcome(OutcomeKind.TRANSIENT, f"timed out after {timeout:g} s {phase}")
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return Outcome(OutcomeKind.PERMANENT, f"unusable URL: {detail}")
    if isinstance(exc, httpx.ConnectError):
        return Outcome(OutcomeKind.TRANSIENT, f"cannot connect: {detail}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return Outcome(OutcomeKind.TRANSIENT, f"the receiver broke the HTTP exchange: {detail}")
    return Outcome(OutcomeKind.TRANSIENT, f"{type(exc).__name__}: {detail}")


# `timeout` is a parameter (ASYNC109) because it also sets httpx's per-phase timeouts.
async def send(client: httpx.AsyncClient, request: OutgoingRequest, *,
               timeout: float = DEFAULT_TIMEOUT) -> AttemptResult:  # noqa: ASYNC109
    """POST once. Never raises for anything the network or the receiver does."""
    channel = channel_for(request.channel)
    started = time.perf_counter()
    try:
        # httpx's timeouts are per phase; this deadline bounds the whole exchange, so a
        # receiver that trickles a byte every few seconds cannot hold a slot for ever.
        async with asyncio.timeout(timeout):
            async with client.stream(
                "POST", request.url, headers=dict(request.headers), content=request.body,
                timeout=httpx.Timeout(timeout), follow_redirects=False,
            ) as response:
                head = bytearray()
                async for chunk in response.aiter_bytes():
                    head += chunk
                    if len(head) >= SNIPPET_BYTES:
                        break  # the rest is not ours to store; closing drops the connection
    except (TimeoutError, httpx.HTTPError) as exc:
        outcome = _failure(exc, timeout)
        # Error texts may quote the URL: keep its host, drop its path (a Slack credential).
        reason = scrub(outcome.reason.replace(request.url, f"https://{request.host}/…"),
                       request.redact)
        return AttemptResult(None, _ms(started), "", Outcome(outcome.kind, reason))
    latency = _ms(started)
    snippet = scrub(bytes(head[:SNIPPET_BYTES]).decode("utf-8", "replace"), request.redact)
    outcome = channel.classify(response.status_code, response.headers, snippet)
    return AttemptResult(response.status_code, latency, snippet, outcome)


async def send_limited(client: httpx.AsyncClient, limiter: DeliveryLimiter,
                       request: OutgoingRequest, *, subscriber: str,
                       timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
                       shared_pace: SharedPace | None = None) -> AttemptResult:
    """`send` inside the limiter's slots, paced per URL as the channel declares (Slack).

    `shared_pace(key, interval)`, for a paced channel, claims the turn other processes
    share (`DeliveryLimiter.slot`'s `turn`); `key` is the URL's `rate_key`, never the URL.
    Whatever it raises stops the request unsent and reaches the caller.
    """
    interval = channel_for(request.channel).pace_per_url
    turn = (functools.partial(shared_pace, rate_key(request.url), interval)
            if shared_pace is not None and interval else None)
    async with limiter.slot(subscriber, paced_url=request.url, interval=interval, turn=turn):
        return await send(client, request, timeout=timeout)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
