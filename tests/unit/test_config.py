"""Config loading: every kind of bad file is a fixture with its exact message."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.config import ConfigError, ProbeMode, TlsMode, load_config

FIXTURES = Path(__file__).parents[1] / "fixtures" / "config"
EXAMPLE = Path(__file__).parents[2] / "config" / "monitor.yaml"
EXAMPLE_ENV = {"SENDGRID_API_KEY": "SG.secret", "SEED_PASSWORD": "pw",
               "PD_ROUTING_KEY": "R0UT1NG",
               "OPS_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}


def _expected(path: Path) -> str:
    # Only the first line: some fixtures are deliberately not UTF-8 further down.
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: '"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("invalid-*.yaml")), ids=lambda p: p.stem)
def test_invalid_config_names_file_key_and_problem(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value) == f"{path}: {_expected(path)}"


def test_secret_values_are_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(FIXTURES / "invalid-secret-not-echoed.yaml", env={})
    assert "s3cr3t" not in str(caught.value)


def test_example_config_loads_with_defaults_applied() -> None:
    config = load_config(EXAMPLE, env=EXAMPLE_ENV)
    relay = config.provider("sendgrid-relay")
    assert relay is not None
    assert relay.mode is ProbeMode.SEND and relay.tls is TlsMode.STARTTLS
    assert relay.auth is not None and relay.auth.password is not None
    assert relay.auth.password.get_secret_value() == "SG.secret"
    assert "SG.secret" not in repr(config)
    assert config.recipients(relay) == ["seed@example.net"]
    smtps = config.provider("ses-smtps")
    assert smtps is not None and smtps.interval == timedelta(minutes=5)
    assert smtps.thresholds.failure == 2  # default applied
    assert config.step_timeout(smtps) == 10.0
    assert config.mailboxes[0].deliver_within == timedelta(minutes=5)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path).providers == ()


def test_env_value_cannot_inject_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('providers:\n  - {name: a, host: h, auth: {username: "${U}", password: p}}\n')
    config = load_config(path, env={"U": "x\nmode: send"})
    assert config.providers[0].auth is not None
    assert config.providers[0].auth.username == "x\nmode: send"
    assert config.providers[0].mode is ProbeMode.CONNECT


def test_dollar_escape(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('providers:\n  - {name: a, host: h, subject: "costs $${PRICE}"}\n')
    assert load_config(path, env={}).providers[0].subject == "costs ${PRICE}"


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _problem(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    return str(caught.value).removeprefix(f"{path}: ")


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("invalid-*.yaml")), ids=lambda p: p.stem)
def test_config_validate_exits_2_with_the_message(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "validate", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}: {_expected(path)}\n"


def test_alias_bomb_is_refused_before_it_expands() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match="aliases are not supported"):
        load_config(FIXTURES / "invalid-yaml-alias.yaml", env={})
    assert time.monotonic() - started < 1


def test_file_over_four_mib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (4 * 1024 * 1024) + "\n")
    assert _problem(path) == "the file is larger than 4 MiB"


def test_too_many_yaml_nodes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("providers:\n" + "- {name: a, host: b}\n" * 60_000)  # under 4 MiB
    assert _problem(path) == "line 50001, column 10: more than 250000 YAML nodes"


_DURATION_BOUNDS = [  # section, field, shortest, longest
    ("providers", "interval", "1s", "30d"),
    ("providers", "timeout", "100ms", "1h"),
    ("providers", "step_timeout", "100ms", "1h"),
    ("mailboxes", "deliver_within", "1s", "30d"),
    ("settings", "step_timeout", "100ms", "1h"),
    ("settings", "retention", "1h", "3650d"),
    ("settings", "webhook_timeout", "100ms", "5m"),
]


def _with_duration(section: str, field: str, value: object) -> dict[str, Any]:
    if section == "providers":
        return {"providers": [{"name": "p", "host": "h", field: value}]}
    if section == "mailboxes":
        return {"mailboxes": [{"name": "m", "address": "m@example.net", "kind": "maildir",
                               "path": "/tmp/m", field: value}]}
    return {"settings": {field: value}}


@pytest.mark.parametrize(("section", "field", "shortest", "longest"), _DURATION_BOUNDS)
def test_every_duration_has_bounds_checked_after_rounding(
    tmp_path: Path, section: str, field: str, shortest: str, longest: str
) -> None:
    key = f"{section}[0].{field}" if section != "settings" else f"settings.{field}"
    for value, problem in [
        (0.0000001, f"must be at least {shortest} (got 1e-07)"),  # rounds to 0 µs
        ("0s", f"must be at least {shortest} (got '0s')"),
        (-1, f"must be at least {shortest} (got -1)"),
        ("-1s", "expected a duration such as 30s, 5m or 2h, got '-1s'"),
        ("99999999999d", f"must be at most {longest} (got '99999999999d')"),  # overflows
        (10**400, f"must be at most {longest} (got {10**400})"),  # overflows a float
        (float("inf"), f"must be at most {longest} (got inf)"),
        (float("nan"), "expected a duration such as 30s, 5m or 2h, got nan"),
    ]:
        path = _write(tmp_path, _with_duration(section, field, value))
        assert _problem(path) == f"{key}: {problem}"
    for value in (shortest, longest):  # the bounds themselves are allowed
        load_config(_write(tmp_path, _with_duration(section, field, value)), env={})


def test_interval_below_a_microsecond_does_not_reach_the_scheduler(tmp_path: Path) -> None:
    path = _write(tmp_path, _with_duration("providers", "interval", "0.0000001s"))
    assert _problem(path) == "providers[0].interval: must be at least 1s (got '0.0000001s')"


@pytest.mark.parametrize("helo", ["mail.example.com", "localhost", "a-1.b2.example",
                                  "[192.0.2.1]", "[IPv6:2001:db8::1]"])
def test_valid_ehlo_names_are_accepted(tmp_path: Path, helo: str) -> None:
    path = _write(tmp_path, {"providers": [{"name": "p", "host": "h", "helo": helo}],
                             "settings": {"helo": helo}})
    config = load_config(path, env={})
    assert config.providers[0].helo == helo == config.settings.helo


@pytest.mark.parametrize("helo", ["probe example.com", "probe.example.com\r\n", "-x.example",
                                  "x-.example", "a..b", "under_score.example", "[192.0.2.300]",
                                  "[2001:db8::1]", "[IPv6:fe80::1%eth0]", "", "a" * 64])
def test_invalid_ehlo_names_are_refused(tmp_path: Path, helo: str) -> None:
    path = _write(tmp_path, {"providers": [{"name": "p", "host": "h", "helo": helo}]})
    assert _problem(path).startswith("providers[0].helo: must be a domain name")


@pytest.mark.parametrize("address", ["a b@example.com", "a@example.com\n", "<a@example.com>",
                                     "a@b@example.com", "@example.com", "a@", "a\x00@example.com",
                                     "a@example.com\u2028"])
def test_invalid_addresses_are_refused_in_from_to_and_mailboxes(
    tmp_path: Path, address: str
) -> None:
    provider = {"name": "p", "host": "h", "mode": "send", "from": address,
                "to": ["ok@example.net", address]}
    mailbox = {"name": "m", "address": address, "kind": "maildir", "path": "/tmp/m"}
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, {"providers": [provider], "mailboxes": [mailbox]}), env={})
    assert [path for path, _ in caught.value.problems] == [
        "providers[0].from", "providers[0].to[1]", "mailboxes[0].address"]


def test_hosts_refuse_whitespace_but_take_names_and_ip_addresses(tmp_path: Path) -> None:
    hosts = ["smtp.example.com", "127.0.0.1", "::1", "relay_1.internal"]
    config = load_config(_write(tmp_path, {"providers": [
        {"name": f"p{i}", "host": host} for i, host in enumerate(hosts)]}), env={})
    assert [p.host for p in config.providers] == hosts
    mailbox = {"name": "m", "address": "m@example.net", "kind": "imap", "host": "imap\tx",
               "username": "u", "password": "p"}
    assert _problem(_write(tmp_path, {"mailboxes": [mailbox]})) == (
        "mailboxes[0].host: must not contain spaces or control characters (got 'imap\\tx')")


def test_duplicate_key_names_its_mapping_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("settings:\n  retention: 30d\nsettings: {}\n")
    assert _problem(path) == "line 3, column 1: duplicate key 'settings'"


def test_port_from_the_environment_is_still_a_number(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('providers:\n  - {name: a, host: h, port: "${PORT}"}\n')
    assert load_config(path, env={"PORT": "2525"}).providers[0].port == 2525


@pytest.mark.parametrize(("field", "value"), [
    ("port", "${SECRET}"), ("interval", "${SECRET}"), ("helo", "${SECRET}"),
    ("host", "smtp ${SECRET}"), ("to", ["${SECRET}"]), ("tls", "${SECRET}"),
    ("ca_file", "/${SECRET}"),
])
def test_values_from_the_environment_are_never_echoed(
    tmp_path: Path, field: str, value: object
) -> None:
    path = _write(tmp_path, {"providers": [{"name": "p", "host": "h", field: value}]})
    problem = _problem(path, env={"SECRET": "SG.super secret"})  # invalid in every field
    assert problem.startswith("providers[0].")
    assert "supersecret" not in problem


def test_a_value_from_the_environment_keeps_a_message_that_does_not_show_it(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, {"providers": [{"name": "p", "host": "h", "port": "${SECRET}"}]})
    assert _problem(path, env={"SECRET": "SG.supersecret"}) == (
        "providers[0].port: Input should be a valid integer, unable to parse string as an integer")
    path = _write(tmp_path, {"providers": [{"name": "p", "host": "h", "interval": "${SECRET}"}]})
    assert _problem(path, env={"SECRET": "SG.supersecret"}) == (
        "providers[0].interval: invalid value (not shown: it comes from the environment)")
