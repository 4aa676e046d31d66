"""SPF, DKIM and DMARC verdicts from `Authentication-Results` (RFC 8601).

Parsing uses `authres` (Apache-2.0, the parser of the dkimpy/pyspf family,
packaged by Debian; its grammar is RFC 8601's and has not needed changes).

Which header to believe (RFC 8601 §5, §7.1): anyone upstream can write an
Authentication-Results header, so only the one added by the receiving host
counts. With a configured authserv-id (e.g. "mx.google.com") the topmost
header carrying that id is used and all others are ignored. Without one the
topmost header is used — receiving hosts prepend theirs, so it is the
receiver's when the receiver adds one at all; a receiver that adds none makes
an upstream header look trusted, which is why configuring the id is better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any

import authres

from monitor.receive.result import AuthVerdict

HEADER = "Authentication-Results"
# RFC 7208 §2.6 names "fail"; some hosts still write RFC 4408-era "hardfail".
_ALIASES = {"hardfail": AuthVerdict.FAIL}
_PLACEHOLDER = "authserv-id.invalid"


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str | None = None
    spf: AuthVerdict | None = None
    dkim: AuthVerdict | None = None
    dmarc: AuthVerdict | None = None
    note: str | None = None


def auth_results(headers: Message, authserv_id: str | None = None) -> AuthResults:
    """Verdicts from the trusted Authentication-Results header of a message."""
    return verdicts_from([str(v) for v in headers.get_all(HEADER) or []], authserv_id)


def verdicts_from(values: Sequence[str], authserv_id: str | None = None) -> AuthResults:
    """`values` top to bottom, as they appear in the message."""
    if not values:
        return AuthResults(note="no Authentication-Results header")
    if authserv_id is None:
        return _verdicts(values[0])
    wanted = authserv_id.strip().lower()
    for value in values:
        if _authserv_id_of(value).lower() == wanted:
            return _verdicts(value)
    return AuthResults(note=f"no Authentication-Results header from {authserv_id}")


def _verdicts(value: str) -> AuthResults:
    unfolded = " ".join(value.split())
    anonymous = _authserv_id_of(value) == ""
    if anonymous:
        # Microsoft 365 writes no authserv-id ("spf=pass (sender IP is …) …"); parse the
        # rest behind a placeholder rather than reject the whole header.
        unfolded = f"{_PLACEHOLDER}; {unfolded}"
    try:
        header: Any = authres.AuthenticationResultsHeader.parse_value(unfolded)
    except authres.AuthResError as exc:
        return AuthResults(authserv_id=_authserv_id_of(value) or None,
                           note=f"unparseable Authentication-Results: {exc}")
    if anonymous:
        header.authserv_id = None
    by_method: dict[str, list[str]] = {}
    for result in header.results:
        by_method.setdefault(str(result.method).lower(), []).append(str(result.result).lower())
    note = "Authentication-Results without an authserv-id" if anonymous else None
    if not header.results:  # "authserv-id; none": no method was applied (RFC 8601 §2.2)
        none = AuthVerdict.NONE
        return AuthResults(header.authserv_id, spf=none, dkim=none, dmarc=none, note=note)
    return AuthResults(authserv_id=header.authserv_id,
                       spf=_verdict(by_method.get("spf")),
                       dkim=_verdict(by_method.get("dkim")),
                       dmarc=_verdict(by_method.get("dmarc")), note=note)


def _verdict(results: list[str] | None) -> AuthVerdict | None:
    """One verdict per method: any pass wins (one good DKIM signature is enough)."""
    if not results:
        return None
    chosen = "pass" if "pass" in results else results[0]
    if chosen in _ALIASES:
        return _ALIASES[chosen]
    try:
        return AuthVerdict(chosen)
    except ValueError:
        return None  # a result RFC 8601 does not define for this method


def _authserv_id_of(value: str) -> str:
    """The authserv-id even when the rest does not parse: the text before ';'.

    "" when there is none: the first item is already a result ("spf=pass").
    """
    head = value.split(";", 1)[0].strip()
    # A version may follow the id ("example.org 1"), and a comment may too.
    first = head.split()[0] if head else ""
    return "" if "=" in first else first
