"""What the control server and the collector (probe/collector/app.py) answer alike: every
error as JSON `{"error": ...}`, an unexpected exception logged without the client's address
and answered 500, and every response closing its connection (a connection's deadlines,
`probe.control.connections`, are one request's)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

#: headers of an aiohttp HTTPException that the JSON answer keeps
_KEPT_HEADERS = ("Allow", "Retry-After")


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def json_errors(log: logging.Logger) -> Middleware:
    """The middleware that makes every error JSON; unexpected exceptions go to `log`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = json_error(exc.status, exc.reason)
            for name in _KEPT_HEADERS:
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
            return response
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("error handling %s %s", request.method, request.path)
            return json_error(500, "internal error")

    return middleware


async def one_request_per_connection(request: web.Request, response: web.StreamResponse) -> None:
    """Every response closes its connection and says so, so that a client does not send its
    next request down a closing connection."""
    response.force_close()
    response.headers["Connection"] = "close"
