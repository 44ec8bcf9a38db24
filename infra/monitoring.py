"""Alarms on what needs a person: failing or throttled functions, and blocks the ETL gave up on."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge

PERIOD = Duration.minutes(5)


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        dead_letters: sqs.IQueue,
        email: str | None,
    ) -> None:
        super().__init__(scope, id)
        self.topic = sns.Topic(self, "Topic", display_name="blocklake alarms", enforce_ssl=True)
        acknowledge(
            self.topic,
            "AwsSolutions-SNS2",
            "Alarm notifications carry alarm names and states only; encrypting them would need "
            "a customer managed KMS key (a monthly fee) for CloudWatch to publish.",
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        action = actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []
        for name, function in functions.items():
            for metric_name, metric in (
                ("Errors", function.metric_errors(period=PERIOD)),
                ("Throttles", function.metric_throttles(period=PERIOD)),
            ):
                self._alarm(
                    f"{name}{metric_name}", f"blocklake {name} λ {metric_name}", metric, action
                )
        self._alarm(
            "DeadLetters",
            "blocklake: raw blocks the ETL could not convert are waiting in the dead-letter queue",
            dead_letters.metric_approximate_number_of_messages_visible(period=PERIOD),
            action,
        )

    def _alarm(
        self, id: str, description: str, metric: cloudwatch.IMetric, action: actions.SnsAction
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            id,
            alarm_description=description,
            metric=metric,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(action)
        self.alarms.append(alarm)
