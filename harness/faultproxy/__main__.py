"""``python -m harness.faultproxy``: bad input or a failed start is one line and exit 2."""

from __future__ import annotations

import asyncio
import sys

from . import VERSION
from ._alloc import tune_allocator
from ._flags import USAGE, FlagError, parse
from ._loop import new_event_loop
from ._server import StartupError, run


def main(argv: list[str]) -> int:
    try:
        opts = parse(argv)
    except FlagError as exc:
        print(f"faultproxy: {exc}", file=sys.stderr)
        return 2
    if opts.help:
        print(USAGE)
        return 0
    if opts.version:
        print(VERSION)
        return 0
    tune_allocator()
    try:
        with asyncio.Runner(loop_factory=lambda: new_event_loop(opts.spin_us)) as runner:
            runner.run(run(opts))
    except StartupError as exc:
        print(f"faultproxy: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
