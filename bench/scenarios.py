"""The comparisons, each yielding table rows: ours against a baseline from the same run."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from bench import clients
from bench.server import ServerInfo
from bench.timing import Measure, Metered, commands, compare, in_loop, interleaved
from monitor.probe.message import MessageSpec, build_message, new_token

Unit = Literal["probes/s", "ms/run", "CPU ms/probe"]


@dataclass(frozen=True)
class Preset:
    """Operations per round for each kind of contender, and how many rounds."""

    connect_n: int
    send_n: int
    check_smtp_n: int
    swaks_n: int
    cli_n: int
    rounds: int
    warmup: int
    concurrency: int = 20


QUICK = Preset(connect_n=100, send_n=30, check_smtp_n=30, swaks_n=5, cli_n=3, rounds=3,
               warmup=5)
FULL = Preset(connect_n=600, send_n=150, check_smtp_n=150, swaks_n=12, cli_n=6, rounds=7,
              warmup=20)


@dataclass(frozen=True)
class Row:
    """One comparison; `ours` and `baseline` are median seconds per operation."""

    scenario: str
    ours: float
    baseline: float
    ratio: float  # median of per-round ours/baseline, in seconds per operation
    unit: Unit


class Bench:
    def __init__(self, runner: asyncio.Runner, server: ServerInfo, workdir: Path,
                 preset: Preset) -> None:
        self.runner = runner
        self.server = server
        self.preset = preset
        self.config = clients.make_config(server)
        self.config_file = clients.write_config(server, workdir / "bench.yaml")

    def rows(self) -> Iterator[Row]:
        yield from self.connect_throughput()
        yield from self.send_throughput()
        yield self.send_cpu()
        yield from self.local_hostname()
        yield from self.vs_check_smtp()
        yield from self.vs_swaks()

    # -- helpers -------------------------------------------------------------------

    def _ours(self, name: str, concurrency: int = 1) -> Measure:
        return in_loop(self.runner, clients.ours(self.config, name), concurrency)

    def _pair(self, scenario: str, ours: tuple[Measure, int], baseline: tuple[Measure, int],
              unit: Unit) -> Row:
        _progress(scenario)
        p = self.preset
        result = compare(ours, baseline, p.rounds, p.warmup)
        return Row(scenario, result.ours, result.baseline, result.ratio, unit)

    # -- 1. connect-mode throughput --------------------------------------------------

    def connect_throughput(self) -> Iterator[Row]:
        p, raw = self.preset, clients.raw_connect(self.server)
        for concurrency in (1, p.concurrency):
            how = "sequential" if concurrency == 1 else f"{concurrency} concurrent"
            yield self._pair(
                f"connect, {how}: run_probe vs raw aiosmtplib",
                (self._ours("connect", concurrency), p.connect_n),
                (in_loop(self.runner, raw, concurrency), p.connect_n), "probes/s")

    # -- 2. send-mode throughput -----------------------------------------------------

    def send_throughput(self) -> Iterator[Row]:
        p = self.preset
        raw = clients.raw_send(self.server, _probe_message_size())
        for concurrency in (1, p.concurrency):
            how = "sequential" if concurrency == 1 else f"{concurrency} concurrent"
            yield self._pair(
                f"send (STARTTLS+AUTH), {how}: run_probe vs raw aiosmtplib",
                (self._ours("send", concurrency), p.send_n),
                (in_loop(self.runner, raw, concurrency), p.send_n), "probes/s")

    def send_cpu(self) -> Row:
        """CPU of this process per send at 20 concurrent (the server is another process):
        steadier than probes/s on a shared machine, since waiting for a core is not CPU."""
        p = self.preset
        scenario = f"send (STARTTLS+AUTH), {p.concurrency} concurrent: CPU, run_probe vs raw"
        _progress(scenario)
        raw = clients.raw_send(self.server, _probe_message_size())
        ours = Metered(self._ours("send", p.concurrency), time.process_time)
        theirs = Metered(in_loop(self.runner, raw, p.concurrency), time.process_time)
        interleaved([(ours, p.send_n), (theirs, p.send_n)], p.rounds, p.warmup)
        ratios = [o / b for o, b in zip(ours.samples, theirs.samples, strict=True)]
        return Row(scenario, statistics.median(ours.samples),
                   statistics.median(theirs.samples), statistics.median(ratios),
                   "CPU ms/probe")

    # -- 5. aiosmtplib's local_hostname ----------------------------------------------

    def local_hostname(self) -> Iterator[Row]:
        p = self.preset
        explicit = clients.raw_connect(self.server, clients.HELO)
        unset = clients.raw_connect(self.server, None)
        for concurrency in (1, p.concurrency):
            how = "sequential" if concurrency == 1 else f"{concurrency} concurrent"
            yield self._pair(
                f"raw aiosmtplib connect, {how}: local_hostname set vs unset",
                (in_loop(self.runner, explicit, concurrency), p.connect_n),
                (in_loop(self.runner, unset, concurrency), p.connect_n), "probes/s")

    # -- 4. check_smtp ---------------------------------------------------------------

    def vs_check_smtp(self) -> Iterator[Row]:
        p, server = self.preset, self.server
        plain = (commands(clients.check_smtp(server, starttls=False)), p.check_smtp_n)
        starttls = (commands(clients.check_smtp(server, starttls=True)), p.check_smtp_n)
        yield self._pair("connect: run_probe (in-process) vs check_smtp",
                         (self._ours("connect"), p.check_smtp_n), plain, "ms/run")
        yield self._pair("tls: run_probe (in-process) vs check_smtp -S",
                         (self._ours("tls"), p.check_smtp_n), starttls, "ms/run")
        cli = commands(clients.monitor_cli(self.config_file, "connect"))
        yield self._pair("connect: `monitor probe` CLI vs check_smtp",
                         (cli, p.cli_n), plain, "ms/run")

    # -- 3. swaks --------------------------------------------------------------------

    def vs_swaks(self) -> Iterator[Row]:
        p = self.preset
        swaks = (commands(clients.swaks(self.server)), p.swaks_n)
        yield self._pair("send: run_probe (in-process) vs swaks",
                         (self._ours("send"), p.swaks_n), swaks, "ms/run")
        cli = commands(clients.monitor_cli(self.config_file, "send"))
        yield self._pair("send: `monitor probe` CLI vs swaks", (cli, p.cli_n), swaks, "ms/run")


def _probe_message_size() -> int:
    """Bytes of the message a send probe carries, so the raw client sends as many."""
    spec = MessageSpec(sender=clients.SENDER, recipients=(clients.RECIPIENT,),
                       subject="Delivery Monitor probe")
    body, _ = build_message(spec, token=new_token(), now=datetime.now(UTC), helo=clients.HELO)
    return len(body)


def _progress(scenario: str) -> None:
    # stderr: stdout carries only the table, so it can be redirected and diffed.
    print(f"  measuring {scenario} ...", file=sys.stderr, flush=True)
