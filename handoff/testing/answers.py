"""The caller answers a ``confirm=`` question: what the scripted model does with their line.

In a test the caller answers in words, as on a real call (``session.run(user_input="yes")``),
and the scripted model plays the state's model inside the approval task: :func:`answering`
wraps a policy so that, while the approval task talks, a yes calls ``approve``, a no calls
``deny`` with the caller's line as the reason, and anything else is answered by asking again::

    llm = ScriptedLLM(answering(policy))
"""

from __future__ import annotations

import re

from .scripted import Policy, ReplyLike, Turn, call

APPROVAL_TASK = "approval"
"""The agent id of the approval task (:class:`handoff.approval.AskApproval`)."""

YES = re.compile(r"^\s*(yes|yeah|yep|sure|ok(ay)?|go ahead|please do|do it|correct)\b", re.I)
NO = re.compile(r"^\s*(no|nope|don'?t|do not|stop|wait|cancel that|not now)\b", re.I)


def answer(turn: Turn) -> ReplyLike | None:
    """The scripted model's reply to the caller's answer inside the approval task (None for
    any other turn): ``approve`` on a yes, ``deny(reason=<their line>)`` on a no, else a
    line that asks again."""
    if turn.agent_id != APPROVAL_TASK or turn.answering_tool:
        return None
    said = turn.last_user_text
    if YES.match(said):
        return call("approve")
    if NO.match(said):
        return call("deny", reason=said)
    return "I can help with that next. First, please answer yes or no."


def answering(policy: Policy) -> Policy:
    """``policy``, with the caller's answers to approval questions handled by :func:`answer`."""

    def with_answers(turn: Turn) -> ReplyLike:
        reply = answer(turn)
        return policy(turn) if reply is None else reply

    return with_answers
