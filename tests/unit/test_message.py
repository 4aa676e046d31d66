"""The test message: valid RFC 5322, unique token in header and body, template reuse safe."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime

from monitor.probe.message import TOKEN_HEADER, MessageSpec, build_message, new_token

SPEC = MessageSpec(sender="probe@example.com", recipients=("a@example.net", "b@example.net"),
                   subject="Delivery Monitor probe")


def parse(wire: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(wire, policy=policy.default)


def test_message_is_rfc5322_with_token() -> None:
    token, now = new_token(), datetime(2026, 11, 29, 9, 5, 7, tzinfo=UTC)
    wire, message_id = build_message(SPEC, token=token, now=now, helo="h.example")
    assert b"\r\n" in wire and b"\n" not in wire.replace(b"\r\n", b"")
    msg = parse(wire)
    assert parsedate_to_datetime(msg["Date"]) == now
    assert msg["Message-ID"] == message_id == f"<{token}@example.com>"
    assert msg["From"] == "probe@example.com"
    assert msg["To"] == "a@example.net, b@example.net"
    assert msg["Subject"] == "Delivery Monitor probe"
    assert msg[TOKEN_HEADER] == token
    assert token in msg.get_content()
    assert "x" * 24 not in wire.decode()


def test_each_send_gets_its_own_token_and_date_from_one_template() -> None:
    first = build_message(SPEC, token=new_token(), now=datetime(2026, 1, 2, tzinfo=UTC),
                          helo="h")[0]
    second_token = new_token()
    second = build_message(SPEC, token=second_token, now=datetime(2026, 12, 31, tzinfo=UTC),
                           helo="h")[0]
    assert first != second
    assert parse(second)[TOKEN_HEADER] == second_token
    assert parsedate_to_datetime(parse(second)["Date"]).month == 12


def test_campaign_content_with_html_and_unicode_subject() -> None:
    spec = MessageSpec(sender="news@shop.example", recipients=("seed@example.net",),
                       subject="Soldes d'hiver — jusqu'à -50 %", text="Bonjour !",
                       html="<p>Bonjour <b>!</b></p>")
    token = new_token()
    msg = parse(build_message(spec, token=token, now=datetime.now(UTC), helo="h")[0])
    assert msg["Subject"] == "Soldes d'hiver — jusqu'à -50 %"
    assert msg.get_content_type() == "multipart/alternative"
    html = msg.get_body(("html",))
    assert html is not None and "<b>!</b>" in html.get_content()
    assert token in html.get_content()


def test_token_is_in_both_bodies_whatever_encoding_the_content_needs() -> None:
    long_line = "Привет! Зимняя распродажа — скидки до 50 % на всё. " * 12  # ~600 chars
    specs = [
        MessageSpec(sender="news@shop.example", recipients=("seed@example.net",),
                    subject="Распродажа", text=long_line + "\n" + long_line,
                    html=f"<p>{long_line}</p><p>{long_line}</p>"),
        MessageSpec(sender="news@shop.example", recipients=("seed@example.net",),
                    subject="Sale", text="Plain ASCII.\n" + "x = 1; " * 40,
                    html="<p>Plain ASCII</p>"),
        SPEC,
    ]
    for spec in specs:
        token = new_token()
        wire = build_message(spec, token=token, now=datetime.now(UTC), helo="h")[0]
        msg = parse(wire)
        assert msg[TOKEN_HEADER] == token
        assert msg["Message-ID"] == f"<{token}@{spec.sender.rpartition('@')[2]}>"
        parts = [msg.get_body(("plain",)), *([msg.get_body(("html",))] if spec.html else [])]
        for part in parts:
            assert part is not None
            content = part.get_content()
            assert f"Delivery Monitor token: {token}" in content
            assert "x" * 24 not in content
        text = msg.get_body(("plain",))
        assert text is not None
        assert spec.text.rstrip() in text.get_content().replace("\r\n", "\n")
        assert "x" * 24 not in wire.decode("ascii")  # and the wire is 7-bit clean


def test_the_template_cache_is_bounded_by_bytes_not_entries() -> None:
    from monitor.probe import message as module

    module._templates.clear()
    html = "<p>" + "campaign " * 100_000 + "</p>"  # ~900 KB, as a real campaign may be
    for i in range(30):
        spec = MessageSpec(sender="p@example.test", recipients=("s@example.test",),
                           subject=f"campaign {i}", html=html)
        build_message(spec, token=new_token(), now=datetime(2026, 1, 1, tzinfo=UTC),
                      helo="h.test")
    assert module._templates.currsize <= module.TEMPLATE_CACHE_BYTES
    assert 0 < len(module._templates) < 30
    # An entry is still reused: the same spec builds no new template.
    before = module._templates.currsize
    build_message(spec, token=new_token(), now=datetime(2026, 1, 1, tzinfo=UTC), helo="h.test")
    assert module._templates.currsize == before
