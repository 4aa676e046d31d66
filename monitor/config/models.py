"""Typed configuration models, with their defaults applied at load.

Unknown keys are rejected everywhere (`extra="forbid"`): a misspelt key is a
silent misconfiguration otherwise. Secrets are `SecretStr` so they never show
up in a repr, a log line or `--json` output. Strings that go into SMTP
commands (EHLO name, addresses, host) are checked here, at load, so a bad one
is a config error rather than a failure of every probe.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema

from monitor.config.durations import between
from monitor.webhooks.channels import SubscriptionConfig as SubscriptionConfig

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


def _not_bool(value: object) -> object:
    # YAML reads `yes` and `true` as booleans, which pydantic would take as 1.
    if isinstance(value, bool):
        raise ValueError("Input should be a valid integer, not a boolean")
    return value


# Not strict ints: "2525" from `${PORT}` is still a port.
Count = Annotated[int, BeforeValidator(_not_bool), Field(ge=1)]
Port = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=65535)]

_SECOND, _DAY = timedelta(seconds=1), timedelta(days=1)
# Intervals and waits: under a second floods the server (0 divides by zero in the
# scheduler); over 30 days is a typo.
Interval = Annotated[timedelta, between(_SECOND, 30 * _DAY)]
# Under 100 ms no SMTP reply can arrive; an hour is already a hung server.
Timeout = Annotated[timedelta, between(timedelta(milliseconds=100), timedelta(hours=1))]

# RFC 5321 §4.1.2 sub-domain: letters, digits and inner hyphens, at most 63 (RFC 1035).
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# A space ends an SMTP argument and CR/LF the command (RFC 5321 §4.1.1); the other
# C0/C1 controls and Unicode line breaks have no place in one either.
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")  # tab is fine


def _ehlo_name(value: str) -> str:
    """RFC 5321 §4.1.1.1: a domain, or an address literal [IPv4] / [IPv6:...] (§4.1.3)."""
    if value.startswith("[") and value.endswith("]"):
        literal = value[1:-1]
        ipv6 = literal[:5].lower() == "ipv6:"
        try:
            if ipv6 and "%" not in literal:  # no zone index in an address literal
                ipaddress.IPv6Address(literal[5:])
                return value
            if not ipv6:
                ipaddress.IPv4Address(literal)
                return value
        except ValueError:
            pass
    elif len(value) <= 255 and all(_LABEL.fullmatch(label) for label in value.split(".")):
        return value
    raise ValueError("must be a domain name (letters, digits, hyphens and dots) or an address "
                     "literal such as [192.0.2.1]")


def _address(value: str) -> str:
    # <> delimit the path in MAIL FROM:<...> (RFC 5321 §4.1.2).
    if _SPACE_OR_CONTROL.search(value) or "<" in value or ">" in value:
        raise ValueError("must not contain spaces, control characters, < or >")
    local, _, domain = value.rpartition("@")
    if not local or not domain or "@" in local:
        raise ValueError("must be an address of the form local@domain")
    return value


def _recipient(value: str) -> str:
    # Without an @ it names a mailbox, which the loader's cross-check resolves.
    return _address(value) if "@" in value else value


def _host(value: str) -> str:
    if _SPACE_OR_CONTROL.search(value):
        raise ValueError("must not contain spaces or control characters")
    return value


def _one_line(value: str) -> str:
    # The subject becomes a header line; a line break would start another header.
    if _CONTROL.search(value):
        raise ValueError("must be one line without control characters")
    return value


EhloName = Annotated[str, AfterValidator(_ehlo_name)]
Address = Annotated[str, AfterValidator(_address)]
Recipient = Annotated[str, AfterValidator(_recipient)]
Host = Annotated[str, Field(min_length=1), AfterValidator(_host)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TlsMode(StrEnum):
    STARTTLS = "starttls"
    IMPLICIT = "implicit"
    NONE = "none"


class ProbeMode(StrEnum):
    """How far a probe goes; each mode includes the steps of the ones before."""

    CONNECT = "connect"
    TLS = "tls"
    AUTH = "auth"
    SEND = "send"

    def reaches(self, other: ProbeMode) -> bool:
        order = list(ProbeMode)
        return order.index(self) >= order.index(other)


class AuthMechanism(StrEnum):
    AUTO = "auto"
    PLAIN = "PLAIN"
    LOGIN = "LOGIN"
    CRAM_MD5 = "CRAM-MD5"
    XOAUTH2 = "XOAUTH2"


class AuthConfig(Strict):
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    # XOAUTH2 access token; usually `${SOME_TOKEN}` so it comes from the environment.
    token: SecretStr | None = None
    mechanism: AuthMechanism = AuthMechanism.AUTO

    @model_validator(mode="after")
    def _secret_matches_mechanism(self) -> Self:
        if self.mechanism is AuthMechanism.XOAUTH2 and self.token is None:
            raise ValueError("mechanism XOAUTH2 needs `token` (an OAuth2 access token)")
        # `auto` with only a token means XOAUTH2; every other case needs the password.
        token_only_auto = self.mechanism is AuthMechanism.AUTO and self.token is not None
        if self.mechanism is not AuthMechanism.XOAUTH2 and self.password is None and (
            not token_only_auto
        ):
            raise ValueError("`password` is required")
        return self


class Thresholds(Strict):
    failure: Count = 2
    recovery: Count = 1
    latency_ms: Count = 5000


class ProviderConfig(Strict):
    name: Name
    host: Host
    port: Port = 587
    tls: TlsMode = TlsMode.STARTTLS
    mode: ProbeMode = ProbeMode.CONNECT
    auth: AuthConfig | None = None
    tls_verify: bool = True
    ca_file: Path | None = None
    helo: EhloName | None = None
    sender: Address | None = Field(default=None, alias="from")
    to: tuple[Recipient, ...] = ()
    subject: Annotated[str, AfterValidator(_one_line)] = "Delivery Monitor probe"
    interval: Interval = timedelta(seconds=60)
    timeout: Timeout = timedelta(seconds=30)
    step_timeout: Timeout | None = None  # defaults to settings.step_timeout
    thresholds: Thresholds = Thresholds()
    # Posture check: VRFY/EXPN should be refused; an answer is a finding, not a failure.
    check_vrfy: bool = False

    @field_validator("ca_file")
    @classmethod
    def _ca_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None:
            if not value.is_file():
                raise ValueError(f"no such file: {value}")
            try:
                ssl.create_default_context(cafile=str(value))
            except (ssl.SSLError, OSError):
                raise ValueError(f"{value} is not a PEM file of CA certificates") from None
        return value

    @model_validator(mode="after")
    def _mode_has_what_it_needs(self) -> Self:
        if self.mode is ProbeMode.TLS and self.tls is TlsMode.NONE:
            raise ValueError("mode `tls` needs tls: starttls or implicit")
        if self.mode is ProbeMode.AUTH and self.auth is None:
            raise ValueError("mode `auth` needs an `auth` section")
        if self.mode is ProbeMode.SEND:
            if not self.sender:
                raise ValueError("mode `send` needs `from`")
            if not self.to:
                raise ValueError("mode `send` needs at least one `to`")
        return self


class MailboxConfig(Strict):
    """What every mailbox has. Each kind's own model adds the rest: it lives in its
    backend module and is listed in `monitor.receive.registry`, which derives the
    union, discriminated on `kind`, that `Config.mailboxes` holds.

    `MailboxConfig.model_validate(data)` validates through that union, as the loader
    does, and returns the kind's model (`ImapMailbox`, ...).
    """

    name: Name
    address: Address
    kind: str  # each kind narrows it to its Literal, the union's tag
    deliver_within: Interval = timedelta(minutes=5)

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        if cls is not MailboxConfig:
            return super().model_validate(obj, **options)
        from monitor.receive.registry import mailbox_adapter  # the backends import this module
        return cast(Self, mailbox_adapter().validate_python(obj, **options))


class _RegisteredMailbox:
    """`Config.mailboxes` items: the registry's union, looked up when Config's schema is
    built. That is deferred to Config's first use (`defer_build`), because the backend
    modules that own the per-kind models import this module."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any,
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        from monitor.receive.registry import MAILBOX_UNION
        return handler.generate_schema(MAILBOX_UNION)


