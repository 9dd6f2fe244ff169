"""Candidate screening: intro → email → commute → experience → behavioural → evaluation.

Ported from LiveKit Agents' survey example: repository livekit/agents, path
``examples/survey/agent.py`` (Apache License 2.0, Copyright 2023 LiveKit, Inc.). The
original's ``TaskGroup`` of five ``AgentTask``s becomes five States in the same order,
each task's recording tool the transition to the next; the same prompts, tools, enums
(commute methods, work styles), CSV columns and ``disqualify`` tool.

    Intro ─record_intro─▶ Email ─confirm_email_address─▶ Commute ─record_commute_flexibility─▶
    Experience ─record_experience─▶ Behavioral ─behavioral_complete (code)─▶ Closing
    Email, Commute, Experience, Behavioral ─disqualify─▶ Disqualified

What the port needed from handoff: a code-only transition (``llm=False``) that
``BehavioralTask._check_completion`` becomes: the last of the three ``record_*`` tools
calls ``run.go("behavioral_complete")``; a guard that says when it may happen; final
states that hang up (``end_screening``, and ``disqualify``'s shutdown).

Departures, each for a reason: the prebuilt ``GetEmailTask`` is modelled as the
``Email`` state with the task's own tools (``update_email_address``,
``confirm_email_address``): the port was written before a State could await LiveKit's
tasks (it can now: ``examples/healthcare`` awaits the real ``TaskGroup`` and
``GetCreditCardTask``), and as a State the step is drawn, gated and explored like the
others; ``TaskGroup``'s ``out_of_scope`` tool
(going back to an earlier task, then on to where the call was) is NOT ported yet; the
summary the evaluation reads is the Context's brief, where the original summarises the
chat with the LLM.

What the original lacks (found by porting it and by ``tests/test_port_survey.py``):

* ``disqualify`` is offered in every stage but the intro, yet it writes only
  ``name`` and the reason: everything the earlier stages learned (email, commute,
  experience) is dropped from the CSV row of a disqualified candidate;
* ``record_experience`` takes any integer: -3 years of experience is recorded;
* ``record_commute_flexibility`` requires a commute method even when the candidate
  cannot commute (``none`` is the only honest value, and nothing enforces it).
"""

from __future__ import annotations

import asyncio
import csv
import os
from pathlib import Path
from typing import Literal

from livekit.agents import llm

from handoff import Context, Flow, RunContext, State, function_tool, transition

CommuteMethod = Literal["driving", "bus", "subway", "none"]
WorkStyle = Literal["independent", "team_player"]

CSV_COLUMNS = (
    "name", "get_name_intro_task", "get_email_task", "commute_task", "experience_task",
    "behavorial_task", "summary", "evaluation", "disqualification_reason",
)
INTERVIEWER = (
    "You are an interviewer screening a candidate for a software engineering position. You have "
    "already been asking a series of questions, and this is another stage of the process."
)


class Screening(Context):
    """What the screening learns; ``filename`` is where the results go (as in the original,
    whose entrypoint passes ``results.csv``; nowhere until a caller of the flow says)."""

    filename: str = os.devnull
    candidate_name: str = ""
    intro: str | None = None
    email: str | None = None
    can_commute: bool | None = None
    commute_method: CommuteMethod | None = None
    years_of_experience: int | None = None
    experience_description: str | None = None
    strengths: str | None = None
    weaknesses: str | None = None
    work_style: WorkStyle | None = None
    evaluation: str | None = None
    disqualification_reason: str | None = None


