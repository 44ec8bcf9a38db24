"""Fixtures shared by the handler, query, end-to-end and CLI tests (helpers: tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocklake.config import Settings
from blocklake.server.events import LambdaContext
from tests.helpers import KEYS


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext("blocklake-test")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "lake", api_keys=dict(KEYS), max_block_bytes=256 * 1024)
