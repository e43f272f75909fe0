"""Named chaos scenarios, one module each, every one runnable on its own.

``python -m scenarios list`` names them, ``python -m scenarios all`` runs them
all (what ``make chaos`` does), ``python -m scenarios NAME [key=value ...]``
runs one, and so does ``python -m scenarios.NAME``. A module is a scenario
when it defines ``SCENARIO`` (a :class:`harness.cli.Scenario`).
"""

from __future__ import annotations

import importlib
import pkgutil

from harness.cli import Scenario


def discover() -> dict[str, Scenario]:
    found: dict[str, Scenario] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        scenario = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SCENARIO", None)
        if isinstance(scenario, Scenario):
            found[scenario.name] = scenario
    return dict(sorted(found.items()))
