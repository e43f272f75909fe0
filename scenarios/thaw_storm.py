"""thaw_storm: cold starts, zombies from reclaimed workers, thaws after leases expired.

Provokes: a burst of cold starts, two sandboxes reclaimed with their links
blackholed (their backends stay on the server as true zombies), the leases of the
rest left to expire, and a sandbox thawed after its lease expired that opens a
transaction and holds it while another reaps.
Judges: P1 (nothing active or leased is killed, the thawed one fences itself),
P2 (the zombies are reaped within the bound), P3, P4, P5.

At scale (``workers=500 preset=self-hosted``, say) it is the storm users meet: 300
sandboxes in flight at once against a server that admits ~95 of them, 150
reclaimed with their links blackholed, 300 more arriving after the leases expired.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
"""

from __future__ import annotations

import sys

from harness.chaos.steps import (
    Age,
    Burst,
    ColdStartWave,
    Invoke,
    InvokeWarm,
    Reclaim,
    Step,
    ThawIntoTx,
)
from harness.chaos.timings import AT_SCALE_FROM
from harness.cli import main_for
from scenarios._fleet import FleetOptions, fleet_scenario

SMALL: list[Step] = [
    Burst(3),
    Invoke("write"),
    Reclaim(0),
    Reclaim(0),
    Age(),
    Invoke("write"),
    ThawIntoTx(0),
    Burst(3),
]


def schedule(opts: FleetOptions) -> list[Step]:
    """The small storm, or — with ``workers`` of 20 and more (``W``) — the storm at
    scale: 0.6 W sandboxes in flight at once, half of them reclaimed with their links
    blackholed, the leases left to expire, a second wave of 0.6 W, then traffic on a
    warm sandbox (a sandbox refused at the door cannot reap: recovery waits for one)."""
    if opts.workers < AT_SCALE_FROM:
        return SMALL
    wave = round(0.6 * opts.workers)
    return [
        ColdStartWave(wave, opts.prestart),
        *[Reclaim(0) for _ in range(wave // 2)],
        Age(),
        ColdStartWave(wave, opts.prestart),
        InvokeWarm(),
        Invoke("write"),
    ]


SCENARIO = fleet_scenario(
    "thaw_storm",
    "cold starts, zombies from reclaimed workers, thaws after leases expired",
    schedule,
    judges="P1-P7",
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
