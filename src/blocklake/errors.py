"""Errors a client caused, with the HTTP status and a machine-readable code to answer it with."""

from __future__ import annotations


class ClientError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        """HTTP headers of the answer (``Retry-After`` of a 429)."""

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}
