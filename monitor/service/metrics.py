"""Prometheus metrics, one registry per application (no process-global state).

Names and units follow Prometheus' conventions (`_seconds`, `_total` counters,
`_timestamp_seconds`). Labels stay bounded: provider, step (an enum), mailbox,
placement, state and subscription come from config or enums, never from what a
server said. Per provider there are gauges and counters only; no histogram has a
provider label, because a histogram is fifteen series per label set: the step
latency histogram per provider and step made /metrics 76 MB and 21 s of the event
loop at 5,000 send providers (issue 12), so it is per step, across providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.probe.result import ProbeResult
from monitor.receive.result import ReceiveResult

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Send-to-inbox: seconds to many minutes (deliver_within defaults to 5 min).
_ROUND_TRIP_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
# How late a slot's job fires after its boundary: event-loop stalls, a busy machine.
_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # Per provider, the steps whose reply code is exported: a step the last run did not
    # reach (it failed earlier) is removed rather than left showing an old code.
    _coded_steps: dict[str, set[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        r = self.registry
        self.probes = Counter("monitor_probes", "Probe runs by outcome",
                              ["provider", "outcome", "failure_class"], registry=r)
        self.step_latency = Histogram("monitor_step_latency_seconds",
                                      "SMTP step latency, all providers", ["step"],
                                      buckets=_LATENCY_BUCKETS, registry=r)
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
        # blackbox_exporter's probe_success and friends, per provider, as of its last run.
        self.probe_success = Gauge("monitor_probe_success",
                                   "1 if the provider's last probe succeeded, else 0",
                                   ["provider"], registry=r)
        self.probe_duration = Gauge("monitor_probe_duration_seconds",
                                    "How long the provider's last probe took",
                                    ["provider"], registry=r)
        self.reply_code = Gauge("monitor_probe_reply_code",
                                "The SMTP reply code of each step in the provider's last probe "
                                "(the failing one for RCPT with several recipients)",
                                ["provider", "step"], registry=r)
        self.certificate_not_after = Gauge(
            "monitor_tls_certificate_not_after_timestamp_seconds",
            "When the provider's TLS certificate expires (Unix time)", ["provider"], registry=r)
        self.round_trip = Histogram("monitor_receive_round_trip_seconds",
                                    "Send-to-inbox time of test messages that arrived, all "
                                    "providers", buckets=_ROUND_TRIP_BUCKETS, registry=r)
        self.scheduler_lateness = Histogram(
            "monitor_scheduler_lateness_seconds",
            "How long after its slot boundary a probe slot's job fired",
            buckets=_LATENESS_BUCKETS, registry=r)
        self.outbox_deliveries = Gauge("monitor_outbox_deliveries",
                                       "Webhook deliveries in the outbox by state",
                                       ["state"], registry=r)
        self.dead_letters = Gauge("monitor_webhook_dead_letters",
                                  "Deliveries that exhausted their retries, by subscription",
                                  ["subscription"], registry=r)

    def observe_probe(self, result: ProbeResult) -> None:
        self.probes.labels(result.provider, "ok" if result.ok else "failed",
                           result.failure_class.value if result.failure_class else "").inc()
        for step in result.steps:
            self.step_latency.labels(step.step.value).observe(
                step.latency_ms / 1000)
        self.probe_success.labels(result.provider).set(1 if result.ok else 0)
        self.probe_duration.labels(result.provider).set(result.duration_ms / 1000)
        codes: dict[str, int] = {}
        for step in result.steps:
            if step.code is not None and (step.step.value not in codes or not step.ok):
                codes[step.step.value] = step.code
        for step_name, code in codes.items():
            self.reply_code.labels(result.provider, step_name).set(code)
        for gone in self._coded_steps.get(result.provider, set()) - codes.keys():
            self.reply_code.remove(result.provider, gone)
        self._coded_steps[result.provider] = set(codes)
        certificate = result.tls.certificate if result.tls else None
        if certificate is not None and certificate.not_after is not None:
            self.certificate_not_after.labels(result.provider).set(
                certificate.not_after.timestamp())

    def observe_receive(self, result: ReceiveResult) -> None:
        placement = result.placement.value if result.placement else "missing"
        self.receive.labels(result.provider, result.mailbox, placement).inc()
        if result.arrived and result.latency_ms is not None:
            self.round_trip.observe(result.latency_ms / 1000)

    def set_outbox(self, by_state: Mapping[str, int], dead: Mapping[str, int]) -> None:
        """From the database (`refresh_gauges`): every state, and 0 for those with none."""
        for state in ("pending", "delivered", "dead", "disabled"):
            self.outbox_deliveries.labels(state).set(by_state.get(state, 0))
        self.outbox_depth.set(by_state.get("pending", 0))
        for subscription, count in dead.items():
            self.dead_letters.labels(subscription).set(count)
