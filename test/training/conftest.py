"""Fixtures of the training tests: stand-ins for torchvision's pretrained weights files (standin_weights.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from standin_weights import Standins


@pytest.fixture(scope="session")
def standins(tmp_path_factory) -> Standins:
    return Standins(tmp_path_factory.mktemp("torch_home"))


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch) -> Path:
    """A torch hub cache with nothing in it: weights must come from model.pretrained_path."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    return tmp_path / "empty_torch_home"
