"""Errors as RFC 9457 problem+json, mapped in one place.

Every response that is not a success has the media type
``application/problem+json`` and a body with ``type``, ``title``, ``status``,
``detail`` and a machine-readable ``code`` (plus structured fields such as
``field`` or ``state``). Nothing escapes as a 500 with a traceback: an
unexpected exception is logged and answered with a generic problem.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from node.errors import EscrowdError

log = logging.getLogger("escrowd.api")
PROBLEM = "application/problem+json"


def problem(status: int, code: str, detail: str, **fields: Any) -> JSONResponse:
    body = {
        "type": f"https://escrowd.dev/problems/{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **fields,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def install(app: FastAPI) -> None:
    @app.exception_handler(EscrowdError)
    async def _escrowd(_req: Request, exc: EscrowdError) -> JSONResponse:
        status = exc.http_status
        if status >= 500:
            log.error("chain or server error: %s", exc.message)
        return problem(status, exc.code, exc.message, **_jsonable(exc.fields))

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "message": e.get("msg", ""),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        return problem(422, "invalid_input", f"{first['field']}: {first['message']}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "internal_error", "an unexpected error occurred; it was logged")


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | None) else str(v)
        for k, v in fields.items()
    }
