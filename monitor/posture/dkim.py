"""DKIM findings from the seed message actually received: the signature verified by
us (dkimpy), the key's type and length, and alignment with the From domain.

dkimpy looks keys up through a `dnsfunc`. It calls it synchronously, so the key
records are fetched first through our resolver (settings.dns_server) and dkimpy
is handed a function that answers from them: no DNS of its own, no blocking.
Keys are accepted down to 512 bits here (`minkey`) so that a short key is
reported as such rather than as a failed signature.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

import dkim
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from monitor.posture.dmarc import organizational_domain
from monitor.posture.finding import Finding, error, info, warning
from monitor.posture.received import from_domain, headers
from monitor.posture.resolver import Resolver
from monitor.posture.tags import parse_tags

MIN_RSA = 1024  # RFC 8301 §3.2: verifiers must refuse shorter keys
GOOD_RSA = 2048  # what RFC 8301 §3.2 says signers should use
MAX_SIGNATURES = 5  # a hostile message may carry hundreds


async def check(raw: bytes, resolver: Resolver) -> list[Finding]:
    message = headers(raw)
    signatures = (message.get_all("DKIM-Signature") or [])[:MAX_SIGNATURES]
    author = from_domain(raw)
    if not signatures:
        # A warning, not an error: DMARC still passes through aligned SPF, and mail is
        # delivered; bulk senders to Gmail and Yahoo need DKIM all the same.
        return [warning("dkim.unsigned",
                        f"The seed message from {author or 'the sender'} carries no DKIM "
                        "signature: DMARC can pass only through SPF, which breaks on "
                        "forwarding, and Gmail and Yahoo require DKIM from bulk senders. Fix "
                        "it: enable DKIM signing for the domain at the provider and publish "
                        "its key.")]
    keys: dict[bytes, bytes] = {}
    findings: list[Finding] = []
    for index, value in enumerate(signatures):
        findings += await _signature(raw, index, str(value), author, resolver, keys)
    valid_unaligned = not any(f.id == "dkim.ok" or f.severity.value == "error"
                              for f in findings)
    if author and valid_unaligned:
        findings.append(warning(
            "dkim.not_aligned",
            f"No valid DKIM signature on the seed message is aligned with its From domain "
            f"{author}: DMARC cannot pass through DKIM. Fix it: have the provider sign "
            f"with d={author} (a custom or branded signing domain), not its own.",
            "; ".join(" ".join(str(s).split()) for s in signatures)[:500]))
    return findings


async def _signature(raw: bytes, index: int, value: str, author: str | None,
                     resolver: Resolver, keys: dict[bytes, bytes]) -> list[Finding]:
    tags = parse_tags(" ".join(value.split()))
    if isinstance(tags, str) or not tags.get("d") or not tags.get("s"):
        return [error("dkim.invalid_signature",
                      "A DKIM-Signature on the seed message is malformed (no d= or s=): "
                      "receivers ignore it. Fix the provider's DKIM signing.", value[:500])]
    domain, selector = tags["d"].lower(), tags["s"]
    name = f"{selector}._domainkey.{domain}"
    strings, found = await resolver.txt(name)
    subject = name
    if found.error is not None:
        return [warning("dkim.lookup_failed",
                        f"The DKIM key lookup at {name} failed ({found.error}): receivers get "
                        "a temporary error. Usually transient: wait and check again.",
                        subject=subject)]
    if not strings:
        return [error("dkim.key_missing",
                      f"The seed message is signed with d={domain} s={selector}, but there is "
                      f"no key at {name}: the signature fails everywhere. Fix it: publish the "
                      "provider's DKIM key there (usually a CNAME or TXT it gives you).",
                      subject=subject)]
    record = strings[0]
    keys[f"{name}.".lower().encode()] = record.encode()
    key = _key(record)
    if isinstance(key, Finding):
        return [key.model_copy(update={"subject": subject, "record": record})]
    kind, bits = key
    findings = _strength(name, kind, bits, record)
    if tags.get("a", "").lower() == "rsa-sha1":
        findings.append(warning("dkim.sha1",
                                f"The signature with {name} uses rsa-sha1, which RFC 8301 "
                                "forbids: receivers treat it as failing. Fix it: sign with "
                                "rsa-sha256.", value[:500], subject))
    verified = _verify(raw, index, keys)
    if verified is not True:
        why = f": {verified}" if isinstance(verified, str) else ""
        return [*findings, error(
            "dkim.invalid_signature",
            f"The DKIM signature with {name} does not verify on the seed message as received"
            f"{why}: the key does not match, or the message was changed on the way (a footer, "
            "a rewritten link). Fix the provider's signing or key, or stop what rewrites "
            "the message after signing.", record, subject)]
    if author and organizational_domain(author) != organizational_domain(domain):
        return findings  # valid but unaligned; `check` reports alignment once
    if not findings:
        findings.append(info("dkim.ok",
                             f"The seed message has a valid DKIM signature with {name} "
                             f"({kind} {bits} bits), aligned with From {author}. Nothing to "
                             "change.", record, subject))
    else:
        findings.append(info("dkim.ok", f"The DKIM signature with {name} verifies and is "
                                        f"aligned with From {author}.", record, subject))
    return findings


def _key(record: str) -> tuple[str, int] | Finding:
    """(type, bits) of a DKIM key record (RFC 6376 §3.6.1), or a finding."""
    tags = parse_tags(record)
    if isinstance(tags, str) or "p" not in tags:
        return error("dkim.key_invalid", "The DKIM key record is not valid (no p=): the "
                                         "signature fails. Fix the record.")
    data = "".join(tags["p"].split())
    if not data:
        return error("dkim.key_revoked", "The DKIM key record has an empty p=: the key is "
                                         "revoked and every signature with it fails. Fix it: "
                                         "publish the current key or sign with another selector.")
    try:
        der = base64.b64decode(data, validate=True)
        if tags.get("k", "rsa").lower() == "ed25519":
            return ("ed25519", 256) if len(der) == 32 else error(
                "dkim.key_invalid", "The ed25519 DKIM key is not 32 bytes. Fix the record.")
        public = load_der_public_key(der)
    except (binascii.Error, ValueError) as exc:
        return error("dkim.key_invalid",
                     f"The DKIM key in p= cannot be read ({exc}): the signature fails. Fix "
                     "the record (RFC 6376 §3.6.1).")
    if isinstance(public, rsa.RSAPublicKey):
        return "rsa", public.key_size
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    if isinstance(public, ec.EllipticCurvePublicKey):
        return "ec", public.key_size
    return type(public).__name__, 0


def _strength(name: str, kind: str, bits: int, record: str) -> list[Finding]:
    if kind != "rsa" or bits >= GOOD_RSA:
        return []
    if bits < MIN_RSA:
        return [error("dkim.key_too_short",
                      f"The DKIM key at {name} is RSA {bits} bits, under 1024: receivers must "
                      "treat its signatures as failing (RFC 8301 §3.2) and it can be broken. "
                      "Fix it now: publish a 2048-bit key under a new selector and sign with "
                      "it.", record, name)]
    return [warning("dkim.key_too_short",
                    f"The DKIM key at {name} is RSA {bits} bits: accepted today, but below the "
                    "2048 bits RFC 8301 §3.2 asks signers for, and some receivers already "
                    "distrust it. Fix it: publish a 2048-bit key under a new selector and "
                    "switch the provider to it.", record, name)]


def _verify(raw: bytes, index: int, keys: dict[bytes, bytes]) -> bool | str:
    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        # dkimpy asks with d= and s= as the signature spells them; DNS names ignore case.
        key = (name if isinstance(name, bytes) else name.encode()).lower()
        return keys.get(key if key.endswith(b".") else key + b".")

    lookup: Callable[..., bytes | None] = dnsfunc
    try:
        signed = dkim.DKIM(raw, minkey=512)
        return bool(signed.verify(idx=index, dnsfunc=lookup))
    except dkim.DKIMException as exc:
        return str(exc) or type(exc).__name__

