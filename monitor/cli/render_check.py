"""Human-readable output of a check (`monitor check`): progress bar, seed table, DNS section,
verdict. Plain text: the command prints it through `terminal_safe`."""

from __future__ import annotations

from monitor.checks.model import CheckReport, CheckStatus, DnsReport, Progress, SeedReport
from monitor.cli.render_posture import counts, findings_section

_BAR_WIDTH = 20
_HEAD = ["seed", "address", "MAIL", "RCPT", "DATA", "MESSAGE", "delivery", "latency",
         "folder", "SPF", "DKIM", "DMARC"]


def progress_bar(progress: Progress) -> str:
    total = max(progress.seeds_total, 1)
    filled = round(_BAR_WIDTH * progress.seeds_done / total)
    return (f"[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] "
            f"{progress.seeds_done}/{progress.seeds_total} seeds ({progress.stage.value})")


def _code(seed: SeedReport, step: str) -> str:
    code, enhanced = seed.code(step)
    return " ".join(str(x) for x in (code, enhanced) if x) or "-"


def _delivery(seed: SeedReport) -> str:
    if not seed.accepted:
        return "NOT ACCEPTED"
    if seed.receive_status is None:
        return "waiting"
    if seed.arrived:
        return "arrived" if seed.receive_status.value == "arrived" else "LATE"
    return seed.receive_status.value.upper()


def _latency(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _row(seed: SeedReport) -> list[str]:
    folder = seed.folder or "-"
    if seed.placement is not None and seed.placement.value not in ("inbox", folder.lower()):
        folder += f" ({seed.placement.value})"  # e.g. "[Gmail]/Spam (junk)"
    verdicts = [v.value if v else "-" for v in (seed.spf, seed.dkim, seed.dmarc)]
    return [seed.mailbox, seed.address, *(_code(seed, s) for s in ("mail", "rcpt", "data",
                                                                     "message")),
            _delivery(seed), _latency(seed.latency_ms), folder, *verdicts]


def seed_table(seeds: list[SeedReport]) -> str:
    rows = [_HEAD, *(_row(s) for s in seeds)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEAD))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    for seed in seeds:
        if seed.error:
            lines.append(f"  {seed.mailbox}: {seed.error}")
    return "\n".join(lines)


def dns_section(dns: DnsReport) -> list[str]:
    via = f" (via {dns.nameserver})" if dns.nameserver else ""
    out = [f"DNS for {dns.domain}{via}, {dns.duration_ms:.0f} ms"]
    mx = dns.mx
    if mx.hosts:
        hosts = ", ".join(f"{h.preference} {h.exchange}" for h in mx.hosts)
        out.append(f"  MX     {hosts}" + ("  (null MX: accepts no mail)" if mx.null_mx else ""))
    else:
        out.append(f"  MX     {mx.error or 'none'}")
    spf = dns.spf
    if spf.record is not None:
        state = "parseable" if spf.parseable else f"NOT parseable: {spf.error}"
        qualifier = f", all: {spf.all_qualifier}all" if spf.all_qualifier else ", no `all`"
        out.append(f"  SPF    {spf.record}")
        out.append(f"         {state}{qualifier if spf.parseable else ''}")
    elif spf.records:
        out.append(f"  SPF    {spf.error}:")
        out += [f"           {r}" for r in spf.records]
    else:
        out.append(f"  SPF    {spf.error or 'none'}")
    dmarc = dns.dmarc
    if dmarc.record is not None:
        out.append(f"  DMARC  {dmarc.name}: {dmarc.record}")
        if dmarc.valid:
            out.append(f"         p={dmarc.policy} sp={dmarc.subdomain_policy or '-'} "
                       f"pct={dmarc.pct if dmarc.pct is not None else 100}"
                       + (f" rua={','.join(dmarc.rua)}" if dmarc.rua else ""))
        else:
            out.append(f"         invalid: {dmarc.error}")
    else:
        out.append(f"  DMARC  {dmarc.error or 'none at ' + dmarc.name}")
    return out


def render_report(report: CheckReport) -> str:
    out = [f"Check {report.id}: provider {report.provider}, from {report.sender}", "",
           seed_table(report.seeds), ""]
    if report.dns is not None:
        out += [*dns_section(report.dns), ""]
    if report.posture is not None:
        posture = report.posture
        ip = f", sending IP {posture.sending_ip}" if posture.sending_ip else ""
        out += [f"Posture of {posture.domain}{ip}: {counts(posture.findings)}",
                *findings_section(posture.findings, "  "), ""]
    if report.status is CheckStatus.ERROR:
        out.append(f"ERROR: {report.error}")
    elif report.verdict is not None:
        took = ""
        if report.started_at and report.finished_at:
            took = f" in {(report.finished_at - report.started_at).total_seconds():.1f} s"
        out.append(f"Verdict: {report.verdict.value.upper()}{took}")
        out += [f"  - {reason}" for reason in report.reasons]
    if report.warnings:
        out.append("Warnings:")
        out += [f"  - {warning}" for warning in report.warnings]
    return "\n".join(out)
