"""cdk-nag's AwsSolutions pack passes (acknowledgments, each with its reason, live beside the
constructs they concern in ``infra/``), and an unacknowledged finding fails synthesis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3

from infra.nag import acknowledge, check_app


def test_synthesis_passes_aws_solutions_checks(synthesized) -> None:
    stack, template = synthesized
    # The fixture's synth raises on any unacknowledged finding; what it wrote is the stack.
    out = Path(stack.node.root.outdir)
    written = json.loads((out / f"{stack.artifact_id}.template.json").read_text())
    assert written == template and template["Resources"]
    # (its validation-report.json lists no plugin report on success: nothing to read there;
    # that the plugin is attached and refuses is the next test's)


def _bucket_app(tmp_path: Path, *, acknowledged: bool) -> App:
    app = App(outdir=str(tmp_path))
    check_app(app)
    stack = Stack(app, "Nagged")
    bucket = s3.Bucket(stack, "Plain")  # no access logs (S1), no SSL-only policy (S10)
    if acknowledged:
        for rule in ("AwsSolutions-S1", "AwsSolutions-S10"):
            acknowledge(bucket, rule, "a test of the acknowledgments")
    return app


def test_an_unacknowledged_finding_fails_synthesis(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="AwsSolutions-S1"):
        _bucket_app(tmp_path / "refused", acknowledged=False).synth()
    _bucket_app(tmp_path / "acknowledged", acknowledged=True).synth()  # does not raise
