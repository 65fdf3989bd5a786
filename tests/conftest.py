"""Shared fixtures: tiny random configurations of the real classes; nothing touches a hub."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def tiny_transformer_config() -> dict:
    """The base Wan arguments of a tiny random transformer (2 layers, 2 heads of 12), without the LoRA rank."""
    from wildactor.default_model import TINY_TRANSFORMER_CONFIG

    return {k: v for k, v in TINY_TRANSFORMER_CONFIG.items() if k != "lora_rank"}


@pytest.fixture(scope="session")
def import_benchmark():
    """Import a script of benchmarks/ by module name (its folder on sys.path only while importing)."""
    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")

    def load(name: str):
        sys.path.insert(0, folder)
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(folder)

    return load
