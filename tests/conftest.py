"""Shared fixtures: tiny random configurations of the real classes; nothing touches a hub."""

from __future__ import annotations

import os

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
