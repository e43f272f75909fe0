"""harness.cli: the command people run (``thawproof``, ``python -m harness``) and the runner.

- ``runner``    one named scenario end to end: servers up, the scenario, a report,
                an exit status (0 holds, 1 a property failed, 2 unjudged, 130/143
                interrupted)
- ``commands``  the subcommands: list, run, replay, report, analyze, clean
- ``table``     the table ``run`` / ``make chaos`` ends with
"""

from harness.cli.commands import main
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
    "main",
    "main_for",
    "parse_options",
    "render",
    "run_scenario",
]
