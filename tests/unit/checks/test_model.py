"""CheckRequest validation: header injection, address syntax, sizes, unknown fields."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from monitor.checks.model import MAX_BODY_BYTES, CheckRequest


def request(**fields: Any) -> CheckRequest:
    body: dict[str, Any] = {"provider": "relay", "from": "news@example.com",
                            "seeds": ["seed-1"]}
    body.update(fields)
    return CheckRequest.model_validate(body)


def error_of(**fields: Any) -> str:
    with pytest.raises(ValidationError) as info:
        request(**fields)
    return str(info.value)


def test_a_plain_request_is_accepted_with_from_or_sender() -> None:
    r = request(subject="May newsletter", text="hi", html="<p>hi</p>")
    assert (r.sender, r.seeds, r.subject) == ("news@example.com", ["seed-1"], "May newsletter")
    assert CheckRequest(provider="relay", sender="a@b.example", seeds=["s"]).sender == \
        "a@b.example"
    assert r.model_dump(by_alias=True)["from"] == "news@example.com"


@pytest.mark.parametrize("subject", [
    "Hello\r\nBcc: victim@example.org", "Hello\nBcc: x@y.z", "Hello\rX: y", "nul\x00here",
    "line\u2028separator", "vertical\x0btab",
])
def test_header_injection_in_subject_is_refused(subject: str) -> None:
    assert "header injection" in error_of(subject=subject)


@pytest.mark.parametrize("sender", [
    "news@example.com\r\nBcc: victim@example.org", "news@example.com\n", "a\rb@example.com",
    "news@example.com\x00",
])
def test_header_injection_in_from_is_refused(sender: str) -> None:
    message = error_of(**{"from": sender})
    assert "from" in message and "header injection" in message


@pytest.mark.parametrize(("sender", "why"), [
    ("no-at-sign", "local@domain"),
    ("@example.com", "local@domain"),
    ("news@", "local@domain"),
    ("two@@example.com", "invalid local part"),
    ("a b@example.com", "invalid local part"),
    ("news@localhost", "invalid domain"),
    ("news@exa_mple.com", "invalid domain"),
    ("news@-example.com", "invalid domain"),
    ('"quoted"@example.com', "invalid local part"),
    ("news@example.com>", "invalid domain"),
    ("x" * 65 + "@example.com", "invalid local part"),
])
def test_bad_addresses_are_refused(sender: str, why: str) -> None:
    assert why in error_of(**{"from": sender})


def test_unknown_fields_are_refused() -> None:
    assert "Extra inputs are not permitted" in error_of(bcc=["x@example.org"])


def test_seed_count_and_uniqueness() -> None:
    assert "at least 1" in error_of(seeds=[])
    assert "at most 50" in error_of(seeds=[f"s{i}" for i in range(51)])
    assert "more than once: a" in error_of(seeds=["a", "b", "a"])
    assert request(seeds=[f"s{i}" for i in range(50)]).seeds[-1] == "s49"
    assert "pattern" in error_of(seeds=["bad name\r\n"])


def test_body_size_and_nul_limits() -> None:
    assert request(html="x" * MAX_BODY_BYTES).html is not None
    assert "larger than" in error_of(html="x" * (MAX_BODY_BYTES + 1))
    # Counted in UTF-8 bytes, not characters.
    assert "larger than" in error_of(text="é" * (MAX_BODY_BYTES // 2 + 1))
    assert "NUL" in error_of(text="a\x00b")
    # Line breaks are fine in bodies: only headers are line-sensitive.
    assert request(text="line 1\r\nline 2\n").text == "line 1\r\nline 2\n"


def test_subject_length_limit() -> None:
    assert "at most 998" in error_of(subject="x" * 999)
