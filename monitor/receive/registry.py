"""The mailbox kinds: for each, its config model and its backend, in one list.

A kind is one module under `monitor/receive/` holding both: a subclass of
`MailboxConfig` with `kind: Literal["<kind>"]` and only the fields that kind
uses, and a class with the `MailboxBackend.scan` method. Adding one is that file
and one line in `KINDS` below; everything else is derived from the list:

* `MAILBOX_UNION`, the models as a union discriminated on `kind`: what
  `Config.mailboxes` validates against (`monitor.config.models.AnyMailbox`
  looks it up when Config's schema is first built) and what
  `MailboxConfig.model_validate` uses;
* `BACKENDS`, kind -> backend, which the poller scans with;
* `MODELS`, kind -> config model.

The models live with their backends rather than in `monitor.config` so that a
kind owns itself; `monitor.config` reaches this module only lazily, because the
backends import `monitor.config` (for `MailboxConfig`, `TlsMode`, the field types).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from pydantic import Field, TypeAdapter

from monitor.config import MailboxConfig
from monitor.receive.backend import MailboxBackend
from monitor.receive.imap import ImapBackend, ImapMailbox
from monitor.receive.inbound import InboundBackend, InboundMailbox
from monitor.receive.maildir import MaildirBackend, MaildirMailbox
from monitor.receive.pop3 import Pop3Backend, Pop3Mailbox


@dataclass(frozen=True)
class Kind:
    config: type[MailboxConfig]
    backend: MailboxBackend[Any]

    @property
    def name(self) -> str:
        """The `kind` value users write: the one value of the model's `kind` Literal."""
        [name] = get_args(self.config.model_fields["kind"].annotation)
        return str(name)


KINDS: tuple[Kind, ...] = (
    Kind(ImapMailbox, ImapBackend()),
    Kind(Pop3Mailbox, Pop3Backend()),
    Kind(MaildirMailbox, MaildirBackend()),
    Kind(InboundMailbox, InboundBackend()),
)

BACKENDS: Mapping[str, MailboxBackend[Any]] = {kind.name: kind.backend for kind in KINDS}
MODELS: Mapping[str, type[MailboxConfig]] = {kind.name: kind.config for kind in KINDS}
# The order of KINDS is the order an unknown `kind` error lists them in.
MAILBOX_UNION: Any = Annotated[functools.reduce(operator.or_, MODELS.values()),
                               Field(discriminator="kind")]


@functools.cache
def mailbox_adapter() -> TypeAdapter[MailboxConfig]:
    return TypeAdapter(MAILBOX_UNION)
