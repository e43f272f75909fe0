"""server_faults: a server restart, operator kills, a proxy down, latency, mid-op freezes.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the five properties.
Options: ``client=<bug-zoo name>`` (default ``correct``), ``workers=N``.
"""

from __future__ import annotations

import sys

from harness.chaos.steps import FreezeMid, Invoke, NetworkFault, PgRestart, TerminateBackend, Thaw
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "server_faults",
    "server restart, operator kills, proxy down, latency, frozen mid-query and mid-transaction",
    [
        Invoke("write"),
        FreezeMid("query"),
        FreezeMid("tx"),
        PgRestart(),
        Invoke("write"),
        TerminateBackend(0),
        NetworkFault(0, "latency"),
        NetworkFault(1, "proxy_down"),
        Thaw(0),
        Thaw(0),
        Invoke("write"),
    ],
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
