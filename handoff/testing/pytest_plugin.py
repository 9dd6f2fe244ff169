"""pytest plugin (entry point ``pytest11``): flow fixtures, hypothesis profiles, coverage.

Fixtures (the flow comes from ``@pytest.mark.handoff_flow(flow)``, else the
``handoff_flow`` ini option ``module:attribute``, or override the ``handoff_flow``
fixture):

* ``flow_run`` — a fresh pure FlowRun (no session) in the initial state.
* ``flow_session`` — async factory: ``run = await flow_session(llm=ScriptedLLM([...]))``
  gives a started text-mode AgentSession's run; closed after the test.
* ``flow_driver`` — async factory for a :class:`FlowDriver` (a session whose LLM you
  steer turn by turn).
* ``handoff_model`` — the scripted model factory the two factories above use (None:
  each tier's scripted counterpart, a ``ScriptedRealtimeModel`` for a realtime tier);
  override it to run the tests on another model, or parametrize it to run them on both::

      @pytest.fixture(params=[ScriptedLLM, ScriptedRealtimeModel])
      def handoff_model(request): return request.param

Hypothesis profiles ``handoff-dev`` and ``ci`` are registered; the one named by the
``HYPOTHESIS_PROFILE`` environment variable (else the ``handoff_hypothesis_profile``
ini option) is loaded. Without hypothesis (a core install, no ``testing`` extra) the
plugin still loads, so pytest keeps working in every project of the environment; there
is then no profile to load.

Options:

* ``--handoff-coverage``: at the end, per flow, which transitions and guard outcomes
  the tests exercised.
* ``--handoff-coverage-min=PCT``: fail the run when a reported flow is below PCT
  (implies the report).

``handoff_coverage_flows`` (ini, ``module:attr`` per line) names the flows to report
and gate — a named flow no test touched shows 0%; without it, every flow a test ran
is reported (test-only variants of a flow included).

Under pytest-xdist (``-n 2``) each worker counts its own tests and sends its counts
to the controller when it finishes (``workeroutput``); the controller adds them up
(``pytest_testnodedown``), so the report and the gate are those of a serial run.
Two flows with the same name and the same table are one flow in the merged report.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from ..flow import Flow
from ..realtime import Model
from .coverage import CoverageObserver, FlowCoverage
from .driver import FlowDriver, ModelFactory, scripted_for
from .scripted import Policy, ReplyLike

_OBSERVER = pytest.StashKey[CoverageObserver]()
_PATCHES = pytest.StashKey[list[tuple[type, str, Any]]]()
_SELECTED = pytest.StashKey[list[Flow[Any]]]()
_FROM_WORKERS = pytest.StashKey[dict[Any, FlowCoverage]]()
_WIRE = "handoff_coverage"  # the key of the workers' counts in xdist's workeroutput


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("handoff", "handoff flow testing")
    group.addoption("--handoff-coverage", action="store_true", default=False,
                    help="report the transitions and guard outcomes each flow exercised")
    group.addoption("--handoff-coverage-min", type=float, default=None, metavar="PCT",
                    help="fail when a reported flow's transition coverage is below PCT")
    parser.addini("handoff_flow", "default flow for the fixtures (module:attribute)")
    parser.addini("handoff_hypothesis_profile",
                  "hypothesis profile to load when HYPOTHESIS_PROFILE is not set "
                  "(handoff-dev, ci, or one you register)")
    parser.addini("handoff_coverage_flows", "flows to report coverage for (module:attribute)",
                  type="linelist", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "handoff_flow(flow): the Flow the handoff fixtures use")
    _load_hypothesis_profile(config)
    if not (config.getoption("handoff_coverage") or
            config.getoption("handoff_coverage_min") is not None):
        return
    observer = CoverageObserver()
    config.stash[_OBSERVER] = observer
    selected = [_load_flow(ref) for ref in config.getini("handoff_coverage_flows")]
    for flow in selected:
        observer.watch(flow)
    config.stash[_SELECTED] = selected
    config.stash[_PATCHES] = _count_runs(observer)


def _load_hypothesis_profile(config: pytest.Config) -> None:
    """Register handoff's profiles and load the chosen one, when hypothesis is installed."""
    try:
        from hypothesis import settings

        from .profiles import register_profiles
    except ModuleNotFoundError as exc:
        if exc.name != "hypothesis":
            raise
        return  # a core install: nothing here uses hypothesis
    register_profiles()
    profile = os.environ.get("HYPOTHESIS_PROFILE") or config.getini("handoff_hypothesis_profile")
    if profile:
        settings.load_profile(str(profile))


