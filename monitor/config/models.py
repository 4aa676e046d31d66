"""Typed configuration models, with their defaults applied at load.

Unknown keys are rejected everywhere (`extra="forbid"`): a misspelt key is a
silent misconfiguration otherwise. Secrets are `SecretStr` so they never show
up in a repr, a log line or `--json` output.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
import ssl
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from monitor.config.durations import Duration

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
Port = Annotated[int, Field(ge=1, le=65535)]


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
    failure: int = Field(default=2, ge=1)
    recovery: int = Field(default=1, ge=1)
    latency_ms: int = Field(default=5000, ge=1)


class ProviderConfig(Strict):
    name: Name
    host: str = Field(min_length=1)
    port: Port = 587
    tls: TlsMode = TlsMode.STARTTLS
    mode: ProbeMode = ProbeMode.CONNECT
    auth: AuthConfig | None = None
    tls_verify: bool = True
    ca_file: Path | None = None
    helo: str | None = None
    sender: str | None = Field(default=None, alias="from")
    to: tuple[str, ...] = ()
    subject: str = "Delivery Monitor probe"
    interval: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=30)
    step_timeout: Duration | None = None  # defaults to settings.step_timeout
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


class MailboxKind(StrEnum):
    IMAP = "imap"
    POP3 = "pop3"
    MAILDIR = "maildir"
    INBOUND = "inbound"


class MailboxConfig(Strict):
    name: Name
    address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    kind: MailboxKind
    host: str | None = None
    port: Port | None = None
    tls: TlsMode = TlsMode.IMPLICIT
    tls_verify: bool = True
    ca_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    path: Path | None = None  # maildir
    token: SecretStr | None = None  # inbound: authenticates the posting service
    folders: tuple[str, ...] = ("INBOX",)
    deliver_within: Duration = timedelta(minutes=5)

    @model_validator(mode="after")
    def _kind_has_what_it_needs(self) -> Self:
        if self.kind in (MailboxKind.IMAP, MailboxKind.POP3):
            missing = [f for f in ("host", "username", "password") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"kind {self.kind.value} needs {', '.join(missing)}")
        if self.kind is MailboxKind.MAILDIR and self.path is None:
            raise ValueError("kind maildir needs `path`")
        if self.kind is MailboxKind.INBOUND and self.token is None:
            raise ValueError("kind inbound needs `token`")
        return self


class SubscriptionKind(StrEnum):
    GENERIC = "generic"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"


def _is_webhook_secret(value: str) -> bool:
    # Checked here rather than with monitor.webhooks.signing, which imports this module.
    if not value.startswith("whsec_"):
        return False
    encoded = value[len("whsec_"):]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        return False
    return len(key) >= 24


class SubscriptionConfig(Strict):
    name: Name
    kind: SubscriptionKind
    url: str | None = None
    secret: SecretStr | None = None
    routing_key: SecretStr | None = None
    events: tuple[str, ...] = ("*",)
    providers: tuple[str, ...] = ("*",)

    @model_validator(mode="after")
    def _kind_has_what_it_needs(self) -> Self:
        if self.kind in (SubscriptionKind.GENERIC, SubscriptionKind.SLACK) and not self.url:
            raise ValueError(f"kind {self.kind.value} needs `url`")
        if self.kind is SubscriptionKind.PAGERDUTY and self.routing_key is None:
            raise ValueError("kind pagerduty needs `routing_key`")
        if self.secret is not None and not _is_webhook_secret(self.secret.get_secret_value()):
            raise ValueError("`secret` must be whsec_ followed by base64 of at least 24 bytes "
                             "(Standard Webhooks)")
        return self


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


class Settings(Strict):
    # The EHLO name when a provider sets no `helo`. Computed once here, because
    # aiosmtplib otherwise resolves the FQDN in a thread on every connect.
    helo: str = Field(default_factory=socket.gethostname)
    step_timeout: Duration = timedelta(seconds=10)
    retention: Duration = timedelta(days=30)
    allow_private_destinations: bool = False
    # Plain-http subscriber URLs (a receiver on the same host or in a mesh); off by default.
    allow_http_destinations: bool = False
    # This monitor's external base URL, for links in Slack and PagerDuty messages.
    public_url: str | None = None
    # Per webhook request (Standard Webhooks suggests 15-30 s).
    webhook_timeout: Duration = timedelta(seconds=15)
    # DNS server for pre-campaign checks: "ip", "ip:port" or "[ipv6]:port";
    # default: the system resolver.
    dns_server: str | None = None

    @field_validator("dns_server")
    @classmethod
    def _dns_server(cls, value: str | None) -> str | None:
        if value is not None:
            parse_nameserver(value)
        return value

    def dns_nameserver(self) -> tuple[str, int] | None:
        return parse_nameserver(self.dns_server) if self.dns_server else None


class Config(Strict):
    providers: tuple[ProviderConfig, ...] = ()
    mailboxes: tuple[MailboxConfig, ...] = ()
    subscriptions: tuple[SubscriptionConfig, ...] = ()
    settings: Settings = Settings()
    source: Path | None = Field(default=None, exclude=True)

    def provider(self, name: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.name == name), None)

    def mailbox(self, name: str) -> MailboxConfig | None:
        return next((m for m in self.mailboxes if m.name == name), None)

    def recipients(self, provider: ProviderConfig) -> list[str]:
        """Envelope recipients: mailbox names resolved to their addresses."""
        out = []
        for target in provider.to:
            mailbox = self.mailbox(target)
            out.append(mailbox.address if mailbox else target)
        return out

    def step_timeout(self, provider: ProviderConfig) -> float:
        return (provider.step_timeout or self.settings.step_timeout).total_seconds()