AnyMailbox = Annotated[MailboxConfig, _RegisteredMailbox]


def parse_nameserver(value: str) -> tuple[str, int]:
    """"ip", "ip:port" or "[ipv6]:port" -> (ip, port)."""
    try:
        return str(ipaddress.ip_address(value.strip("[]"))), 53
    except ValueError:
        pass
    host, _, port = value.rpartition(":")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError("expected an IP address, optionally with :port") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("the port must be 1-65535")
    return str(address), int(port)


def domain_name(value: str) -> str:
    """A DNS name of letters, digits and hyphens, two labels at least, lowercased."""
    name = value.lower().rstrip(".")
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 253 or not all(_LABEL.fullmatch(x) for x in labels):
        raise ValueError("must be a domain name of at least two labels (letters, digits, "
                         "hyphens), such as example.com")
    return name


DomainName = Annotated[str, AfterValidator(domain_name)]
ZoneName = DomainName


class StatusPageAccess(StrEnum):
    """Who may see the status page and its badges (`settings.status_page`)."""

    PUBLIC = "public"  # anyone who can reach the port: nothing on it is a secret
    TOKEN = "token"  # a read (or admin) API token, as a bearer header or the page's cookie
    OFF = "off"  # not served at all (404)


class Settings(Strict):
    # The EHLO name when a provider sets no `helo`. Computed once here, because
    # aiosmtplib otherwise resolves the FQDN in a thread on every connect.
    helo: EhloName = Field(default_factory=socket.gethostname)
    step_timeout: Timeout = timedelta(seconds=10)
    # Under an hour, the history `monitor status` reads is gone; ten years is plenty.
    retention: Annotated[timedelta, between(timedelta(hours=1), 3650 * _DAY)] = timedelta(days=30)
    allow_private_destinations: bool = False
    # Plain-http subscriber URLs (a receiver on the same host or in a mesh); off by default.
    allow_http_destinations: bool = False
    # This monitor's external base URL, for links in Slack and PagerDuty messages.
    public_url: str | None = None
    # Per webhook request (Standard Webhooks suggests 15-30 s).
    webhook_timeout: Annotated[timedelta, between(timedelta(milliseconds=100),
                                                   timedelta(minutes=5))] = timedelta(seconds=15)
    # DNS server for pre-campaign checks: "ip", "ip:port" or "[ipv6]:port";
    # default: the system resolver.
    dns_server: str | None = None
    # The status page (/, /providers/{name}, /incidents) and badges (/badge/...). Token by
    # default: a page is opened to everyone on purpose, not by upgrading.
    status_page: StatusPageAccess = StatusPageAccess.TOKEN

    @field_validator("dns_server")
    @classmethod
    def _dns_server(cls, value: str | None) -> str | None:
        if value is not None:
            parse_nameserver(value)
        return value

    # Sending-domain posture (monitor/posture/): how often each domain is checked, and
    # the block lists asked about the sending IP and about the domain. Under 5 minutes
    # a DNSBL's free query quota runs out; Spamhaus's zones are the usual choice.
    posture_interval: Annotated[timedelta, between(timedelta(minutes=5), 30 * _DAY)] = (
        timedelta(hours=6))
    dnsbl_zones: tuple[ZoneName, ...] = ("zen.spamhaus.org",)
    dnsbl_domain_zones: tuple[ZoneName, ...] = ("dbl.spamhaus.org",)

    def dns_nameserver(self) -> tuple[str, int] | None:
        return parse_nameserver(self.dns_server) if self.dns_server else None


