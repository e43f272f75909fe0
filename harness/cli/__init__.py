"""harness.cli: the command people run (``thawproof``, ``python -m harness``) and the runner.

This package's ``__init__`` re-exports the runner only: ``commands`` sits above
``harness.compare`` (which runs scenarios through the runner), so nothing below
it may reach it through the package.

- ``runner``    one named scenario end to end: servers up, the scenario, a report,
                an exit status (0 holds, 1 a property failed, 2 unjudged, 130/143
                interrupted)
- ``commands``  the subcommands: list, run, replay, report, analyze, clean
- ``table``     the table ``run`` / ``make chaos`` ends with
"""

from harness.cli.runner import (
    Context,
    Progress,
    Scenario,
    analyze,
    main_for,
    parse_options,
    render,
    run_scenario,
)

__all__ = [
    "Context",
    "Progress",
    "Scenario",
    "analyze",
    "main_for",
    "parse_options",
    "render",
    "run_scenario",
]
