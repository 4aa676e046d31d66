"""MTA-STS findings (RFC 8461): the `_mta-sts` TXT record, the policy it announces,
fetched over HTTPS from `mta-sts.<domain>`, and whether the domain's MX hosts match it.

The policy host's address comes from our resolver (settings.dns_server), not the
system's: httpx is given the address and the name travels as SNI and Host, so the
certificate is still verified against `mta-sts.<domain>`. `PolicyFetch` holds the
port and the CA to trust (tests serve a policy on loopback with a test CA).
Redirects are not followed (§3.3).
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from dataclasses import dataclass

import httpx

from monitor.posture.finding import Finding, error, info, warning
from monitor.posture.resolver import Resolver
from monitor.posture.tags import parse_tags

POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_POLICY_BYTES = 64 * 1024  # §3.3: senders may refuse larger policies
MAX_AGE_LIMIT = 31557600  # §3.2
SHORT_MAX_AGE = 86400  # under a day, a policy barely outlives a DNS change (§3.2: weeks)
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


@dataclass(frozen=True)
class PolicyFetch:
    """How the policy is fetched: HTTPS on `port`, trusting `verify` (True: the system's
    CAs; a path or an SSLContext: those)."""

    port: int = 443
    verify: ssl.SSLContext | str | bool = True
    timeout: float = 10.0


@dataclass(frozen=True)
class Policy:
    mode: str
    max_age: int
    mx: tuple[str, ...]


async def check(domain: str, resolver: Resolver, mx_hosts: list[str],
                fetch: PolicyFetch | None = None) -> list[Finding]:
    name = f"_mta-sts.{domain}"
    strings, found = await resolver.txt(name)
    if found.error is not None:
        return [warning("mta_sts.lookup_failed",
                        f"The MTA-STS lookup at {name} failed ({found.error}). Usually "
                        "transient: wait and check again.")]
    records = [s for s in strings if s.replace(" ", "").startswith("v=STSv1")]
    if not records:
        return [warning(
            "mta_sts.missing",
            f"{domain} has no MTA-STS record at {name}: senders may deliver to it without "
            "TLS or to a forged MX, and an attacker on the path can downgrade them. Fix it: "
            f"publish a policy at https://mta-sts.{domain}{POLICY_PATH} and "
            f"\"v=STSv1; id=<date>\" at {name} (RFC 8461 §3).")]
    record = records[0]
    tags = parse_tags(record)
    if len(records) > 1 or isinstance(tags, str) or not _ID.match(tags.get("id", "")):
        why = (f"{len(records)} records" if len(records) > 1 else tags if isinstance(tags, str)
               else "id= must be 1 to 32 letters and digits")
        return [error("mta_sts.record_invalid",
                      f"The MTA-STS record at {name} is not valid: {why}. Senders ignore the "
                      "policy. Fix the record (RFC 8461 §3.1).", " | ".join(records))]
    host = f"mta-sts.{domain}"
    body = await _fetch(host, resolver, fetch or PolicyFetch())
    if isinstance(body, Finding):
        return [body]
    policy = parse_policy(body)
    url = f"https://{host}{POLICY_PATH}"
    if isinstance(policy, str):
        return [error("mta_sts.policy_invalid",
                      f"The MTA-STS policy at {url} is not valid: {policy}. Senders treat "
                      "the domain as having no policy. Fix the policy file (RFC 8461 §3.2).",
                      _one_line(body))]
    return _judge(domain, url, policy, mx_hosts, _one_line(body))


def _one_line(body: str) -> str:
    return "; ".join(line.strip() for line in body.splitlines() if line.strip())[:500]


def _judge(domain: str, url: str, policy: Policy, mx_hosts: list[str],
           record: str) -> list[Finding]:
    findings: list[Finding] = []
    if policy.mode == "testing":
        findings.append(warning(
            "mta_sts.mode_testing",
            f"The MTA-STS policy of {domain} is mode: testing: senders report TLS failures "
            "but still deliver without TLS. Fix it once TLS reports are clean: set mode: "
            f"enforce in {url}.", record))
    elif policy.mode == "none":
        findings.append(warning(
            "mta_sts.mode_none",
            f"The MTA-STS policy of {domain} is mode: none: it is being withdrawn and "
            f"protects nothing. Set mode: enforce in {url}, or remove the record.", record))
    if policy.max_age < SHORT_MAX_AGE and policy.mode != "none":
        findings.append(warning(
            "mta_sts.max_age_short",
            f"The MTA-STS policy of {domain} has max_age: {policy.max_age}, under a day: "
            "senders forget it quickly, so a downgrade works after a short outage. Fix it: "
            f"use weeks (max_age: 1209600 or more) in {url} (RFC 8461 §3.2).", record))
    uncovered = [h for h in mx_hosts if not any(mx_matches(p, h) for p in policy.mx)]
    if uncovered and policy.mode != "none":
        make = error if policy.mode == "enforce" else warning
        effect = ("senders that honour MTA-STS refuse to deliver to them"
                  if policy.mode == "enforce" else "senders report a failure for each message")
        findings.append(make(
            "mta_sts.mx_mismatch",
            f"The MX host{'s' if len(uncovered) > 1 else ''} {', '.join(uncovered)} of "
            f"{domain} {'are' if len(uncovered) > 1 else 'is'} not in the MTA-STS policy's mx: "
            f"lines ({', '.join(policy.mx)}): {effect}. Fix it: add them to {url} and change "
            "the id= of the _mta-sts record.", record))
    if not findings:
        findings.append(info("mta_sts.ok",
                             f"{domain} enforces MTA-STS ({url}, max_age {policy.max_age}) and "
                             "every MX host matches it. Nothing to change.", record))
    return findings


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: exact, or `*.` matching exactly one leftmost label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:]
    return pattern == host


def parse_policy(body: str) -> Policy | str:
    """RFC 8461 §3.2 `key: value` lines; a string saying what is wrong."""
    fields: dict[str, list[str]] = {}
    for line in body.splitlines():
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon:
            return f"line {line.strip()[:60]!r} is not key: value"
        fields.setdefault(key.strip().lower(), []).append(value.strip())
    if fields.get("version") != ["STSv1"]:
        return "version: STSv1 is missing"
    mode = (fields.get("mode") or [""])[0]
    if mode not in ("enforce", "testing", "none"):
        return f"mode: {mode or '(missing)'} is not enforce, testing or none"
    age = (fields.get("max_age") or [""])[0]
    if not age.isdigit() or int(age) > MAX_AGE_LIMIT:
        return f"max_age: {age or '(missing)'} is not 0 to {MAX_AGE_LIMIT} seconds"
    mx = tuple(fields.get("mx", ()))
    if not mx and mode != "none":
        return "no mx: lines"
    return Policy(mode=mode, max_age=int(age), mx=mx)


async def _fetch(host: str, resolver: Resolver, fetch: PolicyFetch) -> str | Finding:
    url = f"https://{host}{POLICY_PATH}"
    address = await resolver.query(host, "A")
    if not address.records:
        address = await resolver.query(host, "AAAA")
    if not address.records:
        return error("mta_sts.policy_unreachable",
                     f"{host} has no address ({address.error or address.missing}), so the "
                     "policy the _mta-sts record announces cannot be fetched: senders treat "
                     f"the domain as having none. Fix it: serve the policy at {url}.")
    ip = ipaddress.ip_address(str(address.records[0]))
    where = f"[{ip}]" if ip.version == 6 else str(ip)
    try:
        async with httpx.AsyncClient(verify=fetch.verify, timeout=fetch.timeout,
                                     follow_redirects=False) as client, client.stream(
                "GET", f"https://{where}:{fetch.port}{POLICY_PATH}",
                headers={"Host": host}, extensions={"sni_hostname": host}) as response:
            if response.status_code != 200:
                return error("mta_sts.policy_unreachable",
                             f"{url} answered HTTP {response.status_code}, not 200: senders "
                             "treat the domain as having no policy (RFC 8461 §3.3 follows "
                             "no redirects). Fix it: serve the policy file there.")
            data = b""
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > MAX_POLICY_BYTES:
                    return error("mta_sts.policy_invalid",
                                 f"{url} is larger than {MAX_POLICY_BYTES} bytes: senders "
                                 "may refuse it. Fix the policy file.")
    except httpx.ConnectError as exc:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return error("mta_sts.certificate_invalid",
                         f"The certificate of {host} does not verify ({_reason(text)}): senders "
                         "fetch no policy, so MTA-STS protects nothing. Fix it: renew or "
                         f"replace the certificate of {host} (RFC 8461 §3.3).")
        return error("mta_sts.policy_unreachable",
                     f"{url} could not be fetched ({text or type(exc).__name__}): senders treat "
                     "the domain as having no policy. Fix the web server, or wait if it is a "
                     "short outage.")
    except httpx.HTTPError as exc:
        return error("mta_sts.policy_unreachable",
                     f"{url} could not be fetched ({type(exc).__name__}: {exc}): senders treat "
                     "the domain as having no policy. Fix the web server, or wait if it is a "
                     "short outage.")
    return data.decode("utf-8", "replace")


def _reason(text: str) -> str:
    """`certificate has expired` out of OpenSSL's `[SSL: ...] certificate verify failed:
    certificate has expired (_ssl.c:1006)`."""
    tail = text.rpartition("certificate verify failed:")[2] or text
    return tail.split("(_ssl.c")[0].strip() or text
