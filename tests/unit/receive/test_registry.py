"""Walk the mailbox registry: every kind has a config model, a backend, and a README line,
and config validation and the poller's lookup are derived from that one list."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from monitor.config import Config, MailboxConfig
from monitor.receive import BACKENDS, KINDS, MODELS, poller
from monitor.receive.registry import MAILBOX_UNION, Kind

README = Path(__file__).parents[3] / "README.md"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_has_a_config_model_and_a_backend_in_one_module(kind: Kind) -> None:
    assert issubclass(kind.config, MailboxConfig) and kind.config is not MailboxConfig
    assert kind.config.model_fields["kind"].default == kind.name  # the Literal's one value
    assert inspect.iscoroutinefunction(type(kind.backend).scan)
    # One file per kind: the model lives with the backend, not in monitor.config.
    assert kind.config.__module__ == type(kind.backend).__module__
    assert kind.config.__module__ == f"monitor.receive.{kind.config.__module__.split('.')[-1]}"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_has_a_line_in_the_readme(kind: Kind) -> None:
    lines = README.read_text().splitlines()
    assert any(re.match(rf"\* `{kind.name}` — \S", line) for line in lines), (
        f"README.md has no '* `{kind.name}` — ...' line under Receive side")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_the_union_routes_each_kind_to_its_model(kind: Kind) -> None:
    data = {"name": "m", "address": "m@example.test", "kind": kind.name}
    try:
        mailbox = MailboxConfig.model_validate(data)
    except ValidationError as exc:  # what the kind needs: reported by its own model
        assert {error["loc"][0] for error in exc.errors()} == {kind.name}
    else:
        assert type(mailbox) is kind.config


def test_validation_and_lookup_are_derived_from_the_registry() -> None:
    names = [kind.name for kind in KINDS]
    assert len(set(names)) == len(names)
    assert list(BACKENDS) == list(MODELS) == names
    assert poller.BACKENDS is BACKENDS  # the poller's default
    schema = TypeAdapter(MAILBOX_UNION).json_schema()
    assert sorted(schema["discriminator"]["mapping"]) == sorted(names)
    # Config.mailboxes is that union, and an unknown kind lists the registry's kinds in order.
    items = Config.model_json_schema()["properties"]["mailboxes"]["items"]
    assert sorted(items["discriminator"]["mapping"]) == sorted(names)
    with pytest.raises(ValidationError) as caught:
        Config.model_validate({"mailboxes": [{"name": "m", "kind": "exchange"}]})
    assert caught.value.errors()[0]["ctx"]["expected_tags"] == ", ".join(f"'{n}'" for n in names)
