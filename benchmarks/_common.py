"""What every benchmark shares: results, statistics, the machine, the command line.

A benchmark module exposes ``run(quick: bool) -> BenchResult`` and ends with
``if __name__ == "__main__": main(run)``. Results are ratios measured side by side in
one process wherever there is a baseline; absolute times on a shared machine are noise.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One measured figure, with its target when DESIGN §8 sets one."""

    measure: str
    value: float | int | str | None
    unit: str = ""
    target: str | None = None
    met: bool | None = None
    detail: str = ""

    def shown(self) -> str:
        value = self.value
        if value is None:
            text = "n/a"
        elif isinstance(value, str):
            text = value
        elif isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                        and abs(value) >= 1000):
            text = f"{int(value):,}"
        elif abs(value) >= 100:
            text = f"{value:,.0f}"
        elif abs(value) >= 10:
            text = f"{value:.1f}"
        elif abs(value) >= 1:
            text = f"{value:.2f}"
        else:
            text = f"{value:.3f}"
        return f"{text} {self.unit}".strip()

    def verdict(self) -> str:
        if self.met is None:
            return ""
        return "met" if self.met else "**missed**"


@dataclass
class BenchResult:
    """The outcome of one benchmark: its rows and what a reader must know about them."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    quick: bool = False
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, measure: str, value: float | int | str | None, unit: str = "", *,
            target: str | None = None, met: bool | None = None, detail: str = "") -> Row:
        if self.quick:
            met = None  # a quick run proves the benchmark works; it judges nothing
        row = Row(measure, value, unit, target, met, detail)
        self.rows.append(row)
        return row

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchResult:
        rows = [Row(**r) for r in data.get("rows", [])]
        return cls(**{**data, "rows": rows})

    def markdown(self) -> str:
        lines = [f"### {self.title} (`{self.name}`)", "", "| measure | value | target | |",
                 "|---|---:|---|---|"]
        for r in self.rows:
            measure = r.measure + (f" <br><sub>{r.detail}</sub>" if r.detail else "")
            lines.append(f"| {measure} | {r.shown()} | {r.target or ''} | {r.verdict()} |")
        if self.notes:
            lines.append("")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines)

    def text(self) -> str:
        width = max((len(r.measure) for r in self.rows), default=10)
        out = [f"== {self.title}" + (" (quick)" if self.quick else "")]
        for r in self.rows:
            tail = ""
            if r.target:
                judged = r.verdict().strip("*") or (
                    "not judged in --quick" if self.quick else "not judged")
                tail = f"  [target {r.target}: {judged}]"
            out.append(f"  {r.measure:<{width}}  {r.shown():>16}{tail}")
            if r.detail:
                out.append(f"  {'':<{width}}    {r.detail}")
        out.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(out)


# -- statistics ------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation, as numpy's default."""
    data = sorted(values)
    if not data:
        raise ValueError("no values")
    pos = (len(data) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratio_ci(a: Sequence[float], b: Sequence[float], *, rounds: int = 1000,
             seed: int = 8) -> tuple[float, float]:
    """95% bootstrap interval of median(b) / median(a), resampling the interleaved pairs."""
    rng = random.Random(seed)
    n = len(a)
    ratios = []
    for _ in range(rounds):
        idx = [rng.randrange(n) for _ in range(n)]
        ratios.append(median([b[i] for i in idx]) / median([a[i] for i in idx]))
    return percentile(ratios, 0.025), percentile(ratios, 0.975)


def paired_ratio_ci(a: Sequence[float], b: Sequence[float], *, rounds: int = 1000,
                    seed: int = 8) -> tuple[float, float, float]:
    """Median of the per-pair ratios b[i] / a[i], with its 95% bootstrap interval.

    Each pair ran back to back, so it shares the machine's load of that moment; the
    paired estimate is less disturbed by load that comes and goes than a ratio of medians.
    """
    ratios = [y / x for x, y in zip(a, b, strict=True)]
    rng = random.Random(seed)
    n = len(ratios)
    boot = [median([ratios[rng.randrange(n)] for _ in range(n)]) for _ in range(rounds)]
    return median(ratios), percentile(boot, 0.025), percentile(boot, 0.975)


def median_ci(values: Sequence[float], *, rounds: int = 1000,
              seed: int = 8) -> tuple[float, float, float]:
    """The median of ``values`` with its 95% bootstrap interval."""
    rng = random.Random(seed)
    n = len(values)
    boot = [median([values[rng.randrange(n)] for _ in range(n)]) for _ in range(rounds)]
    return median(values), percentile(boot, 0.025), percentile(boot, 0.975)


def paired_diff_ci(a: Sequence[float], b: Sequence[float], *, rounds: int = 1000,
                   seed: int = 8) -> tuple[float, float, float]:
    """Median of the per-pair differences b[i] - a[i], with its 95% bootstrap interval."""
    return median_ci([y - x for x, y in zip(a, b, strict=True)], rounds=rounds, seed=seed)


def at_most(hi: float, target: float) -> bool:
    """A "≤ target" met only when the interval's upper bound meets it (DESIGN §8):
    a point estimate under the target with an interval above it is not met."""
    return hi <= target


def at_least(lo: float, target: float) -> bool:
    """A "≥ target" met only when the interval's lower bound meets it."""
    return lo >= target


def layer_ratio(ratio: float, lo: float, hi: float) -> str:
    """A layer's time ÷ its base's, worded so a layer is never called faster than its base.

    Both sides do the base's work, so a ratio under 1 is noise: the claim is "no slower,
    within X %" from the interval's upper bound; an interval wholly above 1 is "slower".
    """
    if lo > 1.0:
        return f"{ratio:.3f} x (slower; 95% CI {lo:.3f}-{hi:.3f})"
    return f"no slower, within {max(hi - 1.0, 0.0) * 100:.1f} % (95% CI {lo:.3f}-{hi:.3f})"


def layer_added(diff: float, lo: float, hi: float) -> str:
    """µs a layer adds to its base, worded as :func:`layer_ratio`: a difference whose
    interval reaches 0 is "no more than" its upper bound, never a saving."""
    if lo > 0:
        return f"{diff:+.0f} µs (95% CI {lo:+.0f}…{hi:+.0f})"
    return f"no more than {max(hi, 0.0):+.0f} µs (95% CI {lo:+.0f}…{hi:+.0f})"


def paired_figures(a: Sequence[float], b: Sequence[float], ca: Sequence[float],
                   cb: Sequence[float], requests: Sequence[int]) -> dict[str, Any]:
    """What a layer adds to its base per turn, from back-to-back pairs: wall-clock times
    ``a`` (base) and ``b`` (layer), event-loop thread CPU times ``ca`` and ``cb``, in µs."""
    return {
        "turns": len(a),
        "raw_us": {"median": median(a), "p95": percentile(a, 0.95)},
        "layer_us": {"median": median(b), "p95": percentile(b, 0.95)},
        "ratio_median": median(b) / median(a), "ratio_ci95": list(ratio_ci(a, b)),
        "paired_ratio": list(paired_ratio_ci(a, b)),
        "cpu_paired_ratio": list(paired_ratio_ci(ca, cb)),
        "added_us": list(paired_diff_ci(a, b)),
        "cpu_added_us": list(paired_diff_ci(ca, cb)),
        "requests_per_turn": requests[0] if requests else 0,
    }


def add_turn_rows(result: BenchResult, label: str, names: tuple[str, str],
                  fig: dict[str, Any], target_us: float | None = None) -> None:
    """The rows every layer-over-base turn shows: both medians, and the µs the layer adds
    (thread CPU, judged on the upper bound when ``target_us`` is given; wall clock beside)."""
    base, layer = names
    a, b = fig["raw_us"], fig["layer_us"]
    result.add(f"{label}: {base} / {layer}, median (p95)",
               f"{a['median'] / 1e3:.2f} ({a['p95'] / 1e3:.2f}) / "
               f"{b['median'] / 1e3:.2f} ({b['p95'] / 1e3:.2f}) ms",
               detail=f"{fig['turns']} back-to-back pairs, {fig['requests_per_turn']} LLM "
                      "requests per turn on each side")
    diff, dlo, dhi = fig["cpu_added_us"]
    wall, wlo, whi = fig["added_us"]
    result.add(f"{label}: µs {layer} adds, thread CPU time", layer_added(diff, dlo, dhi),
               target=None if target_us is None else f"≤ {target_us:g} µs (CI upper bound)",
               met=None if target_us is None else at_most(dhi, target_us),
               detail=f"median of per-pair differences {diff:+.0f} µs; wall clock "
                      + layer_added(wall, wlo, whi))


# -- the machine -----------------------------------------------------------------------
LOAD_LIMIT_PER_CORE = 1.0
"""A page taken while the 1-minute load average exceeds this many runnable processes per
core is marked as taken under load (the figures are still written, by the same run)."""


def load_average() -> float | None:
    """The 1-minute load average now (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def load_limit() -> float:
    """The load average above which a run is marked: LOAD_LIMIT_PER_CORE times the cores."""
    return LOAD_LIMIT_PER_CORE * (os.cpu_count() or 1)


def machine() -> dict[str, Any]:
    """Where the numbers were taken: CPU, cores, versions, date."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": load,
        "python": platform.python_version(),
        "livekit_agents": version("livekit-agents"),
        "transitions": version("transitions"),
        "hypothesis": version("hypothesis"),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def quiet_livekit() -> None:
    """LiveKit logs every handoff and tool call at INFO/DEBUG; a benchmark prints only results."""
    for name in ("livekit", "livekit.agents", "handoff", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


# -- command line ----------------------------------------------------------------------
def main(run: Callable[[bool], BenchResult], argv: Sequence[str] | None = None) -> BenchResult:
    """``python -m benchmarks.X [--quick] [--json PATH]``: run, print, optionally save."""
    parser = argparse.ArgumentParser(description=(run.__module__ or "benchmark"))
    parser.add_argument("--quick", action="store_true",
                        help="a short run that only proves the benchmark works (CI)")
    parser.add_argument("--json", type=Path, help="write the result as JSON to this file")
    args = parser.parse_args(argv)
    quiet_livekit()
    import time

    start = time.perf_counter()
    result = run(args.quick)
    result.seconds = round(time.perf_counter() - start, 2)
    print(result.text())
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    sys.stdout.flush()
    return result
