"""Entry point of ``cdk synth`` / ``cdk deploy`` (see docs/deploy.md)."""

from infra.application import build_app

app, _ = build_app()
app.synth()
