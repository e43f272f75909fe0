"""``python -m harness.infra.watchdog RECORDS OWNER_PID``: clean up after an owner that dies.

The role testcontainers gives Ryuk. Started by :class:`harness.infra.owned.Owned`
in a session of its own (so the terminal's Ctrl-C does not reach it), it waits
for the owner process to disappear — however it ends, SIGKILL included — then
undoes every record in ``RECORDS`` the owner never released (processes killed,
clusters stopped, directories removed) and exits. An owner that exits normally
releases everything itself and removes the file; the watchdog then finds nothing
to do.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from pathlib import Path

from harness.infra.owned import clean_file


def wait_for_exit(pid: int) -> None:
    """Block until process ``pid`` has exited (a pidfd becomes readable then)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m harness.infra.watchdog RECORDS OWNER_PID", file=sys.stderr)
        return 2
    # Signals from the terminal or from the owner's teardown are not ours to die of.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    wait_for_exit(int(argv[1]))
    clean_file(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
