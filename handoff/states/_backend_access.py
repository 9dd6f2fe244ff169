from __future__ import annotations

from typing import Any

from ..errors import FlowError
from .backend import AccountBackend


def backend_of(state: Any) -> AccountBackend:
    backend = getattr(type(state), "backend", None)
    if backend is None:
        raise FlowError(
            f"{type(state).__name__}.backend is not set: give the state an AccountBackend "
            "(class attribute `backend = MyBackend()`)"
        )
    return backend
