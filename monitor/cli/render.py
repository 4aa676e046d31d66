"""Human-readable output of a probe result: the step table, TLS, capabilities,
diagnosis, and the receive side's verdict under it (`monitor probe`).

Returns plain text; the caller prints it through `terminal_safe` (monitor/cli/terminal.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from monitor.events.summary import failure as failure_text
from monitor.probe.result import ProbeResult, StepResult, TlsInfo
from monitor.receive.result import ReceiveResult, ReceiveStatus

_TEXT_WIDTH = 64


def _cell(step: StepResult) -> list[str]:
    name = step.step.value + (f" {step.recipient}" if step.recipient else "")
    mark = "ok" if step.ok else ("FAIL" if step.failure_class else "--")
    text = (step.text.splitlines() or [""])[0]
    if len(text) > _TEXT_WIDTH:
        text = text[: _TEXT_WIDTH - 1] + "…"
    return [mark, name, str(step.code or "-"), step.enhanced_code or "-",
            f"{step.latency_ms:.1f} ms", text]


def step_table(result: ProbeResult) -> str:
    rows = [["", "step", "code", "enhanced", "latency", "text"]]
    rows += [_cell(s) for s in result.steps]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [c.ljust(w) if i != 4 else c.rjust(w) for i, (c, w) in
                 enumerate(zip(row, widths, strict=False))]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def tls_summary(tls: TlsInfo, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    trust = "verified" if tls.verified else f"NOT verified: {tls.verify_error or 'unknown'}"
    lines = [f"TLS:          {tls.protocol or '?'} {tls.cipher or ''} ({trust})".rstrip()]
    cert = tls.certificate
    if cert is not None:
        lines.append(f"Certificate:  {cert.subject} issued by {cert.issuer}")
        if cert.sans:
            lines.append(f"              SANs {', '.join(cert.sans)}")
        if cert.not_after is not None:
            days = (cert.not_after - now).total_seconds() / 86400
            state = f"in {days:.0f} days" if days >= 0 else f"EXPIRED {-days:.0f} days ago"
            lines.append(f"              expires {cert.not_after:%Y-%m-%d %H:%M} UTC ({state})")
    return lines


def render_result(result: ProbeResult) -> str:
    head = (f"Probe {result.provider} — {result.host}:{result.port} tls={result.tls_mode} "
            f"mode={result.mode}")
    out = [head, "", step_table(result), ""]
    if result.tls is not None:
        out += tls_summary(result.tls)
    caps = result.capabilities
    if caps is not None:
        if caps.esmtp:
            ext = " ".join(caps.extensions)
            out.append(f"Extensions:   {ext or '(none)'}")
            if caps.auth_mechanisms:
                out.append(f"AUTH:         {' '.join(caps.auth_mechanisms)}")
            if caps.size:
                out.append(f"SIZE:         {caps.size} bytes")
        else:
            out.append("Extensions:   none (server answered HELO only, no ESMTP)")
    for finding in result.findings:
        out.append(f"Finding:      {finding.message}")
    out.append("")
    if result.ok:
        out.append(f"OK in {result.duration_ms:.0f} ms")
    else:
        failed = result.failure
        cls = result.failure_class.value if result.failure_class else None
        where = (failure_text(failed.step.value, failed.code, failed.enhanced_code, cls)
                 if failed else failure_text(None, None, None, cls))
        out.append(f"FAILED at {where} after {result.duration_ms:.0f} ms")
        if result.diagnosis is not None:
            out.append(f"  {result.diagnosis.summary}")
            out.append(f"  Next: {result.diagnosis.action}")
    return "\n".join(out)


def _seconds(ms: float | None) -> str:
    if ms is None:
        return "?"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _receive_lines(result: ReceiveResult) -> list[str]:
    who = f"{result.mailbox} ({result.backend})"
    status = result.status
    if status in (ReceiveStatus.ARRIVED, ReceiveStatus.LATE):
        placement = result.placement.value if result.placement else "?"
        where = f"folder {result.folder} → {placement}"
        if not result.folder_known:
            where += " (POP3 shows the inbox only)"
        verdict = "arrived" if result.ok else (
            "ARRIVED LATE" if status is ReceiveStatus.LATE else "landed in JUNK")
        lines = [f"{who} {verdict}, {where}",
                 f"latency {_seconds(result.latency_ms)} to the Received timestamp, "
                 f"seen after {_seconds(result.seen_latency_ms)}"
                 + ("; deleted" if result.deleted else "")]
        auth = "  ".join(f"{name} {value.value if value else '-'}" for name, value in
                         (("SPF", result.spf), ("DKIM", result.dkim), ("DMARC", result.dmarc)))
        lines.append(auth + (f"  (by {result.authserv_id})" if result.authserv_id else ""))
        if result.error:
            lines.append(result.error)
        return lines + [f"note: {note}" for note in result.notes]
    if status is ReceiveStatus.PENDING:
        return [f"{who} not seen yet (deadline {result.deadline:%H:%M:%S} UTC)"]
    label = result.failure_class.value if result.failure_class else "?"
    return [f"{who} FAILED ({label}): {result.error or status.value}"]


def render_receive(results: Sequence[ReceiveResult]) -> str:
    """The receive side under the step table: one block per mailbox."""
    out: list[str] = []
    for result in results:
        for index, line in enumerate(_receive_lines(result)):
            out.append(("Delivery:     " if index == 0 else "              ") + line)
    return "\n".join(out)
