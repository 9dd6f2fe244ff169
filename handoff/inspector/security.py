"""What keeps the inspector safe by default: where it binds, who may read, what it accepts.

- It binds 127.0.0.1 unless told otherwise. Any other address needs a token
  (:func:`check_bind` refuses to start without one, and says how to fix it); a
  request then needs the token (``?token=`` once, which sets a cookie and redirects
  to the same page without it, or ``Authorization: Bearer``).
- On a loopback bind without a token, a request whose ``Host`` is not a loopback
  name is refused: a web page elsewhere cannot reach it by DNS rebinding.
- Read-only: GET and HEAD only.
- Every response forbids scripts, styles and connections from anywhere but the
  inspector itself (no CDN, nothing inline), framing, sniffing and referrers.
- Call ids in URLs must match :data:`CALL_ID` (SIP call ids and room names do).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..errors import FlowError

CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}")
"""What a call id in a URL may be: letters, digits and ``. _ : @ + = -``, 1 to 200 characters."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""What a flow name or version in a URL may be."""
COOKIE = "handoff_inspect"
TOKEN_ENV = "HANDOFF_INSPECT_TOKEN"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class UnsafeBind(FlowError):
    """The inspector was asked to listen beyond this machine without a token."""


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Raise :class:`UnsafeBind` (with the fix) for a non-loopback ``host`` without a token."""
    if token is not None and len(token) < 16:
        raise UnsafeBind("the inspector token must be at least 16 characters "
                         "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    if not is_loopback(host) and not token:
        raise UnsafeBind(
            f"refusing to serve the inspector on {host} without a token: anyone who can reach "
            f"that address would read every call. Pass --token TOKEN (or set {TOKEN_ENV}), or "
            "bind 127.0.0.1 and reach it through an SSH tunnel")


def valid_call_id(text: str) -> str:
    """``text`` if it is a well-formed call id, else a 400 response is raised."""
    if not CALL_ID.fullmatch(text):
        raise web.HTTPBadRequest(text="not a call id")
    return text


def valid_name(text: str) -> str:
    if not NAME.fullmatch(text):
        raise web.HTTPBadRequest(text="not a flow name or version")
    return text


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guard(token: str | None, loopback: bool) -> Middleware:
    """The middleware enforcing all of the above."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            refusal = _refusal(request, token, loopback)
            if refusal is not None:
                return secure(refusal)
            if token and request.query.get("token"):  # first visit: keep it in a cookie
                kept = {k: v for k, v in request.query.items() if k != "token"}
                location = request.rel_url.with_query(kept or None)
                response: web.StreamResponse = web.Response(status=303, headers={
                    "Location": str(location)})
                response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
                return secure(response)
            response = await handler(request)
        except web.HTTPException as exc:
            response = web.Response(status=exc.status, text=exc.text, headers=exc.headers)
        return secure(response)

    return middleware


def _refusal(request: web.Request, token: str | None, loopback: bool) -> web.Response | None:
    if request.method not in ("GET", "HEAD"):
        return web.Response(status=405, text="the inspector is read-only",
                            headers={"Allow": "GET, HEAD"})
    if token:
        given = (request.query.get("token") or request.cookies.get(COOKIE)
                 or request.headers.get("Authorization", "").removeprefix("Bearer ").strip())
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return web.Response(status=401, text="this inspector needs its token: open the URL "
                                "`handoff inspect` printed (it ends in ?token=…)")
    elif loopback:
        host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").startswith("[") \
            else (request.host or "").split("]")[0] + "]"
        if host.lower() not in LOOPBACK_NAMES:
            return web.Response(status=403, text="this inspector only answers to localhost")
    return None


def secure(response: web.StreamResponse) -> web.StreamResponse:
    """``response`` with the security headers (a stream sets them before it is prepared)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response
