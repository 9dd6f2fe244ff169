"""The return stack's pure decisions: which frames a move drops.

A side trip (``returns=True``) pushes the state it leaves; ``to=RETURN`` pops the top frame
and goes there. A caller may also give up the task a side trip interrupted
(``abandons=True``: the top frame is dropped), or choose which interrupted task to go back
to (``to=RETURN, back_to=[...]``: the frames above the chosen one are dropped). Every
dropped frame is listed in the move's record (``TransitionRecord.dropped``).
"""

from __future__ import annotations

from collections.abc import Sequence


def frames_above(stack: Sequence[str], frame: str | None) -> tuple[str, ...] | None:
    """The frames above the topmost ``frame`` of ``stack``, top first (what going back to
    it drops); None when ``frame`` is not on the stack."""
    if frame is None or frame not in stack:
        return None
    at = len(stack) - 1 - list(reversed(stack)).index(frame)
    return tuple(reversed(stack[at + 1:]))
