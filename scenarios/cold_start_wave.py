"""cold_start_wave: more sandboxes than the server admits: 53300, retries, recovery.

Provokes: a wave of cold starts larger than the connections the server admits
the application role (the server is started with max_connections 8, 3 of them
reserved for superusers): some sandboxes are refused with 53300 and retry with
decorrelated jitter; the ones that got in are frozen holding their backends.
Once their leases expired, traffic reaches a warm sandbox, whose fresh connection's
reaper reaps the expired ones; then Lambda reclaims the surplus sandboxes and
invocations keep arriving for the fleet that fits. (A sandbox that is refused
cannot reap: with every slot held by frozen sandboxes and only new ones arriving,
recovery waits for traffic to reach a warm one — which this schedule provides.)
At scale (``workers=300 preset=supabase-micro``, say) the wave is the whole fleet
and waves keep arriving: a second wave of W follows the first once the leases
expired, while the reaper converges; the server log's count of refused attempts
(retries included) is in the notes, P2's convergence time against its bound in
the verdict.
Judges: P2 (no 53300 and no zombies past the bound after the wave), P1, P3, P4, P5;
the report shows the refusals and the recovery time.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
"""

from __future__ import annotations

import sys

from harness.chaos.steps import Age, ColdStartWave, Invoke, InvokeWarm, Reclaim, Step
from harness.chaos.timings import AT_SCALE_FROM
from harness.cli import main_for
from scenarios._fleet import FleetOptions, fleet_scenario


def schedule(opts: FleetOptions) -> list[Step]:
    """One wave of all ``W`` workers, the leases left to expire, traffic on a warm
    sandbox, then (at scale) a second wave of ``W`` while the reaper converges, and
    Lambda reclaiming half the fleet (links intact: their backends close cleanly)."""
    waves = opts.workers
    steps: list[Step] = [ColdStartWave(waves, opts.prestart), Age(), InvokeWarm()]
    if waves >= AT_SCALE_FROM:
        steps += [ColdStartWave(waves, opts.prestart), InvokeWarm()]
    steps += [Reclaim(0, blackhole=False) for _ in range(max(4, waves // 2))]
    return [*steps, Invoke("write")]


SCENARIO = fleet_scenario(
    "cold_start_wave",
    "more sandboxes than the server admits: 53300, retries, recovery",
    schedule,
    judges="P1-P7",
    workers=8,
    max_connections=8,
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
