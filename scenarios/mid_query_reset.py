"""mid_query_reset: sockets cut while queries run.

Provokes: a slow read whose socket is reset (TCP RST) when its answer comes back,
one whose proxy is closed while the server is silent, a worker frozen while
the server runs its query, then thawed, a retryable and a non-retryable
transaction whose backend is terminated between its statements, and two writes
refused (by the server, and by the driver before sending) between the cuts.
Judges: P4 (a cut socket is an error the client handles, never a hang or a dead
worker; the next invocation succeeds), P1, P2, P3, P5.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
"""

from __future__ import annotations

import sys

from harness.chaos.steps import FreezeMid, Invoke, Rejected, SocketReset, TerminateInTx, Thaw
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "mid_query_reset",
    "sockets cut while queries run",
    [
        Invoke("read"),
        SocketReset("reset_peer"),
        Rejected("server"),
        SocketReset("disable"),
        Rejected("client"),
        FreezeMid("query"),
        Thaw(0),
        TerminateInTx(retryable=True),
        TerminateInTx(retryable=False),
        Invoke("write"),
    ],
    judges="P1-P7",
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
