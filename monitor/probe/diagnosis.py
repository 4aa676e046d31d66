"""Explain a failed probe step in one line, and say what a human should do in another.

`diagnose()` is a pure function of what the failing step recorded (step, failure
class, reply code, RFC 3463 enhanced code, server text) plus the two settings that
explain many failures on their own: the port and the TLS mode.

- Replies (transient, permanent, auth and TLS refusals with a code) are explained
  from tables: RFC 5321 §4.2.2-4.2.3 for basic codes, with per-step overrides where
  the same code means different things (550 at MAIL vs RCPT, 554 after the final
  dot), and RFC 3463 / the IANA registry for enhanced codes. A known enhanced
  detail is more specific than the basic code, so its meaning wins.
- Failures without a reply (network, timeout, TLS, protocol, delivery) are
  explained from the class and from patterns in the text, after checking the
  classic port/TLS-mode mismatch (465 is implicit TLS; 25/587 speak STARTTLS).

`retry` is always `failure_class.retryable`: the action text never contradicts it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from monitor.probe.result import Step
from monitor.results import Diagnosis, FailureClass

# Basic reply codes: RFC 5321 §4.2.2-4.2.3; AUTH codes RFC 4954 §6; 521/556 RFC 7504.
_BASIC: dict[int, str] = {
    211: "system status or help reply", 214: "help message", 220: "service ready",
    221: "service closing the connection", 235: "authentication succeeded",
    250: "requested action completed", 251: "user not local; the server will forward",
    252: "cannot verify the user, but the server will accept and attempt delivery",
    334: "authentication challenge: the server awaits the next SASL step",
    354: "start mail input, end with <CRLF>.<CRLF>",
    421: "service not available, the server is closing the connection",
    432: "a password transition is needed",
    450: "mailbox unavailable for now (busy, greylisted or rate-limited)",
    451: "local error in processing, action aborted", 452: "insufficient system storage",
    454: "temporary failure: TLS or authentication unavailable for now",  # RFC 3207, 4954
    455: "the server cannot accommodate the parameters",
    500: "syntax error, command unrecognized (or line too long)",
    501: "syntax error in parameters or arguments", 502: "command not implemented",
    503: "bad sequence of commands", 504: "command parameter not implemented",
    521: "this host does not accept mail",
    523: "encryption needed for the requested authentication mechanism",  # RFC 5248 X.7.10
    530: "authentication required",
    534: "authentication mechanism too weak: the provider wants an app password or OAuth",
    535: "authentication credentials invalid",
    538: "encryption required for the requested authentication mechanism",
    550: "mailbox unavailable (not found, no access, or refused by policy)",
    551: "user not local; the server names another address to try",
    552: "exceeded storage allocation", 553: "mailbox name not allowed (bad address syntax)",
    554: "transaction failed", 555: "MAIL FROM/RCPT TO parameters not recognized",
    556: "the domain does not accept mail",
}

# The same code means different things depending on the command it answers.
_NO_ROOM = "insufficient storage for the message"
_TOO_BIG = "the message exceeds the size limit or the mailbox storage allocation"
_AT_STEP: dict[tuple[Step, int], str] = {
    (Step.CONNECT, 554): "no SMTP service here for this client (often a blocklisted IP)",
    (Step.EHLO, 501): "the EHLO name was refused (not a valid domain)",
    (Step.HELO, 501): "the HELO name was refused (not a valid domain)",
    (Step.STARTTLS, 454): "TLS not available due to a temporary reason",  # RFC 3207 §4
    (Step.AUTH, 454): "temporary authentication failure",  # RFC 4954 §6
    (Step.AUTH, 504): "the server does not support this AUTH mechanism",
    (Step.AUTH, 535): "authentication failed: username or password rejected",
    (Step.MAIL, 550): "the sender was rejected (address not allowed, or refused by policy)",
    (Step.MAIL, 553): "the sender address is not allowed (syntax, or not yours to send as)",
    (Step.RCPT, 450): "recipient mailbox unavailable for now (often greylisting)",
    (Step.RCPT, 452): "too many recipients, or insufficient storage",  # RFC 5321 §4.5.3.1.10
    (Step.RCPT, 550): "mailbox unavailable, relaying denied, or refused by policy",
    (Step.DATA, 452): _NO_ROOM, (Step.MESSAGE, 452): _NO_ROOM,
    (Step.DATA, 552): _TOO_BIG, (Step.MESSAGE, 552): _TOO_BIG,
    (Step.MESSAGE, 550): "the message was refused by content or policy filters",
    (Step.MESSAGE, 554): "the message was rejected as spam or by content policy",
}

_CLASS_MEANING: dict[int, str] = {
    2: "an unlisted success reply",
    3: "an unlisted intermediate reply",
    4: "an unlisted transient failure",
    5: "an unlisted permanent failure",
}

# RFC 3463 §3 subjects, used when the detail is unknown.
_SUBJECT: dict[int, str] = {
    0: "other or undefined", 1: "addressing", 2: "mailbox", 3: "mail system",
    4: "network and routing", 5: "mail delivery protocol", 6: "message content or media",
    7: "security or policy",
}

# Enhanced "subject.detail" meanings: RFC 3463 §3, plus the IANA registry (RFC 5248)
# entries from RFC 3886, 4468, 4954, 6531, 6710, 7293, 7372 and 7505.
_ENHANCED: dict[str, str] = {
    "1.1": "the mailbox does not exist (bad destination mailbox address)",
    "1.2": "the destination domain does not exist or take mail (bad destination system)",
    "1.3": "bad destination mailbox address syntax", "1.4": "destination address ambiguous",
    "1.5": "destination address valid", "1.6": "destination mailbox moved, no forwarding address",
    "1.7": "bad sender's mailbox address syntax",
    "1.8": "bad sender's system address (the sender domain does not resolve)",
    "1.9": "message relayed to a non-compliant mailer",
    "1.10": "the recipient domain has a null MX: it accepts no mail",
    "2.1": "mailbox disabled, not accepting messages", "2.2": "mailbox full",
    "2.3": "message length exceeds an administrative limit",
    "2.4": "mailing list expansion problem",
    "3.1": "mail system full", "3.2": "system not accepting network messages",
    "3.3": "system not capable of the selected features", "3.4": "message too big for the system",
    "3.5": "system incorrectly configured", "3.6": "requested priority was changed",
    "4.1": "no answer from host", "4.2": "bad connection", "4.3": "directory server failure",
    "4.4": "unable to route", "4.5": "mail system congestion", "4.6": "routing loop detected",
    "4.7": "delivery time expired",
    "5.1": "invalid command", "5.2": "protocol syntax error", "5.3": "too many recipients",
    "5.4": "invalid command arguments", "5.5": "wrong protocol version",
    "5.6": "authentication exchange line too long",
    "6.1": "media not supported", "6.2": "conversion required and prohibited",
    "6.3": "conversion required but not supported", "6.4": "conversion with loss performed",
    "6.5": "conversion failed", "6.6": "message content not available",
    "6.7": "non-ASCII addresses not permitted for that sender or recipient",
    "6.8": "UTF-8 reply required but not permitted by the client",
    "6.9": "UTF-8 header message cannot be transferred to a recipient",
    "7.1": "delivery not authorized, message refused",
    "7.2": "mailing list expansion prohibited",
    "7.3": "security conversion required but not possible",
    "7.4": "security features not supported", "7.5": "cryptographic failure",
    "7.6": "cryptographic algorithm not supported", "7.7": "message integrity failure",
    "7.8": "authentication credentials invalid",
    "7.9": "authentication mechanism too weak (app password or OAuth wanted)",
    "7.10": "encryption needed",
    "7.11": "encryption required for the requested authentication mechanism",
    "7.12": "a password transition is needed", "7.13": "user account disabled",
    "7.14": "trust relationship required (the provider wants a sign-in or app password)",
    "7.15": "priority level too low", "7.16": "message too big for the specified priority",
    "7.17": "mailbox owner has changed", "7.18": "domain owner has changed",
    "7.19": "RRVS test cannot be completed", "7.20": "no passing DKIM signature found",
    "7.21": "no acceptable DKIM signature found",
    "7.22": "no valid author-matched DKIM signature found",
    "7.23": "SPF validation failed", "7.24": "SPF validation error",
    "7.25": "reverse DNS validation failed",
    "7.26": "multiple authentication checks failed (DMARC: SPF and DKIM)",
    "7.27": "the sender domain has a null MX",
}

# What to change, most specific first: enhanced detail, then (step, code), then code.
_APP_PASSWORD = "create an app password or switch auth to OAuth2 (XOAUTH2)"
_TLS_BEFORE_AUTH = "authenticate only inside TLS: set tls: starttls (587) or implicit (465)"
_CREDENTIALS = "check auth.username and auth.password (rotated API key? app password?)"
_DKIM = "sign with DKIM aligned with the From domain"
_SPF = "add this sending server to the sender domain's SPF record"
_SIZE = "send a smaller message (see the server's SIZE in EHLO)"
_HINT_ENH: dict[str, str] = {
    "1.1": "check the recipient address for typos; remove it from lists if it is gone",
    "1.2": "check the recipient domain and its MX records",
    "1.3": "fix the recipient address syntax",
    "1.7": "fix the sender address syntax",
    "1.8": "use a sender domain that resolves (A/MX) in public DNS",
    "1.10": "remove the recipient: its domain publishes a null MX (RFC 7505)",
    "2.1": "remove the recipient or contact its owner: the mailbox is disabled",
    "2.2": "the recipient must free space in the mailbox",
    "2.3": _SIZE, "3.4": _SIZE,
    "4.4": "check the recipient domain's MX records",
    "5.3": "send to fewer recipients per message",
    "7.1": "check the sender is allowed, the sending IP's reputation and blocklists",
    "7.8": _CREDENTIALS, "7.9": _APP_PASSWORD, "7.14": _APP_PASSWORD,
    "7.10": _TLS_BEFORE_AUTH, "7.11": _TLS_BEFORE_AUTH,
    "7.13": "contact the provider: the account is disabled",
    "7.20": _DKIM, "7.21": _DKIM, "7.22": _DKIM, "7.23": _SPF, "7.24": _SPF,
    "7.25": "set a PTR record for the sending IP that matches its HELO name",
    "7.26": "align SPF and DKIM with the From domain and publish DMARC",
    "7.27": "use a sender domain that accepts mail (no null MX)",
}
_NO_STARTTLS = "enable STARTTLS on the server, or use port 465 with tls: implicit"
_HINT_AT_STEP: dict[tuple[Step, int], str] = {
    (Step.CONNECT, 554): "check DNS blocklists for the sending IP and the server's access policy",
    (Step.STARTTLS, 454): "check the server's TLS certificate and key configuration",
    (Step.STARTTLS, 500): _NO_STARTTLS, (Step.STARTTLS, 502): _NO_STARTTLS,
    (Step.MAIL, 550): "use a sender address or domain verified with the provider",
    (Step.MAIL, 553): "use a sender address this account may send as",
    (Step.RCPT, 550): "check the recipient address; if relaying is denied, authenticate first",
    (Step.MESSAGE, 550): "check SPF/DKIM/DMARC, the content and the sending IP's reputation",
    (Step.MESSAGE, 554): "check SPF/DKIM/DMARC, the content and the sending IP's reputation",
}
_HINT_CODE: dict[int, str] = {
    421: "check the provider's rate limits and status page",
    450: "check for greylisting or rate limits on this sender",
    451: "contact the provider: the server reports a local error",
    452: "send fewer recipients or smaller messages; the server is short of storage",
    455: "check the MAIL/RCPT parameters (SIZE, BODY, ...)",
    500: "check that the probe talks to an SMTP server with the right port/TLS mode",
    502: "disable this step for this provider: the server does not implement it",
    503: "check the session order (STARTTLS and AUTH before MAIL)",
    504: "choose another auth.mechanism among those the server offers",
    521: "check the recipient domain: it does not accept mail",
    523: _TLS_BEFORE_AUTH, 534: _APP_PASSWORD, 535: _CREDENTIALS, 538: _TLS_BEFORE_AUTH,
    530: "configure auth (username and password) for this provider",
    551: "send to the address the server names, or fix the recipient",
    552: _SIZE,
    553: "fix the address syntax",
    554: "read the server text: usually policy, a blocklisted IP or content",
    555: "drop the MAIL/RCPT parameters the server does not support",
    556: "check the recipient domain: it does not accept mail",
}
_STARTTLS_FIRST = "STARTTLS first: set tls: starttls, then configure auth credentials"

_EXPECTED: dict[Step, str] = {
    Step.CONNECT: "220", Step.STARTTLS: "220", Step.AUTH: "235", Step.VRFY: "2xx",
    Step.EXPN: "2xx", Step.RCPT: "250 or 251", Step.DATA: "354", Step.QUIT: "221",
}
_LABEL: dict[Step, str] = {
    Step.EHLO_TLS: "EHLO (after STARTTLS)", Step.MESSAGE: "MESSAGE (after the final dot)",
}
_ENHANCED_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
# What an implicit-TLS client sees when the server speaks plaintext SMTP first.
_PLAINTEXT_RE = re.compile(r"wrong.version|record.layer|packet.length|unknown.protocol|http.req")
_OFFERED_RE = re.compile(
    r"(?i:offers|offered|supports|advertises|advertised)\s*:?\s*"
    r"([A-Z0-9][A-Z0-9_-]*(?:[ ,]+[A-Z0-9][A-Z0-9_-]*)*)"
)

_Rules = tuple[tuple[str, str, str], ...]  # (pattern in lower-cased text, meaning, action)
_TLS_CERT: _Rules = (
    (r"expired", "the server's certificate has expired",
     "renew the server's certificate (or ask the provider to); keep tls_verify on"),
    (r"not yet valid", "the server's certificate is not valid yet",
     "check the clocks of the server and of this host"),
    (r"self.signed", "the server's certificate is self-signed",
     "install a certificate from a public CA, or set ca_file to the server's CA"),
    (r"unknown ca|issuer|verify the first", "the certificate's issuer is not trusted "
     "(unknown CA or incomplete chain)", "serve the full chain, or set ca_file for a private CA"),
    (r"mismatch|not valid for|does not match|doesn't match",
     "the certificate does not cover this host name",
     "probe the name the certificate lists (its SANs), or fix the certificate"),
)
_TLS_OTHER: _Rules = (
    (r"not offered|not supported|not advertised", "the server did not offer STARTTLS",
     _NO_STARTTLS + " (a middlebox may strip it from EHLO)"),
    (r"handshake|alert|version|cipher|protocol", "the TLS handshake failed",
     "offer TLS 1.2+ with modern ciphers on the server; compare with openssl s_client"),
)
# Only a connection that was accepted and then dropped can be a port/TLS-mode mix-up.
_DROPPED = r"reset|broken pipe|closed|eof|disconnect"
_NETWORK: _Rules = (
    (r"refused", "connection refused: nothing listens on that port", ""),
    (r"dns|name or service|nodename|getaddrinfo|resolution", "the DNS lookup of the host failed",
     ""),
    (r"unreachable|no route", "the host or network is unreachable", ""),
    (_DROPPED, "the connection was reset or closed", ""),
)
_PROTOCOL: _Rules = (
    (r"reply too long", "the server's reply was longer than the client accepts (8,192 octets "
     "a line, 32 KiB in all): a very long or endless multi-line reply",
     "look at what the server sends after this command (e.g. with swaks); a reply that long "
     "is a broken or hostile server (RFC 5321 §4.5.3.1.5 allows 512 octets a line)"),
    (r"http", "the port answered HTTP, not SMTP", "point the probe at an SMTP port"),
)

@dataclass(frozen=True)
class _Ctx:
    step: Step
    failure_class: FailureClass
    code: int | None
    enhanced: str | None
    text: str
    port: int
    tls_mode: str

    @property
    def label(self) -> str:
        return _LABEL.get(self.step, self.step.value.upper())

    @property
    def low(self) -> str:
        return self.text.lower().replace("_", " ")


def diagnose(
    step: Step,
    failure_class: FailureClass,
    code: int | None,
    enhanced_code: str | None,
    text: str,
    *,
    port: int,
    tls_mode: str,
) -> Diagnosis:
    """One line on what happened at `step`, one on what to do; `retry` follows the class."""
    ctx = _Ctx(step, failure_class, code, enhanced_code, text, port, tls_mode)
    summary, action = _EXPLAIN[failure_class](ctx)
    return Diagnosis(summary=_line(summary), action=_line(action), retry=failure_class.retryable)


def code_meaning(step: Step, code: int) -> str:
    """What a basic reply code means in answer to `step`; generic by class when unlisted."""
    if (step, code) in _AT_STEP:
        return _AT_STEP[(step, code)]
    if code in _BASIC:
        return _BASIC[code]
    if 200 <= code <= 599:
        return f"{_CLASS_MEANING[code // 100]} ({code // 100}xx)"
    return "not a valid SMTP reply (codes run 2xx-5xx)"


def _reply(c: _Ctx) -> tuple[str, str]:
    if c.code is None:
        return f"{c.label} failed without a reply code: {_clip(c.text)}", _fix(c, None)
    match = _ENHANCED_RE.match(c.enhanced or "")
    detail = f"{int(match[2])}.{int(match[3])}" if match else None
    meaning = _ENHANCED.get(detail or "") or code_meaning(c.step, c.code)
    if match and detail not in _ENHANCED:  # unknown detail, but the subject is still a clue
        subject = f"{_SUBJECT.get(int(match[2]), 'unknown')} status"
        closed = meaning.endswith(")")
        meaning = f"{meaning[:-1]}; {subject})" if closed else f"{meaning} ({subject})"
    verb = {4: "temporarily rejected", 5: "rejected"}.get(c.code // 100, "answered")
    enhanced = f" {c.enhanced}" if match else ""
    return f"{c.label} {verb} with {c.code}{enhanced}: {meaning}", _fix(c, detail)


def _fix(c: _Ctx, detail: str | None) -> str:
    hint: str | None = None
    if c.code == 530 and c.tls_mode == "none":  # RFC 4954 §4: AUTH is usually TLS-only
        hint = _STARTTLS_FIRST
    elif c.code is not None:
        hint = (_HINT_ENH.get(detail or "") or _HINT_AT_STEP.get((c.step, c.code))
                or _HINT_CODE.get(c.code))
    if c.failure_class.retryable:
        return "retry with backoff" + (f"; if it persists, {hint}" if hint else "")
    return hint or f"do not retry as is: fix what {c.label} sends, or the server's policy"


def _auth(c: _Ctx) -> tuple[str, str]:
    if c.code is not None:
        return _reply(c)
    found = _OFFERED_RE.search(c.text)
    offered = [m for m in re.split(r"[ ,]+", found[1]) if m != "NONE"] if found else []
    if offered:
        mechs = ", ".join(offered)
        return (f"AUTH failed: no mechanism in common; the server offers {mechs}",
                f"set auth.mechanism to one of {mechs} (or auto)")
    if c.tls_mode == "none":  # servers rarely advertise AUTH on a plaintext session
        return ("AUTH failed: the server offered no AUTH mechanism on a plaintext session",
                _STARTTLS_FIRST)
    return ("AUTH failed: the server offered no AUTH mechanism",
            "use the provider's submission port (587 or 465), where AUTH is offered")


def _mismatch(c: _Ctx) -> tuple[str, str] | None:
    """The classic port/TLS-mode mix-ups, which show up as timeouts, resets or garbage."""
    if c.step is not Step.CONNECT:
        return None
    # The engine checks a silent port with a TLS handshake and says so in the text.
    if c.tls_mode != "implicit" and (c.port == 465 or "expects implicit tls" in c.low):
        return (f"the server on port {c.port} waits for a TLS handshake, the probe spoke "
                "plaintext", f"port {c.port} expects implicit TLS (SMTPS): set tls: implicit")
    if c.tls_mode == "implicit" and (c.port in (25, 587) or _PLAINTEXT_RE.search(c.low)):
        return (f"implicit TLS was attempted, but port {c.port} speaks plaintext SMTP",
                f"port {c.port} speaks STARTTLS, not implicit TLS: set tls: starttls")
    return None


def _tls(c: _Ctx) -> tuple[str, str]:
    if c.code is not None and c.code >= 400:  # a refused STARTTLS is still a reply
        return _reply(c)
    meaning, action = (_match(_TLS_CERT, c.low) or _mismatch(c) or _match(_TLS_OTHER, c.low)
                       or (f"TLS failure ({_clip(c.text)})", "check the server's TLS setup"))
    return f"TLS failed at {c.label}: {meaning}", action


def _network(c: _Ctx) -> tuple[str, str]:
    meaning, _ = _match(_NETWORK, c.low) or (f"network error ({_clip(c.text)})", "")
    mismatch = _mismatch(c) if re.search(_DROPPED, c.low) else None
    if mismatch:
        return f"{c.label} failed: {meaning}; {mismatch[0]}", mismatch[1]
    return f"{c.label} failed on port {c.port}: {meaning}", "check host, port and firewall; retry"


def _timeout(c: _Ctx) -> tuple[str, str]:
    mismatch = _mismatch(c)
    if mismatch:
        return f"{c.label} timed out: {mismatch[0]}", mismatch[1]
    action = "retry; if it persists, check the server's load and firewalls, or raise timeout"
    if c.step is Step.CONNECT:
        why = "no banner: the server, or a firewall dropping packets, did not answer"
    elif c.step is Step.MESSAGE:
        why = "no reply after the final dot (slow content scanning?)"
    else:
        why = "the server accepted TCP but stopped answering"
    return f"{c.label} timed out: {why}", action


def _protocol(c: _Ctx) -> tuple[str, str]:
    check = f"check that port {c.port} serves SMTP and no proxy or middlebox rewrites the session"
    if c.code is not None:  # a well-formed reply, just not one this step allows
        expected = _EXPECTED.get(c.step, "250")
        return (f"{c.label} got unexpected reply {c.code} (expected {expected}): "
                f"{code_meaning(c.step, c.code)}", check)
    mismatch = _mismatch(c)
    if mismatch:
        return f"{c.label} got a malformed reply: {mismatch[0]}", mismatch[1]
    meaning, action = _match(_PROTOCOL, c.low) or ("malformed reply, not valid SMTP", "")
    return f"{c.label} got a bad reply ({_clip(c.text)}): {meaning}", action or check


def _delivery(c: _Ctx) -> tuple[str, str]:
    # An SMTP session never ends in this class; the receive side explains its own
    # verdicts (late, missing, junk) in monitor/receive/diagnosis.py.
    return ("Delivery check: the message was accepted by SMTP but not seen in the mailbox "
            "before the deadline", "see the receive side's diagnosis for this mailbox; retry")


def _match(rules: _Rules, low: str) -> tuple[str, str] | None:
    return next(((m, a) for p, m, a in rules if re.search(p, low)), None)


def _clip(text: str, limit: int = 160) -> str:
    one = _line(text)
    return one if len(one) <= limit else one[:limit] + "…"


def _line(text: str) -> str:
    return " ".join(text.split())


_EXPLAIN: dict[FailureClass, Callable[[_Ctx], tuple[str, str]]] = {
    FailureClass.TRANSIENT: _reply,
    FailureClass.PERMANENT: _reply,
    FailureClass.AUTH: _auth,
    FailureClass.TLS: _tls,
    FailureClass.NETWORK: _network,
    FailureClass.TIMEOUT: _timeout,
    FailureClass.PROTOCOL: _protocol,
    FailureClass.DELIVERY: _delivery,
}
