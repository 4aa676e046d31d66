"""Parsing SPF (RFC 7208) and DMARC (RFC 7489) records: pure functions, no DNS.

SPF is checked for syntax only (RFC 7208 §4.6, §5, §6): every term must be a
known mechanism with a well-formed argument or a `name=value` modifier.
Unknown modifiers are allowed, as §6 requires receivers to ignore them; they
come back as warnings. `lookup_terms` counts the 10-lookup limit (§4.6.4) on
this record only, a lower bound; monitor/posture/spf.py counts it through every
include and redirect.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from monitor.posture.tags import parse_tags

SPF_PREFIX = "v=spf1"
DMARC_PREFIX = "v=DMARC1"
SPF_LOOKUP_LIMIT = 10

_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})
_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)=(.*)$")
_MECHANISM = re.compile(r"^([+\-~?]?)([A-Za-z][A-Za-z0-9_.-]*)(.*)$")
# RFC 7208 §7.1: macro-expand or visible characters; a domain-spec has no spaces.
_DOMAIN_SPEC = re.compile(r"^[!-~]+$")
_CIDR = re.compile(r"^(?:/(\d{1,2}))?(?://(\d{1,3}))?$")
DMARC_POLICIES = ("none", "quarantine", "reject")


def is_spf(text: str) -> bool:
    """RFC 7208 §4.5: exactly "v=spf1", then a space or the end of the record."""
    head = text[:len(SPF_PREFIX)].lower()
    return head == SPF_PREFIX and (len(text) == len(SPF_PREFIX) or text[len(SPF_PREFIX)] == " ")


def is_dmarc(text: str) -> bool:
    """RFC 7489 §6.6.3: the record starts with the v=DMARC1 tag."""
    first = text.split(";", 1)[0].replace(" ", "").replace("\t", "")
    return first == DMARC_PREFIX


@dataclass(frozen=True)
class SpfParse:
    ok: bool
    error: str | None = None
    all_qualifier: str | None = None
    lookup_terms: int = 0
    warnings: tuple[str, ...] = ()


def parse_spf(record: str) -> SpfParse:
    """Syntax-check one SPF record; `error` names the first bad term."""
    terms = record.split()
    if not terms or terms[0].lower() != SPF_PREFIX:
        return SpfParse(ok=False, error=f"does not start with {SPF_PREFIX}")
    all_qualifier: str | None = None
    lookups = 0
    seen_modifiers: set[str] = set()
    warnings: list[str] = []
    for term in terms[1:]:
        modifier = _MODIFIER.match(term)
        if modifier is not None:
            name, value = modifier.group(1).lower(), modifier.group(2)
            if name in ("redirect", "exp"):
                if name in seen_modifiers:  # §6: each may appear at most once
                    return SpfParse(ok=False, error=f"modifier {name}= appears twice")
                if not _DOMAIN_SPEC.match(value):
                    return SpfParse(ok=False, error=f"{name}= has no valid domain")
                seen_modifiers.add(name)
                lookups += name == "redirect"
            else:
                warnings.append(f"unknown SPF modifier {name}= (ignored by receivers)")
            continue
        error = _mechanism_error(term)
        if error is not None:
            return SpfParse(ok=False, error=error)
        match = _MECHANISM.match(term)
        assert match is not None  # _mechanism_error accepted it
        qualifier, name = match.group(1) or "+", match.group(2).lower()
        lookups += name in _LOOKUP_TERMS
        if name == "all" and all_qualifier is None:
            all_qualifier = qualifier
    if all_qualifier is not None and "redirect" in seen_modifiers:
        warnings.append("redirect= is ignored because the record has an `all` mechanism")
    return SpfParse(ok=True, all_qualifier=all_qualifier, lookup_terms=lookups,
                    warnings=tuple(warnings))


@dataclass(frozen=True)
class SpfTerm:
    """One term of a parseable record: a mechanism (qualifier, name, argument after
    `:` or `/`) or a modifier (`name=value`, qualifier empty)."""

    name: str
    value: str
    qualifier: str = ""
    modifier: bool = False


def spf_terms(record: str) -> list[SpfTerm]:
    """The terms of a record `parse_spf` accepted, in order, names lowercased."""
    out = []
    for term in record.split()[1:]:
        modifier = _MODIFIER.match(term)
        if modifier is not None:
            out.append(SpfTerm(modifier.group(1).lower(), modifier.group(2), modifier=True))
            continue
        match = _MECHANISM.match(term)
        if match is not None:
            out.append(SpfTerm(match.group(2).lower(), match.group(3).removeprefix(":"),
                               match.group(1) or "+"))
    return out


def _mechanism_error(term: str) -> str | None:
    match = _MECHANISM.match(term)
    if match is None:
        return f"term {term!r} is neither a mechanism nor a modifier"
    name, rest = match.group(2).lower(), match.group(3)
    if name not in _MECHANISMS:
        return f"unknown mechanism {match.group(2)!r}"
    if name == "all":
        return None if rest == "" else f"`all` takes no argument: {term!r}"
    if name in ("include", "exists"):
        if not rest.startswith(":") or not _DOMAIN_SPEC.match(rest[1:]):
            return f"{name} needs :domain: {term!r}"
        return None
    if name == "ptr":
        return None if rest == "" or (rest.startswith(":") and _DOMAIN_SPEC.match(rest[1:])) \
            else f"bad ptr argument: {term!r}"
    if name in ("a", "mx"):
        domain, slash, cidr = rest.partition("/")
        if domain and not (domain.startswith(":") and _DOMAIN_SPEC.match(domain[1:])):
            return f"bad {name} argument: {term!r}"
        found = _CIDR.match(slash + cidr)
        if found is None or int(found.group(1) or 0) > 32 or int(found.group(2) or 0) > 128:
            return f"bad {name} prefix length: {term!r}"
        return None
    # ip4 / ip6
    if not rest.startswith(":"):
        return f"{name} needs an address: {term!r}"
    try:
        network = ipaddress.ip_network(rest[1:], strict=False)
    except ValueError:
        return f"bad {name} address: {term!r}"
    if network.version != (4 if name == "ip4" else 6):
        return f"{name} has an IPv{network.version} address: {term!r}"
    return None


@dataclass(frozen=True)
class DmarcParse:
    valid: bool
    error: str | None = None
    policy: str | None = None
    subdomain_policy: str | None = None
    pct: int | None = None
    rua: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)


def parse_dmarc(record: str) -> DmarcParse:
    """Tags of a DMARC record (RFC 7489 §6.3); unknown tags are ignored, as required."""
    tags = parse_tags(record)
    if isinstance(tags, str):
        return DmarcParse(valid=False, error=tags)
    if tags.get("v") != "DMARC1":
        return DmarcParse(valid=False, error=f"does not start with {DMARC_PREFIX}", tags=tags)
    policy = tags.get("p", "").lower() or None
    subdomain = tags.get("sp", "").lower() or None
    rua = tuple(u.strip() for u in tags.get("rua", "").split(",") if u.strip())
    pct = None
    error = None
    if policy not in DMARC_POLICIES:
        # §6.6.3 reads such a record as p=none when rua= is valid; a check reports it
        # as invalid instead, since the sender can and should fix it.
        error = ("no p= tag" if policy is None else f"p={policy} is not one of "
                 f"{', '.join(DMARC_POLICIES)}")
    elif subdomain is not None and subdomain not in DMARC_POLICIES:
        error = f"sp={subdomain} is not one of {', '.join(DMARC_POLICIES)}"
    if "pct" in tags:
        if tags["pct"].isdigit() and 0 <= int(tags["pct"]) <= 100:
            pct = int(tags["pct"])
        else:
            error = error or f"pct={tags['pct']} is not an integer from 0 to 100"
    return DmarcParse(valid=error is None, error=error, policy=policy,
                      subdomain_policy=subdomain, pct=pct, rua=rua, tags=tags)
