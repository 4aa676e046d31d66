"""SPF findings (RFC 7208): the record, its `all`, and the whole include tree's limits.

The tree is walked as a receiver would evaluate it, without a connecting IP:
every include, a, mx, ptr and exists mechanism and the redirect modifier is one
of the 10 DNS lookups of §4.6.4, counted through every include; a lookup that
finds no record (NXDOMAIN or an empty answer) is one of the 2 void lookups.
Terms with macros (`%{i}`) depend on the sender and are counted but not
looked up. The walk is our own code rather than checkdmarc's: checkdmarc makes
its own DNS queries, and every posture query must go through the configured
resolver (settings.dns_server).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.posture.finding import Finding, error, info, warning
from monitor.posture.records import SPF_LOOKUP_LIMIT, SpfTerm, is_spf, parse_spf, spf_terms
from monitor.posture.resolver import Resolver

VOID_LIMIT = 2  # RFC 7208 §4.6.4
MX_LIMIT = 10  # address lookups per mx mechanism, §4.6.4
# Past this many lookups the walk stops: the verdict (over 10) is already certain.
WALK_LIMIT = 2 * SPF_LOOKUP_LIMIT
FIX_LOOKUPS = ("flatten includes into ip4:/ip6: ranges, or remove includes of services "
               "you no longer send through")


@dataclass
class _Walk:
    resolver: Resolver
    top: str
    lookups: int = 0
    voids: int = 0
    findings: list[Finding] = field(default_factory=list)
    void_names: list[str] = field(default_factory=list)


async def check(domain: str, resolver: Resolver) -> list[Finding]:
    """The findings about `domain`'s SPF record and everything it includes."""
    walk = _Walk(resolver, domain)
    record = await _visit(walk, domain, path=())
    if record is None:
        return walk.findings
    findings = walk.findings
    if walk.lookups > SPF_LOOKUP_LIMIT:
        findings.append(error(
            "spf.lookup_limit",
            f"SPF for {domain} needs {_count(walk)} DNS lookups, over the limit of "
            f"{SPF_LOOKUP_LIMIT} (RFC 7208 §4.6.4): receivers return permerror and SPF "
            f"fails for all its mail. Fix it, waiting will not help: {FIX_LOOKUPS}.",
            record))
    elif walk.lookups >= SPF_LOOKUP_LIMIT - 1:
        findings.append(warning(
            "spf.lookup_limit",
            f"SPF for {domain} needs {walk.lookups} of its {SPF_LOOKUP_LIMIT} DNS lookups "
            "(RFC 7208 §4.6.4): one more include, or a provider adding one to its own "
            f"record, makes SPF fail with permerror. Make room: {FIX_LOOKUPS}.", record))
    if walk.voids > VOID_LIMIT:
        findings.append(error(
            "spf.void_lookup_limit",
            f"SPF for {domain} makes {walk.voids} lookups that find nothing "
            f"({', '.join(walk.void_names)}), over the limit of {VOID_LIMIT} (RFC 7208 "
            "§4.6.4): receivers return permerror. Fix it: remove the mechanisms that "
            "name domains without records.", record))
    if not findings:
        findings.append(info(
            "spf.ok", f"SPF for {domain} is valid: {walk.lookups} of {SPF_LOOKUP_LIMIT} DNS "
            f"lookups, {walk.voids} of {VOID_LIMIT} void lookups. Nothing to change.",
            record))
    return findings


def _count(walk: _Walk) -> str:
    return f"more than {WALK_LIMIT}" if walk.lookups > WALK_LIMIT else str(walk.lookups)


async def _visit(walk: _Walk, domain: str, path: tuple[str, ...]) -> str | None:
    """Fetch and walk one record (the top or an included one); the record, if any."""
    top = not path
    strings, found = await walk.resolver.txt(domain)
    if found.error is not None:
        walk.findings.append(warning(
            "spf.lookup_failed",
            f"The SPF lookup for {domain} failed ({found.error}): receivers seeing the "
            "same get temperror and may defer or reject mail. Usually transient: wait "
            "and check again; if it persists, fix the domain's name servers.",
            subject=None if top else domain))
        return None
    records = [s for s in strings if is_spf(s)]
    if not records:
        if not found.records:
            _void(walk, domain)
        if top:
            walk.findings.append(error(
                "spf.missing",
                f"{domain} has no SPF record: receivers cannot tell its servers from "
                "forgers, and DMARC can pass only through DKIM. Fix it: publish a TXT record "
                f"such as \"v=spf1 include:<your provider> -all\" at {domain}."))
        else:
            walk.findings.append(error(
                "spf.include_unresolved",
                f"SPF for {walk.top} includes {domain} (via {' > '.join(path)}), which has "
                "no SPF record: receivers return permerror (RFC 7208 §5.2). Fix it: "
                "correct the include's name or remove it.", subject=domain))
        return None
    where = "" if top else f" (included by {path[-1]})"
    if len(records) > 1:
        walk.findings.append(error(
            "spf.multiple",
            f"{domain}{where} publishes {len(records)} SPF records: receivers return "
            "permerror and use none (RFC 7208 §4.5). Fix it: merge them into one record.",
            " | ".join(records), subject=None if top else domain))
        return None
    record = records[0]
    parsed = parse_spf(record)
    if not parsed.ok:
        walk.findings.append(error(
            "spf.syntax",
            f"The SPF record of {domain}{where} is not valid: {parsed.error}. Receivers "
            "return permerror, so SPF fails for all mail. Fix the record's syntax "
            "(RFC 7208 §12).", record, subject=None if top else domain))
        return None
    await _terms(walk, domain, record, spf_terms(record), (*path, domain))
    return record


