"""``blocklake api-key``: a new key lands in the secret as its digest, and the authorizer then
accepts it for that tenant (Secrets Manager on moto)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from blocklake.api_keys import create_api_key
from blocklake.auth import key_digest, tenant_for_key
from blocklake.cli import app


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("secretsmanager")
        arn = client.create_secret(Name="keys", SecretString="{}")["ARN"]
        yield client, arn


def test_a_created_key_is_stored_as_its_digest_and_maps_to_its_tenant(secret) -> None:
    client, arn = secret
    first = create_api_key(client, arn, "acme")
    second = create_api_key(client, arn, "globex")
    stored = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
    assert stored == {key_digest(first): "acme", key_digest(second): "globex"}
    assert first not in json.dumps(stored)
    assert tenant_for_key(first, stored) == "acme" and tenant_for_key(second, stored) == "globex"


def test_the_cli_finds_the_secret_in_the_region_its_arn_names(monkeypatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        arn = client.create_secret(Name="keys", SecretString="{}")["ARN"]
        result = CliRunner().invoke(app, ["api-key", "--secret-arn", arn, "--tenant", "acme"])
        assert result.exit_code == 0, result.output
        stored = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
    assert list(stored.values()) == ["acme"]


def test_the_cli_prints_the_key_once_and_refuses_a_bad_tenant(secret) -> None:
    client, arn = secret
    runner = CliRunner()
    result = runner.invoke(app, ["api-key", "--secret-arn", arn, "--tenant", "acme"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    stored = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
    assert tenant_for_key(key, stored) == "acme"
    result = runner.invoke(app, ["api-key", "--secret-arn", arn, "--tenant", "Not A Tenant"])
    assert result.exit_code == 1 and "no key created" in result.output
    result = runner.invoke(app, ["api-key", "--secret-arn", arn + "x", "--tenant", "acme"])
    assert result.exit_code == 1 and "no key created" in result.output
    assert "Traceback" not in result.output
