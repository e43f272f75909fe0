"""lost_ack: writes whose answers are lost, plain and through execute_once.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the five properties.
Options: ``client=<bug-zoo name>`` (default ``correct``), ``workers=N``.
"""

from __future__ import annotations

import sys

from harness.chaos.steps import AckLost, Invoke, SocketReset
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "lost_ack",
    "writes whose answers are lost, plain and through execute_once",
    [
        Invoke("write"),
        AckLost("write"),
        AckLost("write_once"),
        Invoke("write_once"),
        SocketReset("reset_peer"),
        SocketReset("disable"),
    ],
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
