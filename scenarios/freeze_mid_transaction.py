"""freeze_mid_transaction: an idle-in-transaction zombie holding the row a later write needs.

Provokes: a sandbox frozen inside an open transaction that holds a row lock
(its backend stays "idle in transaction"), then another sandbox's write that needs
that very row and waits for it, while a third runs the reaper once the frozen
one's lease expired.
Judges: P2 (the idle-in-transaction zombie is reaped within the bound), P4 (the
blocked write completes), P1 (the frozen transaction is killed only once its lease
expired), P3, P5.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
"""

from __future__ import annotations

import sys

from harness.chaos.steps import Burst, FreezeMid, Invoke, Thaw, WriteLockedRow
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "freeze_mid_transaction",
    "an idle-in-transaction zombie holding the row a later write needs",
    [Burst(3), FreezeMid("tx"), WriteLockedRow(), Thaw(0), Invoke("write")],
    judges="P1-P7",
    workers=4,
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
