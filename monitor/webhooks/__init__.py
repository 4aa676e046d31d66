"""Signed webhook delivery: the storage-agnostic parts the outbox worker calls.

    render(event, destination)            → OutgoingRequest | None   (channels/)
    request.signed(msg_id, ts, secrets)   → OutgoingRequest           (signing.py)
    vet_destination(url, ...)           → None | raises EgressRefused (egress.py)
    send_limited(client, limiter, req)    → AttemptResult             (sender.py, limits.py)
    policy.next_attempt_at(n, now, ra)    → datetime | None (dead letter)  (retry.py)

The outcome tree is in `outcome.py`, the exception tree in `errors.py`.

Import from the modules: this package imports nothing, so loading the config
(which reads the channels' config models) does not pay for httpx.
"""
