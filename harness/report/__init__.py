"""harness.report: what a person reads after a run, and the run kept to be judged again.

- ``result``        a scenario's verdicts and figures, the one line that says why, the exit status
- ``rundir``        ``reports/<scenario>/<UTC time>/`` and ``reports/latest`` (judged runs only)
- ``stored``        the recorded run in its directory: config, final state, what was judged
- ``offline``       :func:`render` and :func:`analyze`: a stored run from its files alone
- ``identity``      when, from which commit, with which PostgreSQL and Toxiproxy a run ran
- ``lanes``         what the timeline shows, as data: lanes, states, ops, faults, kills
- ``plot``          ``timeline.png``
- ``tables``        the rows of the page's tables
- ``html``          ``report.html``
- ``junit``         ``junit.xml``
- ``activity_csv``  ``activity.csv``
"""

from harness.report.identity import run_identity
from harness.report.offline import VerifyFor, analyze, load_result, load_summary, render
from harness.report.result import EXIT_FAILED, EXIT_OK, EXIT_UNJUDGED, ScenarioResult
from harness.report.rundir import REPORTS_ROOT, RunDir
from harness.report.stored import load_run, store_run

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNJUDGED",
    "REPORTS_ROOT",
    "RunDir",
    "ScenarioResult",
    "VerifyFor",
    "analyze",
    "load_result",
    "load_run",
    "load_summary",
    "render",
    "run_identity",
    "store_run",
]
