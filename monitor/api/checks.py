"""/v1/checks: start a pre-campaign check (202 + Location), then poll its report.

The check runs in the background on the replica that accepted it, and another
replica finishes it if that one dies (monitor/service/checking.py); its report
is written to the database as it progresses, so any replica can answer GET.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from monitor import store
from monitor.api.auth import Scope
from monitor.api.errors import ApiError, validation_details
from monitor.api.params import read_body
from monitor.api.registry import Endpoint
from monitor.api.schemas import Out
from monitor.checks import (
    CheckError,
    CheckReport,
    CheckRequest,
    new_check_id,
    pending_report,
    resolve,
)
from monitor.receive import ReceiveOptions
from monitor.service import checking
from monitor.service.context import AppContext

log = logging.getLogger("monitor.checks")

# Another replica resumes a check whose replica died; one still unfinished after this
# (every replica down that long) is reported as interrupted.
STALE_AFTER = timedelta(hours=2)


class CheckAccepted(Out):
    id: str
    status: str
    location: str


def check_endpoints(ctx: AppContext, options: ReceiveOptions) -> list[Endpoint]:
    async def start(request: Request) -> Response:
        body = await read_body(request, CheckRequest)
        try:
            resolve(ctx.config, body)
        except CheckError as exc:
            raise ApiError(422, str(exc), code=exc.code, details=exc.details) from None
        check_id = new_check_id()
        report = pending_report(check_id, body, ctx.config)
        async with ctx.sessions() as session, session.begin():
            store.checks.add_check(session, check_id=check_id, status=report.status.value,
                                   created_at=ctx.clock(),
                                   request=body.model_dump(mode="json", by_alias=True),
                                   report=report.model_dump(mode="json", by_alias=True),
                                   claimed_by=ctx.replica, lease=checking.LEASE)
        checking.start(ctx, options, body, check_id, report)
        location = f"/v1/checks/{check_id}"
        return JSONResponse(CheckAccepted(id=check_id, status=report.status.value,
                                          location=location).model_dump(),
                            status_code=202, headers={"Location": location})

    async def get(request: Request) -> Response:
        async with ctx.sessions() as session:
            row = await store.checks.get_check(session, request.path_params["id"])
        if row is None:
            raise ApiError(404, "no such check")
        report = dict(row.report)
        if row.finished_at is None and ctx.clock() - row.created_at > STALE_AFTER:
            report |= {"status": "error",
                       "error": "the check was interrupted (its replica stopped)"}
        try:
            CheckReport.model_validate(report)
        except ValidationError as exc:  # a report written by another version
            raise ApiError(409, "stored report is unreadable",
                           details=validation_details(exc)) from None
        return JSONResponse(report)

    return [
        Endpoint("POST", "/v1/checks", start, "Start a pre-campaign deliverability check",
                 scope=Scope.ADMIN, body=CheckRequest, response=CheckAccepted, status=202,
                 errors=(413, 415), headers={"Location": "where to poll for the report"}),
        Endpoint("GET", "/v1/checks/{id}", get, "A check's progress and report",
                 response=CheckReport, errors=(404,)),
    ]
