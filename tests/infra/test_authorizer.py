"""The API-key authorizer against moto's Secrets Manager, with a real HTTP API v2 event."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from blocklake.auth import key_digest
from lambdas.authorizer import handler as authorizer

EVENT = json.loads((Path(__file__).parents[1] / "events" / "authorizer_request.json").read_text())


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    authorizer._cache.clear()
    with mock_aws():
        client = boto3.client("secretsmanager")
        arn = client.create_secret(
            Name="blocklake-api-keys",
            SecretString=json.dumps({key_digest("test-key-acme"): "acme"}),
        )["ARN"]
        monkeypatch.setenv("BLOCKLAKE_API_KEYS_SECRET_ARN", arn)
        yield client, arn
    authorizer._cache.clear()


def event_with_headers(**headers: str) -> dict:
    event = copy.deepcopy(EVENT)
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "authorization"}
    event["headers"].update(headers)
    return event


def test_a_known_bearer_key_is_authorized_with_its_tenant(secret) -> None:
    assert authorizer.handler(EVENT, None) == {"isAuthorized": True, "context": {"tenant": "acme"}}


def test_the_key_may_come_in_x_api_key_whatever_the_header_case(secret) -> None:
    response = authorizer.handler(event_with_headers(**{"X-Api-Key": "test-key-acme"}), None)
    assert response == {"isAuthorized": True, "context": {"tenant": "acme"}}


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong-key"}, {"authorization": "Basic dGVzdC1rZXktYWNtZQ=="}],
)
def test_missing_unknown_or_malformed_keys_are_refused(secret, headers: dict[str, str]) -> None:
    assert authorizer.handler(event_with_headers(**headers), None) == {"isAuthorized": False}


def test_an_event_without_headers_is_refused(secret) -> None:
    event = copy.deepcopy(EVENT)
    del event["headers"]
    assert authorizer.handler(event, None) == {"isAuthorized": False}


def test_the_key_map_is_cached_until_the_ttl_expires(secret, monkeypatch) -> None:
    client, arn = secret
    now = [1000.0]
    monkeypatch.setattr(authorizer.time, "monotonic", lambda: now[0])
    assert authorizer.handler(EVENT, None)["isAuthorized"]

    client.put_secret_value(SecretId=arn, SecretString="{}")  # the key is revoked
    now[0] += authorizer.CACHE_TTL_SECONDS - 1
    assert authorizer.handler(EVENT, None)["isAuthorized"]

    now[0] += 2
    assert authorizer.handler(EVENT, None) == {"isAuthorized": False}
