"""Errors as ``application/problem+json`` (RFC 9457), mapped from one table."""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tribune import exceptions as exc

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

#: Domain error -> HTTP status. Subclasses inherit their parent's row (most specific wins).
STATUS: dict[type[exc.TribuneError], int] = {
    exc.InvalidInput: 422,
    exc.NotAuthenticated: 401,
    exc.Forbidden: 403,
    exc.NotFound: 404,
    exc.Conflict: 409,
    exc.Gone: 410,
    exc.PayloadTooLarge: 413,
    exc.UnsupportedMediaType: 415,
    exc.RateLimited: 429,
    exc.ServiceUnavailable: 503,
}

_HTTP_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def _slug(title: str) -> str:
    return "-".join(title.lower().replace("-", " ").split())


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    title = title or _HTTP_TITLES.get(status, "Error")
    body: dict[str, Any] = {
        "type": f"urn:tribune:problem:{_slug(title)}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def status_for(error: exc.TribuneError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def _describe(err: dict[str, Any]) -> dict[str, str]:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return {"field": loc, "message": str(err.get("msg", "invalid"))}


def problem_for(error: exc.TribuneError, path: str) -> Response:
    """The one rendering of a domain error, for routes and for the ASGI fast path."""
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(error, exc.RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        extra["retry_after"] = round(error.retry_after, 3)
    if isinstance(error, exc.Queued):
        headers["Retry-After"] = str(error.retry_after)
        extra.update(
            position=error.position,
            estimated_wait_s=error.estimated_wait_s,
            retry_after=error.retry_after,
            ticket=error.ticket,
            prestart=error.prestart,
        )
    if isinstance(error, exc.ProofOfWorkRequired):
        extra["challenge"] = error.challenge
    if isinstance(error, exc.NotAuthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="tribune"'
    return problem(
        status_for(error), error.detail, title=error.title, instance=path, headers=headers, **extra
    )


async def on_tribune_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, exc.TribuneError)
    return problem_for(error, request.url.path)


async def on_validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    errors = list(error.errors())
    bad_json = [e for e in errors if e.get("type") == "json_invalid"]
    if bad_json:
        ctx = bad_json[0].get("ctx") or {}
        reason = ctx.get("error", "parse error")
        return problem(
            400,
            f"request body is not valid JSON: {reason}",
            title="Malformed JSON",
            instance=request.url.path,
        )
    described = [_describe(e) for e in errors]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in described)
    return problem(422, summary, title="Invalid input", instance=request.url.path, errors=described)


async def on_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    if error.status_code == 404 and detail == "Not Found":
        detail = f"nothing at {request.url.path}"
    elif error.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem(
        error.status_code, detail, instance=request.url.path, headers=dict(error.headers or {})
    )


async def on_unexpected(request: Request, error: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "the server hit an unexpected error; it has been logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(exc.TribuneError, on_tribune_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
