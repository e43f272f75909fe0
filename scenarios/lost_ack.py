"""lost_ack: writes whose answers are lost, plain and through execute_once.

Provokes: a write whose answer is lost after the server committed it (a
downstream timeout toxic added before the write is sent); through the client's
idempotency-key path, the answer to its COMMIT (the worker pauses just before
COMMIT is sent, the toxic goes in, COMMIT commits; the toxic goes at the first
error, so the retry reaches the server; or not before the op ends, so every retry
meets a silent server and the outcome stays unknown); and sockets cut mid-query.
Judges: P3 (an unknown outcome is reported as unknown and never run twice; the
idempotency path writes exactly once), P4, P1, P2, P5.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
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
        AckLost("write_once", "at_end"),
        Invoke("write_once"),
        SocketReset("reset_peer"),
        SocketReset("disable"),
    ],
    judges="P1-P7",
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
