"""Prometheus metrics, one registry per application (no process-global state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.probe.result import ProbeResult

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.probes = Counter("monitor_probes", "Probe runs by outcome",
                              ["provider", "outcome", "failure_class"], registry=r)
        self.step_latency = Histogram("monitor_step_latency_seconds", "SMTP step latency",
                                      ["provider", "step"], buckets=_LATENCY_BUCKETS,
                                      registry=r)
        self.events = Counter("monitor_events", "Events recorded", ["type"], registry=r)
        self.deliveries = Counter("monitor_webhook_deliveries",
                                  "Webhook delivery attempts by outcome",
                                  ["kind", "outcome"], registry=r)
        self.delivery_latency = Histogram("monitor_webhook_delivery_latency_seconds",
                                          "Webhook request latency", ["kind"],
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.outbox_listening = Gauge(
            "monitor_outbox_listening", "1 while the outbox hears other replicas' NOTIFY "
            "(PostgreSQL); 0: it relies on its poll", registry=r)
        self.outbox_depth = Gauge("monitor_outbox_depth", "Deliveries waiting to be sent",
                                  registry=r)
        self.receive = Counter("monitor_receive_results", "Receive-side results",
                               ["provider", "mailbox", "placement"], registry=r)
        self.database_failures = Counter(
            "monitor_database_failures", "Jobs that failed because the database was "
            "unreachable", ["job"], registry=r)
        self.slots_skipped = Counter("monitor_slots_skipped",
                                     "Probe slots not run: the database was unreachable",
                                     ["provider"], registry=r)
        self.claims_lost = Counter(
            "monitor_slot_claims_lost", "Slots this replica tried to claim and another had: "
            "near zero once the replicas share the providers out", registry=r)
        self.providers_owned = Gauge(
            "monitor_providers_owned", "Providers whose slots this replica runs (its share "
            "of the live replicas)", registry=r)
        self.slot_lateness = Histogram(
            "monitor_scheduler_lateness_seconds", "Slot fire time minus its boundary",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r)
        self.slots_missed = Counter(
            "monitor_slots_missed", "Slots not run: the slot clock woke after they ended",
            registry=r)
        self.slots_overrun = Counter(
            "monitor_slots_overrun", "Slots not run: the provider's previous run was still "
            "going", registry=r)
        self.results_held = Gauge("monitor_results_held",
                                  "Probe results waiting for the database to record them",
                                  registry=r)
        self.results_dropped = Counter(
            "monitor_results_dropped", "Held probe results dropped: too many were waiting",
            registry=r)

    def observe_probe(self, result: ProbeResult) -> None:
        self.probes.labels(result.provider, "ok" if result.ok else "failed",
                           result.failure_class.value if result.failure_class else "").inc()
        for step in result.steps:
            self.step_latency.labels(result.provider, step.step.value).observe(
                step.latency_ms / 1000)
