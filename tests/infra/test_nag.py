"""cdk-nag's AwsSolutions pack passes (acknowledgments, each with its reason, live beside the
constructs they concern in ``infra/``)."""

from __future__ import annotations

import json
from pathlib import Path


def test_synthesis_passes_aws_solutions_checks(synthesized) -> None:
    stack, _ = synthesized
    report = Path(stack.node.root.outdir) / "validation-report.json"
    # The fixture's synth raises on any unacknowledged error; a report, if written, must agree.
    if report.exists():
        plugin_reports = json.loads(report.read_text())["pluginReports"]
        assert all(r["conclusion"] == "success" for r in plugin_reports), report.read_text()
