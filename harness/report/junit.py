"""``junit.xml``: one test case per property, so CI shows a run like a test suite."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from harness.check import render_verdict
from harness.report.result import ScenarioResult


def write_junit(outcome: ScenarioResult, path: Path) -> None:
    """One test case per property (or one error when the run was not judged)."""
    suite = ET.Element("testsuite", name=f"thawproof.{outcome.scenario}")
    failures = errors = 0
    if outcome.unjudged is not None:
        case = ET.SubElement(suite, "testcase", classname=outcome.scenario, name="setup")
        ET.SubElement(case, "error", message=outcome.unjudged)
        errors = 1
    for v in outcome.verdicts:
        case = ET.SubElement(
            suite, "testcase", classname=outcome.scenario, name=f"{v.prop} {v.title}"
        )
        if v.failed:
            failures += 1
            fail = ET.SubElement(case, "failure", message=v.summary)
            fail.text = render_verdict(v)
        elif v.unknown:  # could not be judged: an error of the run, not a failure
            errors += 1
            err = ET.SubElement(case, "error", message=v.summary)
            err.text = render_verdict(v)
    suite.set("tests", str(max(1, len(outcome.verdicts))))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
