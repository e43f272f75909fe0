"""``python -m harness.compare [drivers=a,b] [scenarios=x,y] [seeds=N] [out=DIR]``."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.cli import parse_options
from harness.compare import run_compare
from harness.errors import UsageError
from harness.report import EXIT_UNJUDGED


def main(argv: list[str]) -> int:
    try:
        opts = parse_options(argv)
        unknown = set(opts) - {"drivers", "scenarios", "seeds", "out"}
        if unknown:
            raise UsageError(f"unknown option {sorted(unknown)[0]!r}")
        drivers = [d for d in opts.get("drivers", "").split(",") if d] or None
        scenarios = [s for s in opts.get("scenarios", "").split(",") if s] or None
        seeds = int(opts.get("seeds", "1"))
        if seeds < 1:
            raise UsageError("seeds must be at least 1")
        out = Path(opts["out"]) if "out" in opts else None
        return run_compare(drivers, scenarios, seeds, out)
    except (UsageError, ValueError) as e:
        print(f"compare: {e}", file=sys.stderr)
        return EXIT_UNJUDGED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
