"""What reaches a terminal: text a server sent is shown, never obeyed.

Every command applies `terminal_safe` to human-readable output that carries text from
a server (SMTP replies, certificate fields, DNS records, webhook headers, event data).
JSON output is left exact: its consumers are programs, and `json` escapes C0 controls.
"""

from __future__ import annotations

import re

# C0 controls but newline, DEL, C1 controls, and the bidi overrides/isolates that
# reorder what a terminal shows (CVE-2021-42574).
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Server text is untrusted: ESC, NUL and friends are shown, not obeyed."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text)
