"""The HTTP API: ingest and query routes behind a Lambda authorizer that checks API keys.

API keys never leave the client in clear form on the server side: the secret holds
``{"<sha256 hex of key>": "<tenant>"}`` and the authorizer passes the tenant on to the handlers
in the request context (``requestContext.authorizer.lambda.tenant``).
"""

from __future__ import annotations

from aws_cdk import Duration, SecretValue
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.functions import LakeFunction, retained_log_group
from infra.nag import acknowledge

INGEST_ROUTES = ("/v1/processes", "/v1/streams", "/v1/blocks", "/v1/attachments")
QUERY_ROUTE = "/v1/query"
DOWNLOAD_ROUTE = "/v1/attachments/{attachment_id}"
"""GET: a redirect to a presigned GET of the tenant's attachment (the query function reads)."""
ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
    '"time":"$context.requestTime","method":"$context.httpMethod","path":"$context.path",'
    '"status":"$context.status","length":"$context.responseLength",'
    '"latencyMs":"$context.responseLatency","tenant":"$context.authorizer.tenant",'
    '"error":"$context.authorizer.error"}'
)


class IngestQueryApi(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        ingest: lambda_.IFunction,
        query: lambda_.IFunction,
        throttle_rate_per_second: int = 200,
    ) -> None:
        super().__init__(scope, id)
        self.api_keys = secretsmanager.Secret(
            self,
            "ApiKeys",
            description='blocklake API keys: {"<sha256 hex of key>": "<tenant>"}',
            # An empty map: no key is valid until one is added (see docs/deploy.md).
            secret_string_value=SecretValue.unsafe_plain_text("{}"),
        )
        acknowledge(
            self.api_keys,
            "AwsSolutions-SMG4",
            "Holds digests of API keys, not credentials a rotation Lambda could renew: keys are "
            "rotated by adding a new digest and removing the old one.",
        )
        self.authorizer_function = LakeFunction(
            self,
            "Authorizer",
            function="authorizer",
            memory_mb=256,
            timeout=Duration.seconds(5),
            environment={"BLOCKLAKE_API_KEYS_SECRET_ARN": self.api_keys.secret_arn},
        )
        self.api_keys.grant_read(self.authorizer_function.role)
        authorizer = authorizers.HttpLambdaAuthorizer(
            "ApiKeyAuthorizer",
            self.authorizer_function.function,
            response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
            # The key may come in either of two headers, and a listed identity source must be
            # present, so none is listed; caching in API Gateway then has to be off, and the
            # authorizer caches the key map itself instead.
            identity_source=[],
            results_cache_ttl=Duration.seconds(0),
        )
        self.http_api = apigw.HttpApi(
            self,
            "HttpApi",
            description="blocklake ingestion and query API",
            default_authorizer=authorizer,
        )
        ingest_integration = integrations.HttpLambdaIntegration("Ingest", ingest)
        for path in INGEST_ROUTES:
            self.http_api.add_routes(
                path=path, methods=[apigw.HttpMethod.POST], integration=ingest_integration
            )
        query_integration = integrations.HttpLambdaIntegration("Query", query)
        self.http_api.add_routes(
            path=QUERY_ROUTE, methods=[apigw.HttpMethod.POST], integration=query_integration
        )
        self.http_api.add_routes(
            path=DOWNLOAD_ROUTE, methods=[apigw.HttpMethod.GET], integration=query_integration
        )
        self.access_logs = retained_log_group(self, "AccessLogs")
        self._configure_stage(self.access_logs, throttle_rate_per_second)
        self.url = self.http_api.api_endpoint

    def _configure_stage(self, access_logs: logs.ILogGroup, rate_per_second: int) -> None:
        stage = self.http_api.default_stage.node.default_child
        stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=access_logs.log_group_arn, format=ACCESS_LOG_FORMAT
        )
        stage.default_route_settings = apigw.CfnStage.RouteSettingsProperty(
            throttling_rate_limit=rate_per_second, throttling_burst_limit=2 * rate_per_second
        )
