"""Pre-campaign deliverability checks (DESIGN.md "Pre-campaign check").

Public surface, for `POST /v1/checks` and `monitor check`:

    CheckRequest                      the request body (`from`, seeds, subject, text, html)
    resolve(config, request)          CheckError now if provider/seed unknown (API: 422)
    new_check_id() / pending_report(check_id, request, config)   what POST answers (202)
    await run_check(config, request, *, check_id, dns_nameserver=None,
                    receive_options=None, on_progress=None) -> CheckReport
    completed_event(report) -> Event  the `check.completed` event to store and fan out
    lookup_domain(domain, *, nameserver=None) -> DnsReport        the DNS part alone

Exceptions: only `CheckError` (errors.py), raised before anything is sent.
Modules: model (request/report), dns (lookups; the record syntax is monitor/posture/records.py),
verdict (pure decision), runner (the check), event. The command and its text output
are monitor/cli/check.py and monitor/cli/render_check.py.
"""

from monitor.checks.dns import lookup_domain
from monitor.checks.errors import CheckError
from monitor.checks.event import completed_event
from monitor.checks.model import (
    CheckReport,
    CheckRequest,
    CheckStatus,
    DmarcReport,
    DnsReport,
    MxReport,
    Progress,
    SeedReport,
    SpfReport,
    Stage,
    Verdict,
)
from monitor.checks.runner import new_check_id, pending_report, resolve, run_check

__all__ = [
    "CheckError",
    "CheckReport",
    "CheckRequest",
    "CheckStatus",
    "DmarcReport",
    "DnsReport",
    "MxReport",
    "Progress",
    "SeedReport",
    "SpfReport",
    "Stage",
    "Verdict",
    "completed_event",
    "lookup_domain",
    "new_check_id",
    "pending_report",
    "resolve",
    "run_check",
]
