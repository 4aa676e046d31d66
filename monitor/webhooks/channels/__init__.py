"""Channels by subscription kind: a plain dict, one module each (see `base.Channel`)."""

from __future__ import annotations

from monitor.events.model import Event
from monitor.webhooks.channels.base import Channel, Destination, OutgoingRequest
from monitor.webhooks.channels.generic import GenericChannel
from monitor.webhooks.channels.pagerduty import PagerDutyChannel
from monitor.webhooks.channels.slack import SlackChannel

CHANNELS: dict[str, Channel] = {
    "generic": GenericChannel(),
    "slack": SlackChannel(),
    "pagerduty": PagerDutyChannel(),
}


def channel_for(kind: str) -> Channel:
    try:
        return CHANNELS[kind]
    except KeyError:
        raise ValueError(f"unknown subscription kind {kind!r} "
                         f"(known: {', '.join(sorted(CHANNELS))})") from None


def render(event: Event, destination: Destination) -> OutgoingRequest | None:
    """The unsigned request for `event` to `destination`, or None: nothing to send."""
    return channel_for(destination.kind).render(event, destination)


__all__ = ["CHANNELS", "Channel", "Destination", "OutgoingRequest", "channel_for", "render"]
