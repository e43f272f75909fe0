"""``python -m scenarios (list | all | NAME [key=value ...])``."""

from __future__ import annotations

import sys

from harness import interrupt
from harness.cli import main_for, run_scenario
from harness.interrupt import handle_signals
from harness.report import EXIT_UNJUDGED
from scenarios import discover

USAGE = "usage: python -m scenarios (list | all | NAME [key=value ...])"


def main(argv: list[str]) -> int:
    scenarios = discover()
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return EXIT_UNJUDGED if not argv else 0
    command, rest = argv[0], argv[1:]
    if command == "list":
        for s in scenarios.values():
            print(f"{s.name:<20} {s.description}")
        return 0
    if command == "all":
        if rest:
            print(f"scenarios: 'all' takes no options, got {rest[0]!r}", file=sys.stderr)
            return EXIT_UNJUDGED
        results = {}
        with handle_signals():
            for i, s in enumerate(scenarios.values(), 1):
                print(f"== scenario {i}/{len(scenarios)}: {s.name}", file=sys.stderr, flush=True)
                results[s.name] = run_scenario(s)
                if interrupt.interrupted() is not None:
                    break  # nothing further starts
        print("== chaos summary")
        words = {0: "pass", 1: "FAIL", 2: "UNJUDGED"}
        for name, code in results.items():
            print(f"  {name:<20} {words.get(code, 'interrupted')}")
        stopped = interrupt.exit_code()
        if stopped is not None:
            print(f"  interrupted: {len(scenarios) - len(results)} scenario(s) not started")
            return stopped
        return max(results.values(), default=0)
    if command not in scenarios:
        known = ", ".join(scenarios) or "none"
        print(f"scenarios: unknown scenario {command!r}; known: {known}", file=sys.stderr)
        return EXIT_UNJUDGED
    return main_for(scenarios[command], rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
