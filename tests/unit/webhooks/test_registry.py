"""The registries, walked: every channel kind and every event type declares all it must.

A channel is one module named after its kind plus its name in `channels.KINDS`; an event
type is one row in `events.model.TYPES`. Whatever is derived from them (the config's
subscription union, the API schema in tests/unit/api/test_channel_kinds.py, README's table
of kinds) must cover every one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib import import_module
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from monitor.cli import main
from monitor.config import load_config
from monitor.config.models import Name, SubscriptionConfig
from monitor.events.model import TYPES, Event, EventType, Severity
from monitor.webhooks.channels import CHANNELS, KINDS, Destination, channel_for
from monitor.webhooks.channels.schema import NAME_PATTERN, CreateBase, SubscriptionBase, kind_of
from monitor.webhooks.outcome import OutcomeKind

README = Path(__file__).parents[3] / "README.md"
WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.mark.parametrize("kind", KINDS)
def test_every_channel_declares_its_models_pacing_and_rendering(kind: str) -> None:
    module = import_module(f"monitor.webhooks.channels.{kind}")
    channel = CHANNELS[kind]
    assert module.CHANNEL is channel and channel.kind == kind
    assert issubclass(channel.config, SubscriptionBase) and kind_of(channel.config) == kind
    assert issubclass(channel.create, CreateBase) and kind_of(channel.create) == kind
    assert channel.pace_per_url is None or channel.pace_per_url > 0
    destination = Destination(kind=kind, url="https://hooks.example.com/x",
                              routing_key="R" * 32)
    rendered = 0
    for event_type in EventType:
        request = channel.render(Event(id="e1", type=event_type, timestamp=WHEN,
                                       provider="relay"), destination)
        if request is not None:
            assert request.channel == kind and request.body
            rendered += 1
    assert rendered  # at least webhook.test reaches every kind
    assert channel.classify(200, {}, "").kind is OutcomeKind.DELIVERED


def test_registry_is_the_list_of_kinds() -> None:
    assert tuple(CHANNELS) == KINDS
    # One module per channel, each listed: nothing in the package is a channel left out.
    package = Path(import_module("monitor.webhooks.channels").__file__ or "").parent
    shared = {"__init__", "base", "schema", "text"}
    assert {p.stem for p in package.glob("*.py")} - shared == set(KINDS)
    with pytest.raises(ValueError, match="known: generic, slack, pagerduty, teams, discord"):
        channel_for("carrier-pigeon")


@pytest.mark.parametrize("kind", KINDS)
def test_every_channel_kind_has_a_line_in_readme(kind: str) -> None:
    assert re.search(rf"^\| `{kind}` \|", README.read_text(), re.MULTILINE), (
        f"README's table of subscription kinds has no row for {kind}")


def test_the_config_union_has_every_kind_and_the_channels_name_rule_is_the_configs() -> None:
    adapter = TypeAdapter(SubscriptionConfig)
    for kind in KINDS:
        sub = adapter.validate_python({"name": f"{kind}-1", "kind": kind,
                                       "url": "https://hooks.example.com/x",
                                       **({"routing_key": "R" * 32} if kind == "pagerduty"
                                          else {})})
        assert type(sub) is CHANNELS[kind].config
    assert TypeAdapter(Name).json_schema()["pattern"] == NAME_PATTERN


@pytest.mark.parametrize("event_type", list(EventType))
def test_every_event_type_declares_family_severity_and_headline(event_type: EventType) -> None:
    info = TYPES[event_type]
    assert info.family and isinstance(info.family, str)
    assert info.severity is None or isinstance(info.severity, Severity)
    if info.resolves:
        assert any(not other.resolves and other.family == info.family
                   for other in TYPES.values()), "it resolves a family nothing opens"
    event = Event(id="e1", type=event_type, timestamp=WHEN, provider="relay")
    assert isinstance(event.severity, Severity)
    headline = event.headline()
    assert isinstance(headline, str) and headline
    if event_type is not EventType.WEBHOOK_TEST:
        assert headline.startswith("relay: ")


def test_severity_by_failure_class_and_refinements() -> None:
    def severity(event_type: EventType, **data: object) -> Severity:
        return Event(id="e", type=event_type, timestamp=WHEN, provider="p",
                     data=data).severity

    assert severity(EventType.PROBE_FAILED, **{"class": "auth"}) is Severity.CRITICAL
    assert severity(EventType.DELIVERY_FAILED, **{"class": "delivery"}) is Severity.ERROR
    assert severity(EventType.PROBE_FAILED, **{"class": "transient"}) is Severity.WARNING
    assert severity(EventType.PROBE_FAILED) is Severity.ERROR  # no class: error
    assert severity(EventType.TLS_CERTIFICATE_EXPIRING, days_left=6) is Severity.WARNING
    assert severity(EventType.TLS_CERTIFICATE_EXPIRING, days_left=0.5) is Severity.ERROR
    assert severity(EventType.CHECK_COMPLETED, verdict="failed") is Severity.ERROR
    assert severity(EventType.CHECK_COMPLETED, verdict="passed") is Severity.INFO
    assert {t for t in EventType if t.pages} == {
        EventType.PROBE_FAILED, EventType.DELIVERY_FAILED, EventType.PROBE_DEGRADED,
        EventType.TLS_CERTIFICATE_EXPIRING, EventType.DOMAIN_BLOCKLISTED,
        EventType.WEBHOOK_TEST}


TEAMS_AND_DISCORD = """\
subscriptions:
  - name: chat
    kind: teams
    url: https://prod-01.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=S
    events: [probe.failed, probe.recovered]
  - name: game-night
    kind: discord
    url: ${DISCORD_WEBHOOK_URL}
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
"""


def test_config_accepts_teams_and_discord(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(TEAMS_AND_DISCORD)
    env = {"DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/T0KEN"}
    config = load_config(path, env=env)
    teams, discord = config.subscriptions
    assert (teams.kind, discord.kind) == ("teams", "discord")
    assert Destination.from_config(discord).url == env["DISCORD_WEBHOOK_URL"]
    assert teams.events == ("probe.failed", "probe.recovered")
    path.write_text(TEAMS_AND_DISCORD.replace("${DISCORD_WEBHOOK_URL}", env[
        "DISCORD_WEBHOOK_URL"]))
    assert main(["config", "validate", str(path)]) == 0
    assert capsys.readouterr().err == ""
