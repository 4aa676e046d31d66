"""Authentication-Results fixtures (tests/fixtures/authres/) parsed into verdicts."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest

from monitor.receive.authresults import AuthResults, auth_results, verdicts_from
from monitor.receive.result import AuthVerdict as V

FIXTURES = Path(__file__).parents[2] / "fixtures" / "authres"


def headers(name: str) -> Message:
    return message_from_bytes((FIXTURES / name).read_bytes())


@pytest.mark.parametrize(("fixture", "authserv_id", "spf", "dkim", "dmarc"), [
    ("pass.eml", "mx.google.com", V.PASS, V.PASS, V.PASS),
    ("fail.eml", "mx.receiver.example", V.FAIL, V.FAIL, V.FAIL),
    ("softfail.eml", None, V.SOFTFAIL, V.NONE, V.NONE),  # Microsoft 365: no authserv-id
    ("none.eml", "mx.example.net", V.NONE, V.NONE, V.NONE),
    # Topmost header wins: the receiver's, not the relay's nor a forged one below.
    ("several-hosts.eml", "mx.receiver.example", V.SOFTFAIL, V.PASS, V.PASS),
    # One good DKIM signature is enough; temperror/permerror kept as they are.
    ("two-signatures.eml", "mx.example.net", V.TEMPERROR, V.PASS, V.PERMERROR),
    # RFC 4408-era "hardfail" is fail; an undefined DMARC result is no verdict.
    ("hardfail.eml", "legacy.example.net", V.FAIL, V.PASS, None),
])
def test_fixture_verdicts(fixture: str, authserv_id: str | None, spf: V | None, dkim: V | None,
                          dmarc: V | None) -> None:
    result = auth_results(headers(fixture))
    assert (result.authserv_id, result.spf, result.dkim, result.dmarc) == (
        authserv_id, spf, dkim, dmarc)


def test_configured_authserv_id_picks_that_hosts_header_only() -> None:
    several = headers("several-hosts.eml")
    assert auth_results(several, "relay.sender.example") == AuthResults(
        "relay.sender.example", V.PASS, V.PASS, V.PASS)
    assert auth_results(several, "FORGED.example") == AuthResults(
        "forged.example", V.NEUTRAL, V.POLICY, V.TEMPERROR)
    untrusted = auth_results(several, "mx.elsewhere.example")
    assert (untrusted.spf, untrusted.dkim, untrusted.dmarc) == (None, None, None)
    assert untrusted.note == "no Authentication-Results header from mx.elsewhere.example"


def test_anonymous_header_is_never_the_configured_host() -> None:
    assert auth_results(headers("softfail.eml"), "mx.example.net").spf is None
    assert auth_results(headers("softfail.eml")).note is not None


def test_malformed_and_missing_headers_are_notes_not_errors() -> None:
    malformed = auth_results(headers("malformed.eml"))
    assert (malformed.spf, malformed.dkim, malformed.dmarc) == (None, None, None)
    assert malformed.authserv_id == "mx.example.net"
    assert malformed.note is not None and malformed.note.startswith("unparseable")
    assert auth_results(headers("missing.eml")) == AuthResults(
        note="no Authentication-Results header")


def test_a_malformed_topmost_header_does_not_fall_through_to_an_upstream_one() -> None:
    result = verdicts_from(["mx.receiver.example; ;;;", "relay.example; spf=pass smtp.mailfrom=a"])
    assert result.spf is None and result.authserv_id == "mx.receiver.example"


def test_hostile_values_do_not_raise() -> None:
    for value in ["", ";", "(", "a; spf=", "x" * 100_000, "a; dkim=pass (unterminated",
                  "a; spf=pass smtp.mailfrom=\"unterminated"]:
        result = verdicts_from([value])
        assert isinstance(result, AuthResults)
