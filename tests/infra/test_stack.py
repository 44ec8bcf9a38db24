"""The synthesized stack: resources, the properties that matter, and least-privilege IAM."""

from __future__ import annotations

import copy
import json
import re

import pytest

from infra.migrations import migrations_hash

ACTIONS_THAT_ONLY_ACCEPT_STAR = {
    # X-Ray has no resource ARNs: its write actions take "*" only. (Lambda tracing adds them.)
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}


XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def resources(template: dict, type_name: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_name}


def properties(template: dict, type_name: str) -> list[dict]:
    return [v.get("Properties", {}) for v in resources(template, type_name).values()]


def function_id(template: dict, handler_folder: str) -> str:
    (logical_id,) = [
        k
        for k, v in resources(template, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == f"lambdas.{handler_folder}.handler.handler"
    ]
    return logical_id


def role_statements(template: dict, handler_folder: str) -> list[dict]:
    function = template["Resources"][function_id(template, handler_folder)]
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in properties(template, "AWS::IAM::Policy")
        if {"Ref": role} in policy["Roles"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def object_grants(statements: list[dict]) -> dict[str, set[str]]:
    """S3 object actions by key prefix, read from resources like ``<bucket arn>/raw/*``."""
    grants: dict[str, set[str]] = {}
    for statement in statements:
        for resource in as_list(statement["Resource"]):
            text = json.dumps(resource)
            match = re.search(r'"/([a-z-]+/\*)"', text)
            if "LakeBucket" in text and match:
                grants.setdefault(match.group(1), set()).update(as_list(statement["Action"]))
    return grants


def all_actions(statements: list[dict]) -> set[str]:
    return {action for s in statements for action in as_list(s["Action"])}


def test_the_lake_bucket_is_encrypted_private_and_tls_only(template) -> None:
    (bucket,) = properties(template, "AWS::S3::Bucket")
    encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (policy,) = properties(template, "AWS::S3::BucketPolicy")
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["PolicyDocument"]["Statement"]
    )


def test_raw_blocks_and_tables_expire_by_the_default_retention(template) -> None:
    (bucket,) = properties(template, "AWS::S3::Bucket")
    expiry = {
        rule.get("Prefix"): rule.get("ExpirationInDays")
        for rule in bucket["LifecycleConfiguration"]["Rules"]
    }
    assert expiry["raw/"] == 30
    # Iceberg tables are never expired under their snapshots' feet (blocklake.lake).
    assert not any(prefix and prefix.startswith("tables/") for prefix in expiry)
    assert expiry["attachments/"] == 400  # as long as the tables that link to them


def test_aurora_scales_to_zero_with_the_data_api_in_isolated_subnets(template) -> None:
    (cluster,) = properties(template, "AWS::RDS::DBCluster")
    assert cluster["Engine"] == "aurora-postgresql"
    major, minor = (int(part) for part in cluster["EngineVersion"].split(".")[:2])
    assert (major, minor) >= (16, 3), "0 ACU needs Aurora PostgreSQL 16.3 or later"
    assert cluster["ServerlessV2ScalingConfiguration"]["MinCapacity"] == 0
    assert cluster["ServerlessV2ScalingConfiguration"]["SecondsUntilAutoPause"] > 0
    assert cluster["EnableHttpEndpoint"] is True
    assert cluster["StorageEncrypted"] is True
    assert "{{resolve:secretsmanager:" in json.dumps(cluster["MasterUserPassword"])
    assert [i["DBInstanceClass"] for i in properties(template, "AWS::RDS::DBInstance")] == [
        "db.serverless"
    ]
    assert resources(template, "AWS::EC2::NatGateway") == {}
    assert resources(template, "AWS::EC2::InternetGateway") == {}
    subnets = properties(template, "AWS::EC2::Subnet")
    assert subnets and not [s for s in subnets if s.get("MapPublicIpOnLaunch")]


@pytest.mark.parametrize("folder", ["ingest", "etl", "committer", "query", "authorizer", "migrate"])
def test_functions_are_arm64_python_312_with_their_own_log_group(template, folder) -> None:
    function = template["Resources"][function_id(template, folder)]["Properties"]
    assert function["Architectures"] == ["arm64"]
    assert function["Runtime"] == "python3.12"
    assert "LoggingConfig" in function


@pytest.mark.parametrize("folder", ["ingest", "etl", "committer", "query"])
def test_lake_functions_send_traces_to_xray(template, folder) -> None:
    function = template["Resources"][function_id(template, folder)]["Properties"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert all_actions(role_statements(template, folder)) >= XRAY


def test_api_functions_fit_the_gateway_timeout_and_reserve_nothing_by_default(template) -> None:
    """A new account's concurrency quota can be 10, of which Lambda keeps all unreserved."""
    for folder in ("ingest", "etl", "committer", "query"):
        function = template["Resources"][function_id(template, folder)]["Properties"]
        assert "ReservedConcurrentExecutions" not in function
    for folder in ("ingest", "query"):
        function = template["Resources"][function_id(template, folder)]["Properties"]
        assert function["Timeout"] < 30


def test_reserved_concurrency_is_set_when_configured(tmp_path) -> None:
    from aws_cdk.assertions import Template

    from infra.application import build_app

    context = {"blocklake:reserved_concurrency": '{"ingest": 20, "query": 5}'}
    _app, stack = build_app(outdir=str(tmp_path), context=context)
    template = Template.from_stack(stack).to_json()
    reserved = {
        folder: template["Resources"][function_id(template, folder)]["Properties"].get(
            "ReservedConcurrentExecutions"
        )
        for folder in ("ingest", "etl", "committer", "query")
    }
    assert reserved == {"ingest": 20, "etl": None, "committer": None, "query": 5}


def test_routes_go_to_their_functions_behind_the_api_key_authorizer(template) -> None:
    routes = resources(template, "AWS::ApiGatewayV2::Route")
    integrations = resources(template, "AWS::ApiGatewayV2::Integration")
    target_of = {}
    for route in routes.values():
        integration_id = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        uri = integrations[integration_id]["Properties"]["IntegrationUri"]["Fn::GetAtt"][0]
        target_of[route["Properties"]["RouteKey"]] = uri
        assert route["Properties"]["AuthorizationType"] == "CUSTOM"
    assert target_of == {
        "POST /v1/processes": function_id(template, "ingest"),
        "POST /v1/streams": function_id(template, "ingest"),
        "POST /v1/blocks": function_id(template, "ingest"),
        "POST /v1/query": function_id(template, "query"),
        "POST /v1/attachments": function_id(template, "ingest"),
        "GET /v1/attachments/{attachment_id}": function_id(template, "query"),
    }
    (authorizer,) = properties(template, "AWS::ApiGatewayV2::Authorizer")
    assert authorizer["EnableSimpleResponses"] is True
    assert authorizer["AuthorizerPayloadFormatVersion"] == "2.0"
    assert function_id(template, "authorizer") in json.dumps(authorizer["AuthorizerUri"])


def test_raw_block_notifications_reach_the_etl_through_a_queue_with_a_dead_letter_queue(
    template,
) -> None:
    (notifications,) = properties(template, "Custom::S3BucketNotifications")
    (queue_config,) = notifications["NotificationConfiguration"]["QueueConfigurations"]
    assert queue_config["Events"] == ["s3:ObjectCreated:*"]
    assert queue_config["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "raw/"}]
    queue_id = queue_config["QueueArn"]["Fn::GetAtt"][0]
    redrive = template["Resources"][queue_id]["Properties"]["RedrivePolicy"]
    dead_letter_id = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert template["Resources"][dead_letter_id]["Type"] == "AWS::SQS::Queue"
    assert redrive["maxReceiveCount"] >= 1
    (mapping,) = properties(template, "AWS::Lambda::EventSourceMapping")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert mapping["FunctionName"] == {"Ref": function_id(template, "etl")}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_commits_and_compaction_are_scheduled_on_the_committer(template) -> None:
    tasks = {}
    for rule in properties(template, "AWS::Events::Rule"):
        (target,) = rule["Targets"]
        action = json.loads(target["Input"])["action"]
        tasks[action] = rule["ScheduleExpression"]
        folder = "etl" if action == "reconcile" else "committer"
        assert target["Arn"] == {"Fn::GetAtt": [function_id(template, folder), "Arn"]}, action
    assert tasks == {"commit": "rate(1 minute)", "reconcile": "cron(35 * * * ? *)"}


def test_tenants_iceberg_tables_are_registered_by_the_committer_not_the_stack(template) -> None:
    assert properties(template, "AWS::Glue::Table") == []
    for folder in ("etl", "committer"):
        statements = role_statements(template, folder)
        writes = [s for s in statements if "glue:CreateTable" in as_list(s["Action"])]
        (write,) = writes
        assert {"glue:UpdateTable", "glue:CreateDatabase"} <= set(as_list(write["Action"]))
        resources = json.dumps(write["Resource"])
        assert ":database/blocklake_*" in resources or "database/" in resources
        assert "_*/*" in resources  # every tenant's tables, nothing else of the account's
        assert not any(a.startswith("glue:Delete") for a in all_actions(statements))


def test_athena_workgroup_enforces_its_result_location_and_scan_limit(template) -> None:
    (workgroup,) = properties(template, "AWS::Athena::WorkGroup")
    configuration = workgroup["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert 0 < configuration["BytesScannedCutoffPerQuery"] <= 100 * 1024**3
    location = json.dumps(configuration["ResultConfiguration"]["OutputLocation"])
    assert "/athena-results/" in location


def test_alarms_watch_errors_throttles_and_the_dead_letter_queue(template) -> None:
    alarms = properties(template, "AWS::CloudWatch::Alarm")
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms}
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in watched
    for folder in ("ingest", "etl", "query", "authorizer"):
        for metric in ("Errors", "Throttles"):
            assert any(
                a["MetricName"] == metric
                and a["Dimensions"]
                == [{"Name": "FunctionName", "Value": {"Ref": function_id(template, folder)}}]
                for a in alarms
            ), f"no {metric} alarm on {folder}"
    assert all(a["AlarmActions"] for a in alarms)


def test_outputs_name_what_a_user_needs(template) -> None:
    assert {
        "ApiUrl",
        "ApiKeysSecretArn",
        "BucketName",
        "GlueDatabase",
        "AthenaWorkgroup",
        "ClusterArn",
        "DatabaseSecretArn",
        "CreateApiKey",
        "SmokeTest",
    } <= set(template["Outputs"])
    command = json.dumps(template["Outputs"]["CreateApiKey"]["Value"])
    assert "blocklake api-key --secret-arn " in command and "--tenant <tenant>" in command


def test_migrations_rerun_when_a_migration_file_changes(template) -> None:
    (migrations,) = properties(template, "Custom::BlocklakeSchemaMigrations")
    assert migrations["MigrationsHash"] == migrations_hash()
    assert migrations["Database"] == "blocklake"
    assert {"ClusterArn", "SecretArn"} <= set(migrations)


def star_grants(template: dict) -> list[tuple[str, str]]:
    """(policy, action) for every action allowed on Resource "*" that could be scoped."""
    return [
        (policy_id, action)
        for policy_id, policy in resources(template, "AWS::IAM::Policy").items()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow" and "*" in as_list(statement["Resource"])
        for action in as_list(statement["Action"])
        if action not in ACTIONS_THAT_ONLY_ACCEPT_STAR
    ]


def test_no_policy_grants_an_action_on_every_resource(template) -> None:
    assert star_grants(template) == []


def test_the_star_check_catches_a_widened_policy(template) -> None:
    widened = copy.deepcopy(template)
    policy = next(iter(resources(widened, "AWS::IAM::Policy").values()))
    policy["Properties"]["PolicyDocument"]["Statement"][0]["Resource"] = "*"
    assert star_grants(widened) != []


def test_ingest_only_writes_raw_blocks_and_attachments_and_uses_the_data_api(template) -> None:
    statements = role_statements(template, "ingest")
    assert object_grants(statements) == {
        "raw/*": {"s3:PutObject"},
        # declarations written and read back; presigned PUTs of the bytes carry this role's
        "attachments/*": {"s3:PutObject", "s3:GetObject"},
        # the type of each field of the tenants' own event types, written once, read back
        "user-types/*": {"s3:PutObject", "s3:GetObject"},
    }
    s3 = {"s3:PutObject", "s3:GetObject", "s3:ListBucket"}
    assert all_actions(statements) - s3 == DATA_API | LOGS | XRAY


def test_etl_reads_raw_writes_tables_consumes_the_queue(template) -> None:
    statements = role_statements(template, "etl")
    writes = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert object_grants(statements) == {
        "raw/*": {"s3:GetObject"},
        "staging/*": writes,
        "lake/*": writes,
        "tables/*": writes,
    }
    sqs = {a for a in all_actions(statements) if a.startswith("sqs:")}
    assert sqs == {
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }
    others = (
        all_actions(statements)
        - sqs
        - {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}
    )
    glue = {a for a in others if a.startswith("glue:")}
    assert others - glue == DATA_API | LOGS | XRAY


def test_query_reads_tables_runs_athena_and_invokes_only_the_etl(template) -> None:
    statements = role_statements(template, "query")
    grants = object_grants(statements)
    assert grants["tables/*"] == {"s3:GetObject"}
    assert grants["usage/*"] == {"s3:PutObject"}  # the daily budgets' ledger
    assert grants["attachments/*"] == {"s3:GetObject"}  # downloads: presigned GETs
    assert set(grants) == {"tables/*", "athena-results/*", "usage/*", "attachments/*"}
    assert not any(
        a.startswith(("s3:Delete", "glue:Create", "glue:Update", "glue:Delete"))
        for a in all_actions(statements)
    )
    (invoke,) = [s for s in statements if s["Action"] == "lambda:InvokeFunction"]
    assert invoke["Resource"] == {"Fn::GetAtt": [function_id(template, "etl"), "Arn"]}
    assert all_actions(statements) >= DATA_API
    assert {"athena:StartQueryExecution", "glue:GetTable"} <= all_actions(statements)


DATA_API = {
    "rds-data:BatchExecuteStatement",
    "rds-data:BeginTransaction",
    "rds-data:CommitTransaction",
    "rds-data:ExecuteStatement",
    "rds-data:RollbackTransaction",
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
}
LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_queries_read_s3_through_a_tenant_reader_role(template) -> None:
    """The query function assumes the reader role (and nothing else) for each tenant; the role
    reads tables only, and its ARN reaches the function's environment."""
    query = template["Resources"][function_id(template, "query")]
    reader_ref = query["Properties"]["Environment"]["Variables"]["BLOCKLAKE_QUERY_READER_ROLE_ARN"]
    (reader_id,) = reader_ref["Fn::GetAtt"][:1]
    reader = template["Resources"][reader_id]
    (trust,) = reader["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    query_role = query["Properties"]["Role"]["Fn::GetAtt"][0]
    assert trust["Principal"] == {"AWS": {"Fn::GetAtt": [query_role, "Arn"]}}
    assert reader["Properties"]["MaxSessionDuration"] == 3600
    reader_statements = [
        statement
        for policy in properties(template, "AWS::IAM::Policy")
        if {"Ref": reader_id} in policy["Roles"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    assert object_grants(reader_statements) == {"tables/*": {"s3:GetObject"}}
    assert all_actions(reader_statements) == {"s3:GetObject", "s3:ListBucket"}
    (assume,) = [s for s in role_statements(template, "query") if s["Action"] == "sts:AssumeRole"]
    assert assume["Resource"] == {"Fn::GetAtt": [reader_id, "Arn"]}