def _count_runs(observer: CoverageObserver) -> list[tuple[type, str, Any]]:
    """Watch every flow that makes a run, and count runs and sessions.

    Flows are built at import time by user code, so the plugin hooks ``Flow.new_run``
    and ``Flow.start`` (restored at the end) instead of asking users to register.
    """
    new_run, start = Flow.new_run, Flow.start

    def counting_new_run(self: Flow[Any], *args: Any, **kwargs: Any) -> Any:
        observer.watch(self)
        observer.count_run(self, call_id=kwargs.get("call_id"))
        return new_run(self, *args, **kwargs)

    async def counting_start(self: Flow[Any], *args: Any, **kwargs: Any) -> Any:
        observer.watch(self)
        observer.count_run(self, session=True, call_id=kwargs.get("call_id"))
        return await start(self, *args, **kwargs)

    Flow.new_run = counting_new_run  # type: ignore[method-assign]
    Flow.start = counting_start  # type: ignore[method-assign]
    return [(Flow, "new_run", new_run), (Flow, "start", start)]


def pytest_unconfigure(config: pytest.Config) -> None:
    for owner, name, original in config.stash.get(_PATCHES, []):
        setattr(owner, name, original)
    observer = config.stash.get(_OBSERVER, None)
    if observer is not None:
        observer.unwatch_all()


def _load_flow(ref: str) -> Flow[Any]:
    module, _, attr = ref.partition(":")
    flow = getattr(importlib.import_module(module), attr or "flow")
    if not isinstance(flow, Flow):
        raise pytest.UsageError(f"{ref} is not a handoff Flow")
    return flow


def _counted_here(config: pytest.Config) -> list[FlowCoverage]:
    """What this process counted: the flows ``handoff_coverage_flows`` names, else every
    flow a test ran."""
    observer = config.stash.get(_OBSERVER, None)
    if observer is None:
        return []
    selected = config.stash.get(_SELECTED, [])
    if selected:
        return [observer.coverage(flow) for flow in selected]
    return list(observer.flows.values())