async def _terms(walk: _Walk, domain: str, record: str, terms: list[SpfTerm],
                 path: tuple[str, ...]) -> None:
    top = len(path) == 1
    has_all = False
    redirect: str | None = None
    for term in terms:
        if walk.lookups > WALK_LIMIT:
            return
        if term.modifier:
            if term.name == "redirect":
                redirect = term.value
            continue
        if term.name == "all":
            has_all = True
            _all(walk, domain, record, term.qualifier, top)
        elif term.name == "include":
            walk.lookups += 1
            if "%" not in term.value:
                if term.value.lower() in path:
                    _loop(walk, domain, term.value, record)
                else:
                    await _visit(walk, term.value.lower(), path)
        elif term.name in ("a", "mx", "exists"):
            walk.lookups += 1
            await _target(walk, domain, term)
        elif term.name == "ptr":
            walk.lookups += 1
            walk.findings.append(warning(
                "spf.ptr",
                f"The SPF record of {domain} uses ptr, which RFC 7208 §5.5 says not to use: "
                "it is slow, and some receivers skip it, so it may not match. Replace it "
                "with ip4:/ip6: or a: mechanisms.", record, subject=domain))
    if redirect is not None and not has_all:  # §6.1: redirect applies only without `all`
        walk.lookups += 1
        if "%" not in redirect:
            if redirect.lower() in path:
                _loop(walk, domain, redirect, record)
            else:
                await _visit(walk, redirect.lower(), path)
    elif redirect is None and not has_all and top:
        walk.findings.append(warning(
            "spf.no_all",
            f"The SPF record of {domain} has no `all` and no redirect=, so mail from any "
            "other server gets neutral, not fail (RFC 7208 §4.7). Fix it: end the record "
            "with -all (or ~all while you check who sends for you).", record))


def _all(walk: _Walk, domain: str, record: str, qualifier: str, top: bool) -> None:
    if qualifier == "+":
        via = "" if top else f", included by {walk.top}'s record,"
        walk.findings.append(error(
            "spf.permissive_all",
            f"The SPF record of {domain}{via} ends in +all: every server on the internet "
            "passes SPF for it, so SPF protects nothing and spammers can use the domain. "
            "Fix it now: end the record with -all or ~all.", record,
            subject=None if top else domain))
    elif qualifier == "?" and top:
        walk.findings.append(warning(
            "spf.permissive_all",
            f"The SPF record of {domain} ends in ?all: other servers get neutral, which "
            "receivers treat like no SPF at all. Fix it: end the record with -all or "
            "~all.", record))


async def _target(walk: _Walk, domain: str, term: SpfTerm) -> None:
    """An a, mx or exists mechanism: its lookup, counting a void answer."""
    target = term.value.split("/", 1)[0] or domain
    if "%" in target:
        return  # a macro: the name depends on the sender
    rdtype = "MX" if term.name == "mx" else "A"
    found = await walk.resolver.query(target, rdtype)
    if found.error is not None:
        walk.findings.append(warning(
            "spf.lookup_failed",
            f"The {rdtype} lookup for {target} (the {term.name} mechanism in {domain}'s SPF) "
            f"failed ({found.error}): receivers get temperror. Usually transient: wait and "
            "check again.", subject=target))
    elif not found.records:
        _void(walk, target)
    elif term.name == "mx" and len(found.records) > MX_LIMIT:
        walk.findings.append(error(
            "spf.mx_limit",
            f"The mx mechanism in {domain}'s SPF finds {len(found.records)} MX hosts, over "
            f"the limit of {MX_LIMIT} (RFC 7208 §4.6.4): receivers return permerror. Fix "
            "it: list the sending servers with ip4:/ip6: instead of mx.", subject=target))


def _void(walk: _Walk, name: str) -> None:
    walk.voids += 1
    walk.void_names.append(name)


def _loop(walk: _Walk, domain: str, target: str, record: str) -> None:
    walk.lookups = max(walk.lookups, SPF_LOOKUP_LIMIT + 1)  # receivers loop to the limit
    walk.findings.append(error(
        "spf.include_loop",
        f"The SPF record of {domain} includes {target}, which leads back to itself: "
        "receivers follow it until the 10-lookup limit and return permerror. Fix it: "
        "remove the include that closes the loop.", record, subject=target.lower()))
