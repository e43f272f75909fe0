"""``make bench``: run every ``bench/bench_*.py`` module and write ``reports/bench.json``.

Each module exposes ``run(progress: Callable[[str], None]) -> dict``: it
measures its subjects side by side in one run and returns figures (ratios
where it compares), with a ``headlines`` list (see :mod:`bench.goals`): one
line per figure against its goal, printed after each module and all together
at the end, so a missed goal is never silent. Usage: ``python -m bench [name ...]``
(names without the ``bench_`` prefix); no name runs them all.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path
from typing import Any

import bench
from bench.goals import render

REPORT = Path(__file__).resolve().parent.parent / "reports" / "bench.json"


def _progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    names = sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith("bench_")
    )
    wanted = argv or names
    unknown = [n for n in wanted if n not in names]
    if unknown:
        print(
            f"bench: unknown benchmark {unknown[0]!r}; known: {', '.join(names)}", file=sys.stderr
        )
        return 2
    results: dict[str, Any] = {}
    if REPORT.exists():
        try:
            results = json.loads(REPORT.read_text())
        except ValueError:
            results = {}
    headlines: list[str] = []
    for name in wanted:
        _progress(f"running {name}")
        module = importlib.import_module(f"bench.bench_{name}")
        figures = module.run(_progress)
        figures["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        results[name] = figures
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(json.dumps({name: figures}, indent=2, sort_keys=True))
        lines = [render(h) for h in figures.get("headlines", [])]
        if not lines:
            lines = [f"NO HEADLINE {name}: this benchmark states no figure against a goal"]
        for line in lines:
            print(line, flush=True)
        headlines += lines
    print("== headlines (goals are for this 2-core machine; figures are side by side)")
    for line in headlines:
        print(line)
    print(f"wrote {REPORT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
