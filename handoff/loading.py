"""Load a Flow named as ``package.module:attribute`` (the CLI's way to point at a flow)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from .errors import FlowError
from .flow import Flow


class FlowLoadError(FlowError):
    """The reference could not be imported or does not name a Flow."""


def load_flow(ref: str) -> Flow[Any]:
    """Import ``module:attr`` (cwd on the path) and return the Flow it names."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise FlowLoadError(f"{ref!r} is not MODULE:ATTRIBUTE (e.g. examples.callcenter:flow)")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FlowLoadError(f"cannot import {module_name!r}: {exc}") from exc
    try:
        value = getattr(module, attr)
    except AttributeError:
        raise FlowLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(value, Flow):
        raise FlowLoadError(f"{ref} is a {type(value).__name__}, not a handoff Flow")
    return value
