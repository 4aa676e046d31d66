"""/v1/events: events, filterable by provider, type and time, paginated by cursor."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from monitor import store
from monitor.api.errors import ApiError
from monitor.api.params import cursor_param, encode_cursor, int_param, time_param
from monitor.api.registry import Endpoint, Param
from monitor.api.schemas import EventPage, EventView
from monitor.events.model import EventType
from monitor.service.context import AppContext


def event_endpoints(ctx: AppContext) -> list[Endpoint]:
    async def list_events(request: Request) -> Response:
        types = request.query_params.getlist("type")
        unknown = [t for t in types if t not in EventType.__members__.values()]
        if unknown:
            raise ApiError(400, f"unknown event type {unknown[0]!r}",
                           details={"known": [t.value for t in EventType]})
        limit = int_param(request, "limit", 50, low=1, high=500)
        async with ctx.sessions() as session:
            rows = await store.events.list_events(
                session, provider=request.query_params.get("provider"), types=types,
                since=time_param(request, "since"), until=time_param(request, "until"),
                before=cursor_param(request), limit=limit)
        items = [EventView(id=r.id, type=r.type, provider=r.provider, timestamp=r.timestamp,
                           run_id=r.run_id, data=r.data).model_dump(mode="json") for r in rows]
        cursor = encode_cursor(rows[-1].id) if len(rows) == limit else None
        return JSONResponse({"items": items, "next_cursor": cursor})

    return [Endpoint("GET", "/v1/events", list_events, "Events, newest first", query=(
        Param("provider"), Param("type", repeated=True, description="Event type (repeatable)"),
        Param("since", "date-time"), Param("until", "date-time"),
        Param("limit", "integer", minimum=1, maximum=500), Param("cursor")),
        errors=(400,), response=EventPage)]
