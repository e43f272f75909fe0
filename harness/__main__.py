"""``python -m harness``: the ``thawproof`` command (see :mod:`harness.cli.commands`)."""

from __future__ import annotations

import sys

from harness.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
