"""Config loading: every kind of bad file is a fixture with its exact message."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import ConfigError, ProbeMode, TlsMode, load_config

FIXTURES = Path(__file__).parents[1] / "fixtures" / "config"
EXAMPLE = Path(__file__).parents[2] / "config" / "monitor.yaml"
EXAMPLE_ENV = {"SENDGRID_API_KEY": "SG.secret", "SEED_PASSWORD": "pw",
               "PD_ROUTING_KEY": "R0UT1NG",
               "OPS_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
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
    path.write_text('providers:\n  - {name: a, host: "${H}"}\n')
    config = load_config(path, env={"H": "x\nmode: send"})
    assert config.providers[0].host == "x\nmode: send"
    assert config.providers[0].mode is ProbeMode.CONNECT


def test_dollar_escape(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('providers:\n  - {name: a, host: h, subject: "costs $${PRICE}"}\n')
    assert load_config(path, env={}).providers[0].subject == "costs ${PRICE}"
