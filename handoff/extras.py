"""The distribution's name and its extras: the install line a missing optional package names.

handoff is published as ``livekit-handoff`` (``handoff`` on the package index is an
unrelated project) and imported as ``handoff``. Optional parts live in extras
(pyproject.toml): ``testing`` (pytest, pytest-asyncio, hypothesis), ``redis``, ``voice``,
``vault`` and one per provider plugin.
"""

from __future__ import annotations

DISTRIBUTION = "livekit-handoff"


def install_line(extra: str | None = None) -> str:
    """The line that installs ``extra`` (``install_line("redis")``), or the core without one."""
    return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {DISTRIBUTION}"


def missing(what: str, extra: str, exc: ModuleNotFoundError) -> ModuleNotFoundError:
    """The error for ``what`` when ``exc`` says a package of ``extra`` is not installed:
    one line naming the package and the install line (raise it ``from exc``)."""
    return ModuleNotFoundError(
        f"{what} needs {exc.name or 'a package'}, from the {extra} extra: {install_line(extra)}",
        name=exc.name)
