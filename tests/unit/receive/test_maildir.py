"""The Maildir backend on a real directory tree: folders, junk, deletion, the sweep."""

from __future__ import annotations

import asyncio
import mailbox
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config, MailboxConfig
from monitor.probe.result import FailureClass
from monitor.receive import ReceiveOptions, ReceiveStatus, poll_pending
from monitor.receive.backend import Scan
from monitor.receive.maildir import deliver, inbound_dir
from monitor.receive.result import Placement
from tests.unit.receive.fakes import pending

NOW = datetime.now(UTC)


def message(token: str | None, *, received: datetime = NOW, extra: str = "") -> bytes:
    lines = [f"Received: from a by b; {format_datetime(received)}", "From: a@example.test",
             "Subject: probe"]
    if token:
        lines.append(f"X-Delivery-Monitor-Token: {token}")
    return ("\n".join(lines) + "\n" + extra + "\nbody\n").encode()


def maildir_config(path: Path, **fields: object) -> Config:
    return Config(mailboxes=(MailboxConfig.model_validate(
        {"name": "md", "address": "seed@example.test", "kind": "maildir", "path": path,
         **fields}),))


def files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.parent.name in ("new", "cur"))


async def test_finds_inbox_and_junk_deletes_them_and_sweeps_stale_probes(tmp_path: Path) -> None:
    root = mailbox.Maildir(tmp_path / "Maildir", create=True)
    junk = root.add_folder("Junk")
    root.add(message("dm-inbox"))
    junk.add(message("dm-junk"))
    root.add(message(None))  # the user's own mail is never touched
    root.add(message("dm-stale", received=NOW - timedelta(days=2)))  # nobody waits for it
    root.add(message("dm-recent"))  # another monitor's probe, still in flight
    config = maildir_config(tmp_path / "Maildir")

    results = await poll_pending(config, [pending("dm-inbox", "md", NOW),
                                           pending("dm-junk", "md", NOW)], NOW)
    assert [(r.status, r.folder, r.placement, r.deleted) for r in results] == [
        (ReceiveStatus.ARRIVED, "INBOX", Placement.INBOX, True),
        (ReceiveStatus.ARRIVED, "Junk", Placement.JUNK, True)]
    left = {mailbox.Maildir(tmp_path / "Maildir").get_message(k).get(
        "X-Delivery-Monitor-Token") for k in mailbox.Maildir(tmp_path / "Maildir").iterkeys()}
    assert left == {None, "dm-recent"}
    assert len(junk) == 0


async def test_cur_messages_and_configured_folders_are_searched(tmp_path: Path) -> None:
    root = mailbox.Maildir(tmp_path / "Maildir", create=True)
    archive = root.add_folder("Archive")
    seen = mailbox.MaildirMessage(message("dm-cur"))
    seen.set_subdir("cur")
    root.add(seen)
    archive.add(message("dm-archive"))
    config = maildir_config(tmp_path / "Maildir", folders=["INBOX", "Archive"])
    results = await poll_pending(config, [pending("dm-cur", "md", NOW),
                                           pending("dm-archive", "md", NOW)], NOW)
    assert [(r.folder, r.placement) for r in results] == [
        ("INBOX", Placement.INBOX), ("Archive", Placement.OTHER)]


async def test_missing_maildir_or_folder_is_permanent(tmp_path: Path) -> None:
    [result] = await poll_pending(maildir_config(tmp_path / "nope"),
                                   [pending("t", "md", NOW)], NOW)
    assert (result.failure_class, result.step) == (FailureClass.PERMANENT, "open")
    mailbox.Maildir(tmp_path / "Maildir", create=True)
    [result] = await poll_pending(maildir_config(tmp_path / "Maildir", folders=["Gone"]),
                                   [pending("t", "md", NOW)], NOW)
    assert (result.failure_class, result.step) == (FailureClass.PERMANENT, "select")


async def test_deliver_writes_a_complete_file_into_new(tmp_path: Path) -> None:
    name = deliver(tmp_path / "box", message("dm-1"))
    assert (tmp_path / "box" / "new" / name).read_bytes() == message("dm-1")
    assert list((tmp_path / "box" / "tmp").iterdir()) == []
    assert deliver(tmp_path / "box", b"x") != name