def _reported(config: pytest.Config) -> list[FlowCoverage]:
    """What this process counted, with what xdist workers sent (flows only they ran last)."""
    here = _counted_here(config)
    known = {c.identity for c in here}
    return here + [c for key, c in config.stash.get(_FROM_WORKERS, {}).items() if key not in known]


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _below_minimum(config: pytest.Config) -> list[str]:
    minimum = config.getoption("handoff_coverage_min")
    if minimum is None:
        return []
    return [f"flow {c.name}: {c.percent:.1f}% < {minimum:.1f}%"
            for c in _reported(config) if c.percent < minimum]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _is_xdist_worker(config):
        # a worker ran a share of the tests: it sends its counts, the controller gates
        if config.stash.get(_OBSERVER, None) is not None:
            config.workeroutput[_WIRE] = [c.to_wire() for c in _counted_here(config)]  # type: ignore[attr-defined]
        return
    if _below_minimum(config) and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller: add a finished worker's counts to the report's."""
    config: pytest.Config = node.config
    if config.stash.get(_OBSERVER, None) is None:
        return
    here = {c.identity: c for c in _counted_here(config)}
    merged = config.stash.setdefault(_FROM_WORKERS, {})
    for data in getattr(node, "workeroutput", {}).get(_WIRE, []):
        cov = FlowCoverage.from_wire(data)
        into = here.get(cov.identity) or merged.get(cov.identity)
        if into is None:
            merged[cov.identity] = cov
        else:
            into.add(data)


def pytest_terminal_summary(
    terminalreporter: Any, exitstatus: int, config: pytest.Config
) -> None:
    if config.stash.get(_OBSERVER, None) is None or _is_xdist_worker(config):
        return
    terminalreporter.section("handoff transition coverage")
    reported = _reported(config)
    if not reported:
        terminalreporter.write_line("no flow ran")
    for cov in reported:
        terminalreporter.write_line(cov.report())
    for line in _below_minimum(config):
        terminalreporter.write_line(f"FAIL: handoff coverage {line}", red=True)


# -- fixtures --------------------------------------------------------------------------
@pytest.fixture
def handoff_flow(request: pytest.FixtureRequest) -> Flow[Any]:
    """The flow under test: the ``handoff_flow`` marker, else the ``handoff_flow`` ini option."""
    marker = request.node.get_closest_marker("handoff_flow")
    if marker is not None and marker.args:
        flow = marker.args[0]
        return _load_flow(flow) if isinstance(flow, str) else flow
    ref = request.config.getini("handoff_flow")
    if ref:
        return _load_flow(str(ref))
    raise pytest.UsageError(
        "which flow? mark the test @pytest.mark.handoff_flow(flow), set `handoff_flow = "
        "module:attr` in [tool.pytest.ini_options], or override the handoff_flow fixture")


@pytest.fixture
def handoff_model() -> ModelFactory | None:
    """The scripted model the session fixtures make (None: by each tier's kind); override
    this fixture (``return ScriptedRealtimeModel``) to drive every state on that model."""
    return None


@pytest.fixture
def flow_run(handoff_flow: Flow[Any]) -> Iterator[Any]:
    """A fresh pure FlowRun of the flow (no session): move it with ``await run.go(...)``."""
    run = handoff_flow.new_run()
    yield run
    run.close()


try:
    import pytest_asyncio

    _HAVE_ASYNCIO = True
except ImportError:  # pragma: no cover - the session fixtures need pytest-asyncio
    _HAVE_ASYNCIO = False

if _HAVE_ASYNCIO:

    @pytest_asyncio.fixture
    async def flow_session(
        handoff_flow: Flow[Any], handoff_model: ModelFactory | None,
    ) -> AsyncIterator[Callable[..., Any]]:
        """Factory: ``await flow_session(llm=..., context=...)`` → the started session's run.

        ``llm`` is a model (a ScriptedLLM, a ScriptedRealtimeModel, per tier in a dict),
        or a list of replies or a policy function, played by ``handoff_model`` (by
        default the scripted model of the initial state's tier kind); sessions are
        closed after the test.
        """
        async with contextlib.AsyncExitStack() as stack:

            async def start(llm: Model | dict[str, Model] | list[ReplyLike] | Policy | None = None,
                            context: Any = None, flow: Flow[Any] | None = None) -> Any:
                chosen = flow or handoff_flow
                model = llm if llm is None or isinstance(llm, Model | dict) else (
                    (handoff_model or scripted_for(chosen, chosen.states[chosen.initial].tier))(llm))
                run = await stack.enter_async_context(
                    chosen.session(llm=model, context=context))
                stack.callback(run.close)
                return run

            yield start

    @pytest_asyncio.fixture
    async def flow_driver(
        handoff_flow: Flow[Any], handoff_model: ModelFactory | None,
    ) -> AsyncIterator[Callable[..., Any]]:
        """Factory: ``d = await flow_driver(context=...)`` → a started FlowDriver on
        ``handoff_model``."""
        async with contextlib.AsyncExitStack() as stack:

            async def start(context: Any = None, flow: Flow[Any] | None = None) -> FlowDriver[Any]:
                return await stack.enter_async_context(
                    FlowDriver(flow or handoff_flow, context=context, model=handoff_model))

            yield start
