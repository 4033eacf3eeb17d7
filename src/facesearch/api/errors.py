"""How errors become HTTP responses: each FacesearchError its status, and one JSON shape
(`{"detail": ...}`) for validation errors, out-of-range numbers and HTTP errors."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import (
    Conflict,
    FacesearchError,
    ImageRejected,
    ImageTooLarge,
    ModelMismatch,
    NotFound,
    UnsupportedImage,
)
from ..governance.auth import AuthenticationFailed, PermissionDenied
from ..governance.throttle import TooManyAttempts

log = logging.getLogger(__name__)

# Most specific first: each FacesearchError maps to the status that says what went wrong.
STATUS = (
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (ModelMismatch, 409),
    (ImageTooLarge, 413),
    (UnsupportedImage, 415),
    (ImageRejected, 422),
    (TooManyAttempts, 429),
    (FacesearchError, 400),
)


def status_of(exc: FacesearchError) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FacesearchError)
    async def facesearch_error(request: Request, exc: FacesearchError) -> JSONResponse:
        code = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else {}
        if isinstance(exc, TooManyAttempts):
            headers["Retry-After"] = str(exc.retry_after)
        return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
            problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
        return JSONResponse(
            {"detail": "; ".join(problems) or "invalid request", "errors": problems},
            status_code=422,
        )

    @app.exception_handler(OverflowError)
    async def number_out_of_range(request: Request, exc: OverflowError) -> JSONResponse:
        # SQLite stores 64-bit integers: an id or count beyond them names nothing.
        if "SQLite INTEGER" not in str(exc):
            log.error("unexpected overflow", exc_info=exc)
            return JSONResponse({"detail": "internal error"}, status_code=500)
        return JSONResponse(
            {"detail": f"a number in the request is out of range (at most {2**63 - 1})"},
            status_code=422,
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )
