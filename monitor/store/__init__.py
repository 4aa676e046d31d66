"""Storage: tables, migrations and every SQL statement of the project, by concept.

SQLite by default, PostgreSQL for replicas. Callers write `store.runs.add_run(...)`:

    runs           slot claims (leases), provider state, probe runs
    events         events, and the outbox rows each gets per subscription
    tokens         receive-side pending tokens and receive results
    outbox         due deliveries claimed atomically, attempts, replays
    subscriptions  subscriptions (API and config sync), secrets re-encrypted
    checks         pre-campaign checks and their reports, leased while they run
    inbound        mail posted to /inbound/{mailbox}, for every replica's poller
    notify         NOTIFY/LISTEN that wakes every replica's outbox at commit
    pacing         when a paced destination (a Slack URL) may next be sent to
    replicas       heartbeats: who is alive to share the providers
    posture        sending-domain posture state, replaced with its events at once
    retention      what goes with age
"""

from monitor.store import (
    checks,
    events,
    inbound,
    notify,
    outbox,
    pacing,
    posture,
    replicas,
    retention,
    rollups,
    runs,
    subscriptions,
    tokens,
)

__all__ = ["checks", "events", "inbound", "notify", "outbox", "pacing", "posture", "replicas",
           "retention", "rollups", "runs", "subscriptions", "tokens"]
