"""Sustained rate and 429 share of the adaptive Throttle against a fixed-concurrency baseline.

    python benchmarks/throttle_simulation.py [--windows 10]

Both clients run in virtual time against the same simulated service (tests/dataverse/
simulated_service.py): a pool of 64 workers sharing one ``Throttle``, and 50 workers that each
wait out their own ``Retry-After`` (what peer tools do). Each scenario runs ``--windows`` service
windows (120 s without a window limit) and is measured over its second half, after the start-up
burst, as a share of the highest sustained rate the limits allow.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.dataverse.simulated_service import (  # noqa: E402
    ServiceLimits,
    run_fixed,
    run_throttled,
)

SCENARIOS = {
    "Dataverse: 52 concurrent, dop hint 50, 6,000 req / 300 s, 0.1 s requests": ServiceLimits(
        max_requests=6000, max_execution_s=1200, window_s=300, dop_hint=50, latency_s=0.1
    ),
    "Dataverse, bulk: 20 min execution / 300 s, 1 s CreateMultiple": ServiceLimits(
        max_requests=6000, max_execution_s=1200, window_s=300, dop_hint=50, latency_s=1.0
    ),
    "time-scaled emulator: 300 req / 15 s, 60 s execution, 0.2 s requests": ServiceLimits(
        max_requests=300, max_execution_s=60, window_s=15, dop_hint=50, latency_s=0.2
    ),
    "16 concurrent (no hint), no window limit": ServiceLimits(max_concurrent=16, latency_s=0.2),
    "8 concurrent and 1,200 req / 60 s": ServiceLimits(
        max_concurrent=8, max_requests=1200, window_s=60, latency_s=0.2
    ),
}


def main() -> None:
    """Print one block per scenario: adaptive, baseline, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=10, help="service windows per run")
    args = parser.parse_args()
    for name, limits in SCENARIOS.items():
        started = time.perf_counter()
        duration = args.windows * limits.window_s if limits.max_requests else 120.0
        adaptive, throttle = run_throttled(limits, duration_s=duration, measure_from_s=duration / 2)
        baseline = run_fixed(
            limits, concurrency=50, duration_s=duration, measure_from_s=duration / 2
        )
        stats = throttle.stats()
        print(name)
        print("  " + adaptive.line())
        print("  " + baseline.line())
        print(
            f"  adaptive/baseline rate {adaptive.rate / baseline.rate:.2f}; "
            f"final limit {stats.limit}, pace "
            f"{'none' if stats.rate_limit_per_s is None else f'{stats.rate_limit_per_s:.2f}/s'}"
            f", {stats.decreases} cuts; {duration:g} s simulated in "
            f"{time.perf_counter() - started:.1f} s"
        )


if __name__ == "__main__":
    main()
