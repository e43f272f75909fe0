"""harness.report: what a person reads after a run.

- ``result``        a scenario's verdicts and figures, and the exit status they map to
- ``rundir``        ``reports/<scenario>/<UTC time>/`` and ``reports/latest``
- ``plot``          ``timeline.png``
- ``html``          ``report.html``
- ``junit``         ``junit.xml``
- ``activity_csv``  ``activity.csv``
"""

from harness.report.result import EXIT_FAILED, EXIT_OK, EXIT_UNJUDGED, ScenarioResult
from harness.report.rundir import REPORTS_ROOT, RunDir

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_UNJUDGED", "REPORTS_ROOT", "RunDir", "ScenarioResult"]
