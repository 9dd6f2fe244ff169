"""Exhaustive exploration: move sequences per second on the pure model.

``handoff.testing.explore(flow, depth=N)`` enumerates every sequence of up to N moves
(declared transitions with boundary arguments, and code setting guarded Context fields)
on one pure run rewound between siblings, checking the oracle after every move. A
*path* is one complete sequence (N moves, or fewer where no move was left); a *step*
is one move made and checked. Measured on the call-centre example at depths 7 and 8,
the median of several repeats.
"""

from __future__ import annotations

import importlib
from typing import Any

from handoff.testing import explore

from ._common import BenchResult, at_least, main, median, median_ci

TARGET_PATHS_PER_S = 2_000


def _callcenter() -> Any:
    return importlib.import_module("examples.callcenter.flow").flow


def run(quick: bool = False) -> BenchResult:
    flow = _callcenter()
    explore(flow, depth=2)  # warm: guard parsing, type adapters
    depth, repeats = (4, 2) if quick else (8, 5)
    results = [explore(flow, depth=depth) for _ in range(repeats)]
    rates = [r.paths_per_second for r in results]
    steps = [r.steps / r.seconds for r in results if r.seconds]
    rate, rate_lo, _ = median_ci(rates)
    first = results[0]
    result = BenchResult("exploration", "8. Exhaustive exploration (pure model)", quick=quick)
    result.add(f"paths/s, call centre, depth {depth}", round(rate), "paths/s",
               target=None if quick else f"≥ {TARGET_PATHS_PER_S:,}",
               met=None if quick else at_least(rate_lo, TARGET_PATHS_PER_S),
               detail=f"{first.paths} paths, {first.steps} steps per exploration; judged on "
                      f"the 95% CI's lower bound, {rate_lo:,.0f} paths/s")
    per_cpu = median([r.paths / r.cpu_seconds for r in results if r.cpu_seconds])
    result.add("paths per CPU second", round(per_cpu), "paths/s",
               detail="the same, over the process's CPU time: what one free core would do")
    result.add("moves checked/s", round(median(steps)), "steps/s",
               detail="each: oracle verdict, the move, violations, rewind")
    result.add("violations found", 0 if first.ok else len(first.problems), "",
               detail="the call centre is correct")
    result.notes.append(f"Median over {repeats} explorations; "
                        "`python -m benchmarks.exploration` alone.")
    result.extra = {"rates": rates, "depth": depth, "paths": first.paths, "steps": first.steps}
    return result


if __name__ == "__main__":
    main(run)
