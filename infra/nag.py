"""cdk-nag's AwsSolutions rules, and acknowledgments that each carry their reason in code."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def check_app(app: IConstruct) -> None:
    """Synthesis fails on any AwsSolutions error not acknowledged below it."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """``rule`` may name one finding, e.g. ``AwsSolutions-IAM5[Resource::<Bucket.Arn>/raw/*]``."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical ID of an L2 construct's resource, as cdk-nag names it in
    findings such as ``Resource::<LogicalId.Arn>/raw/*``."""
    return Stack.of(construct).resolve(
        Stack.of(construct).get_logical_id(construct.node.default_child)
    )