class Config(Strict):
    model_config = ConfigDict(defer_build=True)  # for AnyMailbox, see there

    providers: tuple[ProviderConfig, ...] = ()
    mailboxes: tuple[AnyMailbox, ...] = ()
    # One model per kind, discriminated on `kind`: each channel module owns its keys and
    # their validation (monitor/webhooks/channels/).
    subscriptions: tuple[SubscriptionConfig, ...] = ()
    settings: Settings = Settings()
    # Sending domains whose posture is watched; default: each provider's `from` domain.
    domains: tuple[DomainName, ...] = ()
    source: Path | None = Field(default=None, exclude=True)

    def provider(self, name: str) -> ProviderConfig | None:
        # Looked up several times per recorded run: a scan of 5,000 providers cost more
        # than the run's SQL (issue 12). The index is keyed on the tuple itself, so a
        # model_copy(update={"providers": ...}) can't leave a stale one behind.
        index = self.__dict__.get("_provider_index")
        if index is None or index[0] is not self.providers:
            index = (self.providers, {p.name: p for p in self.providers})
            self.__dict__["_provider_index"] = index
        return index[1].get(name)

    def mailbox(self, name: str) -> MailboxConfig | None:
        return next((m for m in self.mailboxes if m.name == name), None)

    def recipients(self, provider: ProviderConfig) -> list[str]:
        """Envelope recipients: mailbox names resolved to their addresses."""
        out = []
        for target in provider.to:
            mailbox = self.mailbox(target)
            out.append(mailbox.address if mailbox else target)
        return out

    def posture_domains(self) -> tuple[str, ...]:
        """`domains`, else every provider's `from` domain, each once, in order."""
        if self.domains:
            return tuple(dict.fromkeys(self.domains))
        found = (p.sender.rpartition("@")[2].lower() for p in self.providers if p.sender)
        return tuple(dict.fromkeys(found))

    def step_timeout(self, provider: ProviderConfig) -> float:
        return (provider.step_timeout or self.settings.step_timeout).total_seconds()

