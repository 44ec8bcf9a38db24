"""CloudFormation custom resource that applies the metadata schema migrations on deploy."""
