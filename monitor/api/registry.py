"""Declared endpoints: each becomes a Starlette route AND its OpenAPI operation,
so the published document cannot drift from what is served."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor.api.auth import Scope, Tokens, authorize
from monitor.api.errors import ApiError

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str = "string"  # string | integer | date-time
    description: str = ""
    repeated: bool = False
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    scope: Scope | None = Scope.READ  # None: open
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # documented response headers
    conditional: bool = False  # answers If-None-Match with 304 (monitor.api.caching)


def routes(endpoints: Sequence[Endpoint], tokens: Tokens) -> list[Route]:
    grouped: dict[str, dict[str, Endpoint]] = {}
    for endpoint in endpoints:
        grouped.setdefault(endpoint.path, {})[endpoint.method] = endpoint
    out = []
    for path, methods in grouped.items():
        out.append(Route(path, _dispatch(methods, tokens), methods=list(methods)))
    return out


def _dispatch(methods: dict[str, Endpoint], tokens: Tokens) -> Handler:
    async def dispatch(request: Request) -> Response:
        endpoint = methods.get(request.method) or methods.get(
            "GET" if request.method == "HEAD" else "")
        if endpoint is None:
            raise ApiError(405, "method not allowed for this route")
        if endpoint.scope is not None:
            authorize(request, tokens, endpoint.scope)
        return await endpoint.handler(request)

    return dispatch


_ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "details": {}}}}}


def openapi(endpoints: Sequence[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    models = {m for e in endpoints for m in (e.body, e.response) if m is not None}
    _, definitions = models_json_schema(
        [(m, "validation" if any(e.body is m for e in endpoints) else "serialization")
         for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}")
    schemas = dict(definitions.get("$defs", {}))
    schemas["Error"] = _ERROR_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        operation: dict[str, Any] = {
            "summary": e.summary, "operationId": f"{e.method.lower()}_{_slug(e.path)}",
            "responses": {str(e.status): _response(e)}}
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in _path_params(e.path)]
        params += [{"name": p.name, "in": "query", "required": False,
                    "description": p.description, "schema": _param_schema(p),
                    **({"style": "form", "explode": True} if p.repeated else {})}
                   for p in e.query]
        if e.conditional:
            params.append({"name": "If-None-Match", "in": "header", "required": False,
                           "description": "An ETag from an earlier answer",
                           "schema": {"type": "string"}})
            operation["responses"]["304"] = {
                "description": "Not modified: the ETag given is still current"}
        if params:
            operation["parameters"] = params
        if e.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{e.body.__name__}"}}}}
        errors = set(e.errors) | ({401, 403} if e.scope is Scope.ADMIN else set()) | (
            {401} if e.scope is not None else set()) | ({400, 422} if e.body else set())
        for status in sorted(errors):
            operation["responses"][str(status)] = {
                "description": "error", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}}
        if e.scope is not None:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
    }


def _response(e: Endpoint) -> dict[str, Any]:
    response: dict[str, Any] = {"description": e.summary}
    if e.response is not None:
        response["content"] = {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{e.response.__name__}"}}}
    elif e.path == "/metrics":
        response["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif e.path == "/openapi.json":
        response["content"] = {"application/json": {"schema": {"type": "object"}}}
    if e.headers:
        response["headers"] = {k: {"description": v, "schema": {"type": "string"}}
                               for k, v in e.headers.items()}
    return response


def _param_schema(p: Param) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"} if p.kind == "integer" else {"type": "string"}
    if p.kind == "date-time":
        schema["format"] = "date-time"
    if p.minimum is not None:
        schema["minimum"] = p.minimum
    if p.maximum is not None:
        schema["maximum"] = p.maximum
    return {"type": "array", "items": schema} if p.repeated else schema


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _slug(path: str) -> str:
    return "_".join(p.strip("{}") for p in path.strip("/").split("/") if p) or "root"
