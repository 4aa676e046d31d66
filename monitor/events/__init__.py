"""Events: what changed between two probe runs, as data (see DESIGN.md's events table)."""

from monitor.events.model import Event, EventType

__all__ = ["Event", "EventType"]
