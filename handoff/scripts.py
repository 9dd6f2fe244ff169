"""``--script MODULE:ATTR``: the scripted LLM a command talks to instead of a model.

The attribute is a reply list (or tuple) or a policy (a callable) as
:class:`handoff.testing.ScriptedLLM` takes; any other reference is a
:class:`~handoff.flowref.FlowLoadError` with a one-line reason.
"""

from __future__ import annotations

from typing import Any

from .flowref import FlowLoadError, import_attribute


def load_script(ref: str) -> Any:
    """The ScriptedLLM for ``ref`` (``MODULE:ATTR``)."""
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr or ":" in attr:
        raise FlowLoadError(f"--script {ref!r} is not MODULE:ATTRIBUTE (e.g. mypkg.scripts:replies)")
    replies = import_attribute(module, attr)
    if not (isinstance(replies, list | tuple) or callable(replies)):
        raise FlowLoadError(
            f"--script {ref} is a {type(replies).__name__}: expected a list of replies or a "
            "policy function")
    from .testing import ScriptedLLM

    return ScriptedLLM(replies)