def _write_row(filename: str, data: dict[str, object]) -> None:
    path = Path(filename)
    with path.open("a", newline="") as csvfile:
        writer = csv.DictWriter(csvfile, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        if csvfile.tell() == 0:
            writer.writeheader()
        writer.writerow(data)


async def write_to_csv(filename: str, data: dict[str, object]) -> None:
    """Append one candidate's row (the header first in a new file), off the event loop."""
    await asyncio.to_thread(_write_row, filename, data)


def task_results(c: Screening) -> dict[str, object]:
    """The CSV row of a screened candidate, column by column as the original writes it."""
    return {
        "name": c.candidate_name,
        "get_name_intro_task": {"name": c.candidate_name, "intro": c.intro},
        "get_email_task": {"email_address": c.email},
        "commute_task": {"can_commute": c.can_commute, "commute_method": c.commute_method},
        "experience_task": {"years_of_experience": c.years_of_experience,
                            "experience_description": c.experience_description},
        "behavorial_task": {"strengths": c.strengths, "weaknesses": c.weaknesses,
                            "work_style": c.work_style},
    }


class Intro(State[Screening]):
    """Welcomes the candidate and records name and introduction."""

    instructions = (
        "You are Alex, an interviewer screening a candidate for a software engineering position. "
        "You both have just started the call. Welcome the candidate to the interview, remain "
        "positive and concise. You will also be collecting their name and introduction."
    )
    entry_prompt = ("Welcome the candidate by introducing yourself and gather their name after "
                    "their introduction.")

    @transition(to="Email")
    async def record_intro(self, ctx: RunContext[Screening], name: str, intro_notes: str) -> None:
        """Call to record the candidate's name and any notes about their response

        Args:
            name: The candidate's name
            intro_notes: The candidate's introduction and any additional notes
        """
        ctx.userdata.candidate_name = name
        ctx.userdata.intro = intro_notes


class Stage(State[Screening]):
    """A stage that may end the interview (the original gives these tasks ``disqualify``)."""

    @transition(to="Disqualified")
    async def disqualify(self, ctx: RunContext[Screening], disqualification_reason: str) -> None:
        """Call if the candidate refuses to cooperate, provides an unsatisfactory or inappropriate
        answer, or do not meet the prerequisites for the position. This function will terminate
        the interview, record their disqualification, and hang up.

        Args:
            disqualification_reason: The justification for ending the interview (ex. Refuses to
                answer question)
        """
        screening = ctx.userdata
        screening.disqualification_reason = disqualification_reason
        await write_to_csv(screening.filename, {
            "name": screening.candidate_name,
            "disqualification_reason": "[DISQUALIFIED] " + disqualification_reason,
        })


class Email(Stage):
    """Collects and confirms the candidate's email (LiveKit's GetEmailTask)."""

    instructions = (
        "Collect the candidate's email address. Call update_email_address when they give it, "
        "then confirm it with them and call confirm_email_address. If the user refuses to "
        "provide their email, call disqualify()."
    )

    @function_tool
    async def update_email_address(self, ctx: RunContext[Screening], email: str) -> str:
        """Update the email address provided by the user.

        Args:
            email: The email address provided by the user
        """
        ctx.userdata.email = email.strip()
        return f"The email has been updated to {email}. Confirm it with the user."

    @transition(to="Commute", when=lambda c: bool(c.email),
                refused="no email address yet: call update_email_address first")
    async def confirm_email_address(self, ctx: RunContext[Screening]) -> None:
        """Call after the user confirmed the email address is correct."""


class Commute(Stage):
    """Asks whether the candidate can commute, and how."""

    instructions = (
        f"{INTERVIEWER} Record if the candidate is able to commute to the office and their "
        "flexibility. Ideally, the candidate should commute to the office three days a week. "
        "Avoiding using parentheses in your response."
    )
    entry_prompt = (
        "Gather the candidate's commute flexibility, specfically whether or not they are able to "
        "commute to the office. If they are able to commute, collect their commute method. Be "
        "brief and to the point.")

    @transition(to="Experience")
    async def record_commute_flexibility(self, ctx: RunContext[Screening], can_commute: bool,
                                         commute_method: CommuteMethod) -> None:
        """Call to record the candidate's flexibility of going into office and notes about their
        commute. If they are able to commute, record their method of transportation.

        Args:
            can_commute: If the candidate can commute to the office
            commute_method: The method of transportation the candidate will take to commute
        """
        ctx.userdata.can_commute = can_commute
        ctx.userdata.commute_method = commute_method


class Experience(Stage):
    """Records years of experience and past roles."""

    instructions = (
        f"{INTERVIEWER} Record how many years of experience the candidate has and the "
        "descriptions of their previous jobs if any. There is no set required amount for this "
        "position. Be sure to confirm details. Avoid listing out questions with bullet points or "
        "numbers, use a natural conversational tone."
    )
    entry_prompt = ("Gather the candidate's work experience including how many years of experience "
                    "they have and a general overview of their career.")

    @transition(to="Behavioral")
    async def record_experience(self, ctx: RunContext[Screening], years_of_experience: int,
                                experience_description: str) -> None:
        """Call to record the work experience the candidate has and a description of each role
        with a clear timeline.

        Args:
            years_of_experience: The years of experience the candidate has
            experience_description: A description of each role they previously held. Take note
                of the corresponding companies as well.
        """
        ctx.userdata.years_of_experience = years_of_experience
        ctx.userdata.experience_description = experience_description


def _behavioral_done(c: Screening) -> bool:
    return None not in (c.strengths, c.weaknesses, c.work_style)


class Behavioral(Stage):
    """Gathers strengths, weaknesses and work style, in any order."""

    instructions = (
        f"{INTERVIEWER} You will now be learning more about the candidate holistically. This "
        "includes their strengths, weaknesses, and work and communication style. You are testing "
        "the candidate for a good fit in the company. If the candidate refuses to answer, call "
        "disqualify(). Be concise and to the point. Avoid listing out questions with bullet "
        "points or numbers, use a natural conversational tone."
    )
    entry_prompt = ("Approach this task in a natural conversational manner and incrementally "
                    "gather the candidate's strengths, weaknesses, and work style in no particular "
                    "order.")

    @transition(to="Closing", llm=False, when=_behavioral_done,
                refused="strengths, weaknesses and work style are not all recorded yet")
    async def behavioral_complete(self) -> None:
        """Taken by code once strengths, weaknesses and work style are all recorded."""

    async def _check_completion(self) -> str:
        if _behavioral_done(self.context):
            await self.run.go("behavioral_complete")
            return "All behavioral answers are recorded."
        return ("Continue incrementally collecting the remaining answers for the behavioral "
                "stage. Maintain a conversational tone.")

    @function_tool
    async def record_strengths(self, strengths_summary: str) -> str:
        """Call to record a summary of the candidate's strengths.

        Args:
            strengths_summary: A summary of the candidate's strengths
        """
        self.context.strengths = strengths_summary
        return await self._check_completion()

    @function_tool
    async def record_weaknesses(self, weaknesses_summary: str) -> str:
        """Call to record a summary of the candidate's weaknesses.

        Args:
            weaknesses_summary: A summary of the candidate's weaknesses
        """
        self.context.weaknesses = weaknesses_summary
        return await self._check_completion()

    @function_tool
    async def record_work_style(self, work_style: WorkStyle) -> str:
        """Call to record a summary of the candidate's work style.

        Args:
            work_style: The candidate's work style
        """
        self.context.work_style = work_style
        return await self._check_completion()


async def evaluate_candidate(model: llm.LLM, summary: str) -> str:
    """The original's evaluation: one LLM request over the conversation summary."""
    chat_ctx = llm.ChatContext()
    chat_ctx.add_message(role="system", content=(
        "Evaluate whether or not this candidate is a good fit for the company and role based on "
        "the conversation summary provided.\nTake into account their holistic and professional "
        "profile and the quality of their responses.\nBe concise and firm in the evaluation."))
    chat_ctx.add_message(role="user", content=f"Conversation to evaluate:\n\n{summary}")
    chunks: list[str] = []
    async with model.chat(chat_ctx=chat_ctx) as stream:
        async for chunk in stream:
            if chunk.delta and chunk.delta.content:
                chunks.append(chunk.delta.content)
    return "".join(chunks).strip()


class Closing(State[Screening]):
    """Evaluates the candidate, writes the results, thanks them."""

    instructions = ("You are a Survey agent screening candidates for a Software Engineer position. "
                    "When the interview is concluded, call end_screening to hang up.")
    speaks_first = False

    async def on_enter(self) -> None:
        if self.run.resuming:
            return
        screening = self.context
        summary = screening.brief()
        assert isinstance(self.llm, llm.LLM)
        screening.evaluation = await evaluate_candidate(self.llm, summary)
        await write_to_csv(screening.filename, {
            **task_results(screening), "summary": summary, "evaluation": screening.evaluation})
        self.session.generate_reply(instructions=(
            "The interview is now complete, alert the user and thank them for their time. They "
            "will hear back within 3 days."))

    @function_tool
    async def end_screening(self) -> None:
        """Call when the interview/screening is concluded to hang up."""
        self.session.shutdown()


class Disqualified(State[Screening]):
    """Tells the candidate why the interview ends, and hangs up."""

    instructions = ("The interview is ending now. Inform the candidate of the reason, respectfully "
                    "and naturally.")

    async def on_enter(self) -> None:
        if self.run.resuming:
            return
        await self.session.generate_reply()
        self.session.shutdown()


flow = Flow(
    "survey",
    context=Screening,
    initial=Intro,
    states=[Intro, Email, Commute, Experience, Behavioral, Closing, Disqualified],
    final=[Closing, Disqualified],
)
