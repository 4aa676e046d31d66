"""A 4 KiB read buffer for the TLS connections a probe opens, instead of asyncio's 256 KiB.

CPython's `asyncio.sslproto.SSLProtocol` (3.11 and later) allocates a zero-filled,
so resident, `bytearray(max_size)` of 256 KiB for every TLS connection, and reads
decrypted data `max_size` at a time (a 256 KiB bytes object per read, trimmed
after). Both ways aiosmtplib starts TLS build one: implicit TLS through
`loop.create_connection(ssl=...)` and STARTTLS through `loop.start_tls()`, as do
the engine's certificate and port inspections (`asyncio.open_connection(ssl=...)`).
An SMTP reply is at most 32 KiB (aiosmtplib's limit) and mostly well under 1 KiB, so
200 probes waiting on a slow server held some 50 MB of empty buffers.

`capped()` sets a context variable for the duration of a probe. `install()` wraps
`SSLProtocol.__init__` once so that a protocol built while it is set gets an
instance `max_size` of `READ_BUFFER` before the original allocates: its buffer,
its reads and `get_buffer()` all follow it. Everything else in the process (httpx
webhooks, uvicorn) is built outside the variable and keeps the default. Where
`SSLProtocol` has no integer `max_size` (another event loop's SSL, a future
asyncio), `install()` does nothing and reports it.
"""

from __future__ import annotations

import contextlib
import contextvars
from asyncio import sslproto
from collections.abc import Callable, Iterator
from typing import Any

# Most SMTP replies, and a server's whole handshake flight with one certificate, fit
# in one read; a reply of aiosmtplib's 32 KiB maximum takes eight recv() calls. Held
# open after AUTH, a probe is ~60 KB at 4 KiB, ~75 KB at 16 KiB (bench tls-memory).
READ_BUFFER = 4 * 1024

_cap: contextvars.ContextVar[int | None] = contextvars.ContextVar("tls_read_buffer", default=None)
_WRAPPED = "_monitor_read_buffer_cap"


def applies() -> bool:
    """Whether this Python's asyncio has the buffer the cap is for."""
    return isinstance(getattr(sslproto.SSLProtocol, "max_size", None), int)


def install() -> bool:
    """Wrap `SSLProtocol.__init__` once (idempotent); False where the cap cannot apply."""
    if not applies():
        return False
    original: Callable[..., None] = sslproto.SSLProtocol.__init__
    if getattr(original, _WRAPPED, False):
        return True

    def __init__(self: sslproto.SSLProtocol, *args: Any, **kwargs: Any) -> None:
        cap = _cap.get()
        if cap is not None and cap < type(self).max_size:
            # Read by the original for its buffer, and by every later read.
            self.max_size = cap  # type: ignore[misc]
        original(self, *args, **kwargs)

    setattr(__init__, _WRAPPED, True)
    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    sslproto.SSLProtocol.__init__ = __init__  # type: ignore[method-assign]
    return True


@contextlib.contextmanager
def capped(size: int | None = None) -> Iterator[None]:
    """TLS connections opened inside this block (in this task) read into `size` bytes
    (`READ_BUFFER`, read at each call, when None)."""
    token = _cap.set(READ_BUFFER if size is None else size)
    try:
        yield
    finally:
        _cap.reset(token)
