"""HTTP middleware of the app: the security headers every response carries."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SecurityHeaders:
    """Headers that keep pages from being framed, sniffed, cached or fed foreign scripts.

    Everything but the static files may carry faces or personal data, so nothing
    else may be stored by a browser or a proxy. A route may send its own policy
    (the API documentation allows its one inline script by hash).
    """

    PAGE_POLICY = (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
        "object-src 'none'"
    )
    # The browser features no page here uses.
    PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
    HSTS = b"max-age=31536000; includeSubDomains"
    STATIC = ("/static/", "/docs-static/")

    def __init__(self, app: ASGIApp, https_only: bool = False) -> None:
        self.app = app
        # Behind a TLS proxy the request looks like http; the operator says so
        # with FACESEARCH_API__SECURE_COOKIES.
        self.https_only = https_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(self.STATIC)
        https = self.https_only or scope.get("scheme") == "https"

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"permissions-policy", self.PERMISSIONS.encode()),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.PAGE_POLICY.encode()))
                if not static:
                    headers = [(n, v) for n, v in headers if n.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                if https:
                    headers.append((b"strict-transport-security", self.HSTS))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers)
