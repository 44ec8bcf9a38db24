"""The local server (``blocklake serve``): HTTP requests and stored blocks become the same events
AWS would send (API Gateway HTTP API v2, S3 notifications inside SQS), handled by the same
Lambda handlers, on the embedded defaults (a data directory and SQLite)."""
