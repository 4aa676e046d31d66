"""Mailbox config: one model per kind, each with only its own keys; IMAP XOAUTH2.

The messages of bad configs are in the catalogue (tests/fixtures/config/); these
tests cover what loading a good one gives, and the rules around the secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import ConfigError, MailboxConfig, load_config
from monitor.receive.backend import ServerMailbox
from monitor.receive.imap import ImapAuth, ImapMailbox
from monitor.receive.inbound import InboundMailbox
from monitor.receive.maildir import MaildirMailbox
from monitor.receive.pop3 import Pop3Mailbox

SHARED = {"name", "address", "kind", "deliver_within"}
SERVER = {"host", "port", "tls", "tls_verify", "ca_file", "username"}
FIELDS = {
    ImapMailbox: SERVER | {"password", "auth", "token", "token_file", "folders"},
    Pop3Mailbox: SERVER | {"password"},
    MaildirMailbox: {"path", "folders"},
    InboundMailbox: {"token"},
}
GMAIL = {"name": "seed-gmail", "address": "seed@gmail.example", "kind": "imap",
         "host": "imap.gmail.com", "username": "seed@gmail.example", "auth": "xoauth2"}


def load(tmp_path: Path, *mailboxes: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump({"mailboxes": list(mailboxes)}))
    return load_config(path, env=env or {})


def problem(tmp_path: Path, *mailboxes: dict[str, Any], env: dict[str, str] | None = None
            ) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, *mailboxes, env=env)
    [(where, what)] = caught.value.problems
    return f"{where}: {what}"


@pytest.mark.parametrize("model", FIELDS, ids=lambda m: m.__name__)
def test_each_kind_has_only_the_keys_it_uses(model: type[MailboxConfig]) -> None:
    assert set(model.model_fields) == SHARED | FIELDS[model]


def test_a_key_of_another_kind_is_unknown(tmp_path: Path) -> None:
    # The flat model took `folders` on pop3 and `tls` on maildir, and ignored them.
    pop3 = {"name": "p", "address": "p@example.test", "kind": "pop3", "host": "h",
            "username": "u", "password": "pw", "folders": ["Junk"]}
    assert problem(tmp_path, pop3) == "mailboxes[0].folders: unknown key"
    maildir = {"name": "m", "address": "m@example.test", "kind": "maildir", "path": "/m",
               "tls": "none"}
    assert problem(tmp_path, maildir) == "mailboxes[0].tls: unknown key"


def test_validate_returns_the_model_of_the_kind() -> None:
    mailbox = MailboxConfig.model_validate({"name": "m", "address": "m@example.test",
                                            "kind": "maildir", "path": "/srv/mail"})
    assert isinstance(mailbox, MaildirMailbox) and mailbox.path == Path("/srv/mail")
    assert issubclass(ImapMailbox, ServerMailbox) and issubclass(Pop3Mailbox, ServerMailbox)


def test_xoauth2_with_a_token_from_the_environment(tmp_path: Path) -> None:
    config = load(tmp_path, {**GMAIL, "token": "${GMAIL_TOKEN}"},
                  env={"GMAIL_TOKEN": "ya29.a0-secret"})
    [mailbox] = config.mailboxes
    assert isinstance(mailbox, ImapMailbox) and mailbox.auth is ImapAuth.XOAUTH2
    assert mailbox.token is not None and mailbox.token.get_secret_value() == "ya29.a0-secret"
    assert (mailbox.password, mailbox.token_file, mailbox.folders) == (None, None, ("INBOX",))
    assert "ya29.a0-secret" not in repr(config)


def test_xoauth2_with_a_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "gmail-token"
    token_file.write_text("ya29.a0-from-the-sidecar\n")
    [mailbox] = load(tmp_path, {**GMAIL, "token_file": str(token_file)}).mailboxes
    assert isinstance(mailbox, ImapMailbox) and mailbox.token_file == token_file
    assert mailbox.token is None


def test_password_stays_the_default_auth(tmp_path: Path) -> None:
    [mailbox] = load(tmp_path, {**GMAIL, "auth": "password", "password": "pw"}).mailboxes
    assert isinstance(mailbox, ImapMailbox) and mailbox.auth is ImapAuth.PASSWORD
    no_auth = {k: v for k, v in GMAIL.items() if k != "auth"}
    [mailbox] = load(tmp_path, {**no_auth, "password": "pw"}).mailboxes
    assert isinstance(mailbox, ImapMailbox) and mailbox.auth is ImapAuth.PASSWORD


@pytest.mark.parametrize(("fields", "message"), [
    ({"password": "pw"}, "auth xoauth2 takes `token` or `token_file` instead of `password`"),
    ({"auth": "password", "password": "pw", "token": "t"}, "`token` needs auth: xoauth2"),
    ({"auth": "password", "token": "t"}, "`token` needs auth: xoauth2"),
])
def test_exactly_one_secret_that_fits_auth(tmp_path: Path, fields: dict[str, Any],
                                           message: str) -> None:
    assert problem(tmp_path, {**GMAIL, **fields}) == f"mailboxes[0]: {message}"


def test_a_token_that_is_not_one_word_is_refused_and_not_echoed(tmp_path: Path) -> None:
    message = problem(tmp_path, {**GMAIL, "token": "${T}"}, env={"T": "ya29 secret\x01"})
    assert message == ("mailboxes[0].token: must be an access token: one word, no spaces "
                       "or control characters")
