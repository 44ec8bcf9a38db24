"""Raw block notifications to the ETL, through a queue with a dead-letter queue, and the
schedules: the committer's (commits every minute, compaction hourly) and the ETL's
reconciliation."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge

MAX_RECEIVES = 5
"""Attempts before a notification goes to the dead-letter queue: enough to ride out a paused
database resuming, few enough that a block that cannot be converted stops costing."""

COMMITTER_TASKS = {
    # Each run commits what conversions staged every few seconds for 50 s
    # (lambdas/etl/handler.py): rows reach Athena and DuckDB within seconds. The run five
    # minutes past each hour compacts the hour that closed first, expires snapshots and
    # removes orphans: one writer, one loop.
    "Commits": ("rate(1 minute)", {"action": "commit"}),
}
"""EventBridge rule, and the event the committer receives for it."""
ETL_TASKS = {
    # Completes blocks left unconverted (a lost notification, a conversion that failed).
    "Reconciliation": ("cron(35 * * * ? *)", {"action": "reconcile"}),
}
"""EventBridge rule, and the event the ETL handler receives for it."""


class EtlPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        etl: lambda_.IFunction,
        committer: lambda_.IFunction,
        etl_timeout: Duration,
    ) -> None:
        super().__init__(scope, id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This is the dead-letter queue of the raw-block queue; it has none of its own.",
        )
        self.queue = sqs.Queue(
            self,
            "RawBlocks",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # Six times the function timeout, as Lambda advises for SQS event sources.
            visibility_timeout=Duration.seconds(6 * etl_timeout.to_seconds()),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVES, queue=self.dead_letters
            ),
        )
        etl.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=10,
                max_batching_window=Duration.seconds(5),
                report_batch_item_failures=True,
                # Bounds parallel conversions without reserving account concurrency for it.
                max_concurrency=5,
            )
        )
        for function, tasks in ((etl, ETL_TASKS), (committer, COMMITTER_TASKS)):
            for name, (expression, task) in tasks.items():
                events.Rule(
                    self,
                    name,
                    schedule=events.Schedule.expression(expression),
                    targets=[
                        targets.LambdaFunction(
                            function,
                            event=events.RuleTargetInput.from_object(task),
                            retry_attempts=2,
                        )
                    ],
                )
