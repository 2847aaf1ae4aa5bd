"""Shared fixtures. Tests never reach the network: the hub is switched off here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixture_repo() -> Path:
    """A small repository with files in every supported language and every filter's case."""
    return FIXTURES / "multilang_repo"
