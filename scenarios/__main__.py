"""``python -m scenarios (list | all | NAME [key=value ...])``: the ``thawproof`` command.

``list`` is ``thawproof list``; ``all`` and ``NAME`` are ``thawproof run``.
"""

from __future__ import annotations

import sys

from harness.cli.commands import main as thawproof

USAGE = "usage: python -m scenarios (list | all | NAME [key=value ...])"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    if argv[0] == "list":
        return thawproof(["list", *argv[1:]])
    return thawproof(["run", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
