"""checkpoint_restore: a task runner's suspend: the pool survives, its socket does not.

Provokes: the background-task runners' suspend (CRIU-style; CRIU itself does not
run on this kernel, so it is modelled): a sandbox frozen with its link cut (the
snapshot), the server ending its idle backend meanwhile, then the process restored
with its memory — the client object survives, but its socket is dead on first use.
Judges: P4 (the restored client notices and reconnects, no error escapes), P3 (a
write on the dead socket is never run twice), P1, P2, P5.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
"""

from __future__ import annotations

import sys

from harness.chaos.steps import Burst, CheckpointRestore, Invoke
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "checkpoint_restore",
    "a task runner's suspend: the pool survives, its socket does not",
    [Burst(2), CheckpointRestore(0), Invoke("write"), CheckpointRestore(1), Invoke("write_once")],
    judges="P1-P7",
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
