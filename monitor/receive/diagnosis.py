"""What a late, missing or junk-filed test message means, and what to do about it.

The receive side's counterpart of the probe's SMTP diagnosis: one line on what
happened, one on the next step, in the seed reference's style.
"""

from __future__ import annotations

import re

from monitor.results import Diagnosis, FailureClass

_MISSING = ("the message was accepted by SMTP but not seen in the mailbox before the deadline",
            "check the spam folder, the provider's suppression list and the recipient "
            "domain's MX; retry")
_RULES: tuple[tuple[str, str, str], ...] = (
    (r"(?<!not )(?:landed|found|arrived|seen|delivered) in (?:the )?(?:junk|spam)",
     "the test message landed in the junk folder, not the inbox",
     "check SPF/DKIM/DMARC alignment, content and the sending IP's reputation; retry"),
    (r"after the deadline", "the test message arrived, but after the deadline (deliver_within)",
     "read its Received chain for the hop that held it (greylisting, a queue); raise "
     "deliver_within if that delay is normal for this route"),
)


def diagnose_delivery(text: str) -> Diagnosis:
    """From the receive result's error text ("landed in the junk folder…", "not seen…")."""
    low = text.lower()
    meaning, action = next(((m, a) for pattern, m, a in _RULES if re.search(pattern, low)),
                           _MISSING)
    return Diagnosis(summary=f"Delivery check: {meaning}", action=action,
                     retry=FailureClass.DELIVERY.retryable)
