"""The receive side's diagnosis: missing, junk and late each say what to do next."""

from __future__ import annotations

from monitor.receive.diagnosis import diagnose_delivery


def test_delivery_not_seen_and_landed_in_junk() -> None:
    missing = diagnose_delivery("not seen in INBOX or Junk after 300s")
    assert missing.summary.startswith("Delivery check: the message was accepted by SMTP")
    assert "not seen in the mailbox before the deadline" in missing.summary
    assert "spam folder" in missing.action and "suppression list" in missing.action
    assert missing.retry
    junk = diagnose_delivery("landed in the junk folder 'Junk', not the inbox")
    assert "junk folder" in junk.summary and "SPF/DKIM/DMARC" in junk.action
    late = diagnose_delivery("arrived 4.0s after the deadline")
    assert "after the deadline" in late.summary and "deliver_within" in late.action
