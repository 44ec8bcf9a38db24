"""One synthesized app for all stack tests: synthesis takes seconds, assertions milliseconds."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the CDK app's ``infra`` package is not installed
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory):
    """(stack, template dict), synthesized with cdk-nag attached exactly as ``app.py`` does;
    synthesis raises if any AwsSolutions rule fails without an acknowledgment."""
    from aws_cdk.assertions import Template

    from infra.application import build_app

    # The context a deploy uses: cdk.json's.
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    app, stack = build_app(outdir=str(tmp_path_factory.mktemp("cdk.out")), context=context)
    app.synth()
    return stack, Template.from_stack(stack).to_json()


@pytest.fixture(scope="module")
def template(synthesized) -> dict:
    """The synthesized stack's CloudFormation template, as a dict."""
    return synthesized[1]
