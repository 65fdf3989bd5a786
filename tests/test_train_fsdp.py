"""The trainer under accelerate's FSDP configs (FSDP1 and FSDP2), 2 processes over gloo on a CPU, with references:
the same losses and LoRA as one process with the same global batch, and checkpoints that move both ways between
a sharded and an unsharded run. Slow (several process launches): `python -m pytest -m slow tests/test_train_fsdp.py`."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from wildactor.train import LoggingConfig, TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(accelerate_config: str, config: Path, out: Path, max_steps: int, resume: bool = False) -> None:
    # Not accelerate's --cpu (that runs FSDP as one plain process); the trainer's --cpu keeps each of the two
    # processes on the CPU (gloo). sync_module_states is a GPU-only broadcast; every rank seeds the same weights.
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / accelerate_config),
        "--num_processes", "2", "--mixed_precision", "no", "--fsdp_sync_module_states", "false",
        "--main_process_port", str(_free_port()),
        "-m", "wildactor.cli", "train", "--config", str(config), "--output-dir", str(out),
        "--max-steps", str(max_steps), "--no-progress", "--cpu",
    ] + (["--resume"] if resume else [])  # fmt: skip
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads(
        sorted((out / "checkpoints").glob("step-*"))[-1].joinpath("trainer_state.json").read_text()
    )
    assert state["global_batch"] == 2  # two processes of micro-batch 1 really ran


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def _assert_same_lora(a: Path, b: Path) -> None:
    x, y = load_file(str(a / "reference_lora.safetensors")), load_file(str(b / "reference_lora.safetensors"))
    assert x.keys() == y.keys()
    for key in x:
        torch.testing.assert_close(x[key], y[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.slow
@pytest.mark.parametrize(
    "accelerate_config", ["configs/accelerate/fsdp.yaml", "configs/accelerate/fsdp2.yaml"]
)
def test_fsdp_training_equals_one_process_and_checkpoints_cross_over(tmp_path, accelerate_config):
    raw = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    raw["data"]["batch_size"] = 1
    raw["schedule"]["max_steps"] = 3
    raw["checkpointing"]["every_steps"] = 1
    raw["checkpointing"]["keep_last"] = 5
    raw["logging"]["tensorboard"] = False
    config = tmp_path / "b1.yaml"
    config.write_text(yaml.safe_dump(raw))
    cfg = TrainConfig.from_dict(raw)
    cfg = dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, batch_size=2), logging=LoggingConfig(tensorboard=False)
    )
    one = train(cfg, max_steps=3, output_dir=tmp_path / "one", show_progress=False, cpu=True)

    # Sharded, 2 steps: the same losses and LoRA as one process with batch 2.
    _launch(accelerate_config, config, tmp_path / "fsdp", max_steps=2)
    torch.testing.assert_close(torch.tensor(_losses(tmp_path / "fsdp")), torch.tensor(one.losses[:2]),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    ckpt = tmp_path / "fsdp" / "checkpoints" / "step-00000002"
    _assert_same_lora(ckpt, tmp_path / "one" / "checkpoints" / "step-00000002")

    # Sharded checkpoint -> unsharded run: resume one process to step 3.
    shutil.copytree(tmp_path / "fsdp", tmp_path / "to_one")
    resumed = train(
        cfg, resume=True, max_steps=3, output_dir=tmp_path / "to_one", show_progress=False, cpu=True
    )
    torch.testing.assert_close(resumed.losses[0], one.losses[2], rtol=1e-5, atol=1e-6)
    _assert_same_lora(resumed.checkpoint, one.checkpoint)

    # Unsharded checkpoint -> sharded run: resume the one-process step-2 checkpoint under FSDP to step 3.
    start = tmp_path / "to_fsdp"
    shutil.copytree(tmp_path / "one", start, ignore=shutil.ignore_patterns("step-00000003"))
    _launch(accelerate_config, config, start, max_steps=3, resume=True)
    torch.testing.assert_close(_losses(start)[-1], one.losses[2], rtol=1e-5, atol=1e-6)
    _assert_same_lora(start / "checkpoints" / "step-00000003", one.checkpoint)
