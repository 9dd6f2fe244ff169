"""The ``handoff`` command: talk to a flow, check it, draw it, run it as a worker.

Each command is in a module of its own, which registers it on :data:`app` (made in
``root``) when imported: ``chatting`` (chat), ``running`` (run), ``inspecting``
(inspect), ``checking`` (check), ``drawing`` (diagram), ``comparing`` (diff),
``migrating`` (migrate) and ``scaffolding`` (new); ``serving`` is the inspector that
``--inspect`` serves.
"""

from __future__ import annotations

# isort: off
# the order the commands are imported in is the order `handoff --help` lists them
from . import chatting, running, inspecting, checking, drawing, comparing, migrating, scaffolding  # noqa: F401
# isort: on
from .root import app, with_inspect_default

__all__ = ["app", "main", "with_inspect_default"]


def main() -> None:
    app()
