"""Human-readable posture findings (`monitor posture`, `monitor check`): grouped by
severity, each with its explanation and the record it came from. Plain text: the
commands print it through `terminal_safe`."""

from __future__ import annotations

import textwrap

from monitor.posture.assess import PostureReport
from monitor.posture.finding import Finding, Severity

_TITLES = {Severity.ERROR: "Errors", Severity.WARNING: "Warnings", Severity.INFO: "Info"}
_WIDTH = 100


def counts(findings: list[Finding]) -> str:
    parts = []
    for severity in Severity:
        n = sum(f.severity is severity for f in findings)
        if n:
            parts.append(f"{n} {severity.value}{'s' if n > 1 and severity.value != 'info' else ''}")
    return ", ".join(parts) or "no findings"


def findings_section(findings: list[Finding], indent: str = "") -> list[str]:
    out: list[str] = []
    for severity in Severity:
        group = [f for f in findings if f.severity is severity]
        if not group:
            continue
        out.append(f"{indent}{_TITLES[severity]}")
        for finding in group:
            head = f"{indent}  {finding.id}"
            if finding.subject:
                head += f" ({finding.subject})"
            out.append(head)
            out += textwrap.wrap(finding.message, _WIDTH, initial_indent=f"{indent}      ",
                                 subsequent_indent=f"{indent}      ", break_on_hyphens=False)
            if finding.record:
                out.append(f"{indent}      record: {finding.record}")
    return out


def render_posture(report: PostureReport, nameserver: tuple[str, int] | None = None) -> str:
    via = f" via {nameserver[0]}:{nameserver[1]}" if nameserver else ""
    ip = f", sending IP {report.sending_ip}" if report.sending_ip else ""
    out = [f"Posture of {report.domain}{ip}{via}: {counts(report.findings)} "
           f"({report.queries} DNS queries, {report.duration_ms:.0f} ms)", ""]
    out += findings_section(report.findings)
    out += ["", "Verdict: " + ("FAILED" if report.failed else "PASSED")]
    return "\n".join(out)
