"""server_restart: the server restarts, an operator kills, a proxy goes down.

Provokes: PostgreSQL restarted with -m immediate while one sandbox is frozen
mid-query and another mid-transaction, an operator's pg_terminate_backend of an
idle sandbox's backend, its proxy going down; then the frozen ones thawed.
Judges: P4 (every worker recovers on a fresh connection once the faults heal),
P3 (a write cut by the restart is never duplicated), P1, P2, P5.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
"""

from __future__ import annotations

import sys

from harness.chaos.steps import FreezeMid, Invoke, NetworkFault, PgRestart, TerminateBackend, Thaw
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "server_restart",
    "the server restarts, an operator kills, a proxy goes down",
    [
        Invoke("write"),
        FreezeMid("query"),
        FreezeMid("tx"),
        PgRestart(),
        Invoke("write"),
        TerminateBackend(0),
        NetworkFault(1, "proxy_down"),
        Thaw(0),
        Thaw(0),
        Invoke("write"),
    ],
    judges="P1-P7",
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
