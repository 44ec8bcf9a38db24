"""The app as ``cdk synth`` and the tests build it: the stack, checked by cdk-nag."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import App, Environment

from infra.nag import check_app
from infra.stack import BlocklakeStack

STACK_NAME = "Blocklake"


def build_app(
    outdir: str | None = None, context: Mapping[str, object] | None = None
) -> tuple[App, BlocklakeStack]:
    """Environment-agnostic (no account or region lookups), so synthesis needs no credentials;
    ``cdk deploy`` picks the account and region from the AWS profile."""
    app = App(outdir=outdir, context=dict(context or {}))
    stack = BlocklakeStack(app, STACK_NAME, env=Environment())
    check_app(app)
    return app, stack
