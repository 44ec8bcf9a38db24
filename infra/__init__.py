"""The CDK app that deploys blocklake to one AWS account: one stack, one construct per concern.

Nothing here imports blocklake's runtime code except ``blocklake.format.schema`` (standard
library only), which turns ``schemas/tables.toml`` into the Glue tables.
"""
