"""``handoff inspect``: watch calls live in a browser, and replay finished ones.

A read-only aiohttp app over an event store (:mod:`handoff.events`): the list of
live and recent calls of every worker writing to the store, and per call the flow's
diagram with the active state lit and the path taken, the timeline, the Context at
any step, and replay. Everything it serves ships in the package (no build step, no
CDN). Safe by default: see :mod:`handoff.inspector.security`.
"""

from .app import make_app
from .security import UnsafeBind, check_bind
from .server import DEFAULT_ADDRESS, InspectorServer, new_token, parse_address

__all__ = ["DEFAULT_ADDRESS", "InspectorServer", "UnsafeBind", "check_bind", "make_app",
           "new_token", "parse_address"]
