"""ASGI middleware that refuses a request body above its limit before the app reads it.

FastAPI parses a whole multipart or JSON body before any dependency runs, so a limit
checked in a route comes after the bytes were read (and spooled to disk). This checks the
declared Content-Length at once and counts the bytes of a body sent without one.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import ApiSettings

# Routes whose body is one probe photo and a few form fields.
PHOTO_ROUTES = frozenset({"/api/search", "/api/rights/access"})
# Room for the multipart framing and the small form fields beside a photo.
FORM_SLACK = 64 * 1024
# Bodies that are not uploads (JSON, forms) are small; the largest, an erasure of
# 10,000 face ids, is about 200 kB.
OTHER_BODY_BYTES = 1024 * 1024


def body_limit_for(api: ApiSettings) -> Callable[[Scope], int]:
    def limit(scope: Scope) -> int:
        content_type = _header(scope, b"content-type") or ""
        if not content_type.lower().startswith("multipart/"):
            return OTHER_BODY_BYTES
        if scope["path"] in PHOTO_ROUTES:
            return api.max_upload_bytes + FORM_SLACK
        return api.max_request_bytes

    return limit


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _refuse(scope, receive, send, 400, "Content-Length is not a number")
                return
            if int(declared) > limit:
                await _refuse(scope, receive, send, 413, _too_large(int(declared), limit))
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI lets an HTTPException from the body's reading through as it is.
                    raise HTTPException(413, f"the request body is above the limit of {limit:,}")
            return message

        await self.app(scope, counted, send)


def _too_large(size: int, limit: int) -> str:
    return f"the request is {size:,} bytes, above the limit of {limit:,} bytes"


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    # Connection: close, so the client stops sending a body nobody will read.
    response = JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})
    await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None
