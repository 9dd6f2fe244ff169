"""The inspector's web application: the pages, a JSON API over an event store, and a
server-sent event stream per call. Read-only; see :mod:`handoff.inspector.security`.

    GET /                                   the list of live and recent calls
    GET /calls/{call_id}                    one call (the same page; its script reads the URL)
    GET /static/{file}                      the page's script and style, from the package
    GET /api/calls                          summaries, newest first, with their status
    GET /api/calls/{call_id}                the summary and every event so far
    GET /api/calls/{call_id}/stream?after=N server-sent events: each new event, then `end`
    GET /api/flows/{flow}/{version}/diagram.svg   the flow drawn by handoff.diagram
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from importlib import resources
from typing import Any

import graphviz
from aiohttp import web

from ..diagram import render
from ..events.event import CallSummary
from ..events.store import EventStore
from .security import guard, is_loopback, secure, valid_call_id, valid_name

STATIC = ("inspector.js", "inspector.css", "favicon.svg")
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
                 ".html": "text/html"}
STORE_KEY = web.AppKey("store", EventStore)
SETTINGS_KEY = web.AppKey("settings", dict)


def make_app(
    store: EventStore,
    *,
    token: str | None = None,
    host: str = "127.0.0.1",
    stale_after: float = 15.0,
    poll: float = 0.1,
) -> web.Application:
    """The inspector over ``store``. ``host`` is where it will be served (loopback binds
    check the Host header); ``stale_after`` seconds without a heartbeat mark a call
    stopped; ``poll`` is how often a stream looks for new events."""
    app = web.Application(middlewares=[guard(token, is_loopback(host))])
    app[STORE_KEY] = store
    app[SETTINGS_KEY] = {"stale_after": stale_after, "poll": poll, "svg": {}}
    app.router.add_get("/", page)
    app.router.add_get("/calls/{call_id}", call_page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{call_id}", one_call)
    app.router.add_get("/api/calls/{call_id}/stream", stream)
    app.router.add_get("/api/flows/{flow}/{version}/diagram.svg", diagram)
    return app


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _file_response(name: str) -> web.Response:
    suffix = name[name.rfind("."):]
    return web.Response(body=_asset(name), content_type=CONTENT_TYPES[suffix], charset="utf-8")


async def page(request: web.Request) -> web.Response:
    return _file_response("index.html")


async def call_page(request: web.Request) -> web.Response:
    valid_call_id(request.match_info["call_id"])
    return _file_response("index.html")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound(text="no such file")
    return _file_response(name)


def _summary(request: web.Request, summary: CallSummary) -> dict[str, Any]:
    settings = request.app[SETTINGS_KEY]
    return {**summary.to_dict(), "status": summary.status(time.time(), settings["stale_after"]),
            "diagram": f"/api/flows/{summary.flow}/{summary.flow_version}/diagram.svg"}


def _json(data: Any) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False, default=str),
                        content_type="application/json")


async def list_calls(request: web.Request) -> web.Response:
    try:
        limit = max(1, min(int(request.query.get("limit", 100)), 1000))
    except ValueError as exc:
        raise web.HTTPBadRequest(text="limit must be a number") from exc
    calls = await request.app[STORE_KEY].calls(limit)
    return _json({"calls": [_summary(request, c) for c in calls]})


async def _found(request: web.Request) -> tuple[str, CallSummary]:
    call_id = valid_call_id(request.match_info["call_id"])
    summary = await request.app[STORE_KEY].call(call_id)
    if summary is None:
        raise web.HTTPNotFound(text="no such call in the event store")
    return call_id, summary


async def one_call(request: web.Request) -> web.Response:
    call_id, summary = await _found(request)
    events = await request.app[STORE_KEY].events(call_id)
    return _json({"call": _summary(request, summary), "events": [e.to_dict() for e in events]})


async def stream(request: web.Request) -> web.StreamResponse:
    """Each new event of the call as it is stored; ``end`` once the call ended (or its
    writer stopped) and every event was sent."""
    call_id, _ = await _found(request)
    try:
        after = int(request.query.get("after", 0))
    except ValueError as exc:
        raise web.HTTPBadRequest(text="after must be a number") from exc
    store, settings = request.app[STORE_KEY], request.app[SETTINGS_KEY]
    response = secure(web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}))
    await response.prepare(request)
    quiet_since = time.monotonic()
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        while True:
            events = await store.events(call_id, after)
            for event in events:
                await response.write(
                    f"id: {event.seq}\nevent: step\ndata: {event.to_json()}\n\n".encode())
                after = event.seq
            summary = await store.call(call_id)
            if summary is None:
                break
            status = summary.status(time.time(), settings["stale_after"])
            if status != "live" and not events and summary.last_seq <= after:
                end = json.dumps(_summary(request, summary))
                await response.write(f"event: end\ndata: {end}\n\n".encode())
                break
            if events:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 10:  # keep proxies from closing it
                await response.write(b": still here\n\n")
                quiet_since = time.monotonic()
            await asyncio.sleep(settings["poll"])
    return response


async def diagram(request: web.Request) -> web.Response:
    flow = valid_name(request.match_info["flow"])
    version = valid_name(request.match_info["version"])
    cache: dict[tuple[str, str], bytes] = request.app[SETTINGS_KEY]["svg"]
    svg = cache.get((flow, version))
    if svg is None:
        source = await request.app[STORE_KEY].flow_source(flow, version)
        if source is None:
            raise web.HTTPNotFound(text="no diagram of that flow version in the event store")
        svg = await asyncio.to_thread(render, graphviz.Source(source), "svg")
        cache[(flow, version)] = svg
    return web.Response(body=svg, content_type="image/svg+xml")