async def test_inbound_backend_reads_what_deliver_wrote(tmp_path: Path) -> None:
    config = Config(mailboxes=(MailboxConfig.model_validate(
        {"name": "hook", "address": "seed@example.test", "kind": "inbound", "token": "s"}),))
    options = ReceiveOptions(data_dir=tmp_path)
    [before] = await poll_pending(config, [pending("dm-2", "hook", NOW)], NOW, options=options)
    assert before.status is ReceiveStatus.PENDING  # nothing posted yet is not an error
    deliver(inbound_dir(tmp_path, "hook"), message("dm-2"))
    [after] = await poll_pending(config, [pending("dm-2", "hook", NOW)], NOW, options=options)
    assert (after.status, after.backend, after.placement) == (
        ReceiveStatus.ARRIVED, "inbound", Placement.INBOX)
    assert files(inbound_dir(tmp_path, "hook")) == []


def test_a_message_removed_by_another_reader_mid_scan_is_skipped(tmp_path: Path) -> None:
    from monitor.receive.maildir import _headers

    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box.add(message("dm-a"))
    box.add(message("dm-b"))
    scan = _headers(box)
    first_key, _ = next(scan)
    other = mailbox.Maildir(tmp_path / "Maildir")  # a concurrent scan, e.g. another replica
    for key in list(other.iterkeys()):
        if key != first_key:
            other.remove(key)
    assert list(scan) == []


async def test_other_mail_does_not_crowd_probe_messages_out(tmp_path: Path) -> None:
    root = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for _ in range(200):
        root.add(message(None))
    for token in ("dm-a", "dm-b", "dm-c"):
        root.add(message(token))
    config = maildir_config(tmp_path / "Maildir")
    tokens = [pending(t, "md", NOW) for t in ("dm-a", "dm-b", "dm-c")]
    # Only probe messages count towards max_messages: all three are found among 200 others.
    results = await poll_pending(config, tokens, NOW, options=ReceiveOptions(max_messages=10))
    assert [r.status for r in results] == [ReceiveStatus.ARRIVED] * 3
    assert len(files(tmp_path / "Maildir")) == 200


async def test_the_newest_probe_messages_are_examined_first(tmp_path: Path) -> None:
    root = mailbox.Maildir(tmp_path / "Maildir", create=True)
    ages = {"dm-old": 3, "dm-mid": 2, "dm-new": 1}
    for token, minutes in ages.items():
        root.add(message(token, received=NOW - timedelta(minutes=minutes)))
    config = maildir_config(tmp_path / "Maildir")
    results = await poll_pending(config, [pending(t, "md", NOW) for t in ages], NOW,
                                  options=ReceiveOptions(max_messages=2))
    assert [r.status for r in results] == [
        ReceiveStatus.PENDING, ReceiveStatus.ARRIVED, ReceiveStatus.ARRIVED]
    assert len(files(tmp_path / "Maildir")) == 1  # dm-old, left for the next scan


async def test_a_scan_cut_at_check_timeout_deletes_nothing_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.receive import maildir

    root = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for _ in range(5):
        root.add(message(None))
    root.add(message("dm-slow"))
    for _ in range(5):
        root.add(message(None))
    read_header, scan_maildir = maildir._header_block, maildir.scan_maildir
    finished = threading.Event()

    def slow_header_block(handle: Iterable[bytes]) -> bytes:
        time.sleep(0.1)  # a slow disk: the scan outlives scan_timeout in its thread
        return read_header(handle)

    def watched_scan(*args: Any) -> Scan:
        try:
            return scan_maildir(*args)
        finally:
            finished.set()

    monkeypatch.setattr(maildir, "_header_block", slow_header_block)
    monkeypatch.setattr(maildir, "scan_maildir", watched_scan)
    config = maildir_config(tmp_path / "Maildir")
    token = pending("dm-slow", "md", NOW)
    [cut] = await poll_pending(config, [token], NOW, options=ReceiveOptions(scan_timeout=0.3))
    assert (cut.status, cut.failure_class) == (ReceiveStatus.ERROR, FailureClass.TIMEOUT)
    assert await asyncio.to_thread(finished.wait, 10)  # the worker thread has ended
    assert len(files(tmp_path / "Maildir")) == 11  # it deleted nothing it did not report
    monkeypatch.setattr(maildir, "_header_block", read_header)
    [again] = await poll_pending(config, [token], NOW)
    assert again.status is ReceiveStatus.ARRIVED
