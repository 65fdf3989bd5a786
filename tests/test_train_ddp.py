"""Two processes (gloo, CPU) with micro-batch 1 make the same updates as one process with batch 2."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from wildactor.train import LoggingConfig, TrainConfig, train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"]["batch_size"] = 1
    raw["schedule"]["max_steps"] = 3
    raw["logging"]["tensorboard"] = False
    config = tmp_path / "b1.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
        "-m", "wildactor.cli", "train", "--config", str(config), "--output-dir", str(tmp_path / "two"), "--no-progress", "--cpu",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    cfg = TrainConfig.from_dict(raw)
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, batch_size=2),
        schedule=dataclasses.replace(cfg.schedule, max_steps=3),
        logging=LoggingConfig(tensorboard=False),
    )
    one = train(cfg, output_dir=tmp_path / "one", show_progress=False, cpu=True)

    two_losses = [
        json.loads(line)["loss"] for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    ]
    assert len(two_losses) == 3
    assert torch.allclose(torch.tensor(two_losses), torch.tensor(one.losses), rtol=1e-5, atol=1e-6)
    a = load_file(str(tmp_path / "two" / "checkpoints" / "step-00000003" / "reference_lora.safetensors"))
    b = load_file(str(one.checkpoint / "reference_lora.safetensors"))
    assert a.keys() == b.keys()
    moved = 0
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), key
        moved += int(".up." in key and a[key].abs().sum() > 0)  # up-projections start at zero
    assert moved > 0


@pytest.mark.gpu
def test_fsdp_checkpoints_hold_the_full_lora_and_optimizer_state(tmp_path):
    # accelerate's FSDP needs an accelerator device; one process still exercises wrapping and state gathering.
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"]["batch_size"] = 1
    raw["schedule"]["max_steps"] = 2
    raw["logging"]["tensorboard"] = False
    config = tmp_path / "fsdp.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {
        **os.environ,
        "ACCELERATE_USE_FSDP": "true",
        "FSDP_USE_ORIG_PARAMS": "true",
        "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
        "FSDP_TRANSFORMER_CLS_TO_WRAP": "WanTransformerBlock",
        "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
    }
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", str(_free_port()),
        "-m", "wildactor.cli", "train", "--config", str(config), "--output-dir", str(tmp_path / "fsdp"), "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / "fsdp" / "checkpoints" / "step-00000002"
    lora = load_file(str(ckpt / "reference_lora.safetensors"))
    optimizer = load_file(str(ckpt / "optimizer.safetensors"))
    assert any(".up." in k and v.abs().sum() > 0 for k, v in lora.items())
    assert {k.split("::")[0] for k in optimizer} <= set(lora)  # state keyed by the LoRA parameter names
