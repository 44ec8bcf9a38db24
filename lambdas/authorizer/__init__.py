"""API Gateway HTTP API Lambda authorizer: API key to tenant."""
