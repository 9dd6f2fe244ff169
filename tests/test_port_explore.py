"""`explore` finds a planted off-by-one guard in a copy of a port (the originals untouched).

Survey: ``behavioral_complete`` planted to fire when two of the three behavioural answers
are recorded instead of all three. From a call whose email, strengths and weaknesses
are known, depth 5 reaches Behavioral and takes it: the shortest counterexample is
intro → email → commute → experience → behavioral_complete.
"""

from __future__ import annotations

import importlib
from typing import Any

from handoff import Flow, transition
from handoff.testing import explore

survey = importlib.import_module("examples.survey.flow")  # the package re-exports `flow`

ENTRY = {"Closing": lambda c: None not in (c.strengths, c.weaknesses, c.work_style)}
KNOWN = {"email": "kim@example.com", "strengths": "focus", "weaknesses": "impatience"}


def _two_of_three(c: Any) -> bool:  # the planted bug: >= 2 where all 3 are needed
    return sum(v is not None for v in (c.strengths, c.weaknesses, c.work_style)) >= 2


class PlantedBehavioral(survey.Behavioral):  # type: ignore[name-defined,misc]
    name = "Behavioral"

    @transition(to="Closing", llm=False, when=_two_of_three, refused="not all recorded")
    async def behavioral_complete(self) -> None:
        """Taken by code once strengths, weaknesses and work style are all recorded."""


PLANTED = Flow("survey_planted", context=survey.Screening, initial=survey.Intro,
               states=[survey.Intro, survey.Email, survey.Commute, survey.Experience,
                       PlantedBehavioral, survey.Closing, survey.Disqualified],
               final=[survey.Closing, survey.Disqualified])


def test_explore_passes_the_survey_as_ported() -> None:
    assert explore(survey.flow, depth=5, entry_conditions=ENTRY, initial=KNOWN).counterexample is None


def test_explore_finds_the_planted_off_by_one_at_depth_5() -> None:
    found = explore(PLANTED, depth=5, entry_conditions=ENTRY, initial=KNOWN)
    assert found.counterexample is not None
    moves = [m.attempt.trigger for m in found.counterexample if m.attempt is not None]
    assert moves[-1] == "behavioral_complete" and len(moves) == 5
    assert explore(PLANTED, depth=4, entry_conditions=ENTRY, initial=KNOWN).counterexample is None
