"""`wildactor train`: fine-tune the reference LoRA with rectified flow, on accelerate.

One file a part: `config` (dataclasses; YAML maps 1:1 onto them), `data` (manifest checked before anything
else), `models` (a diffusers Wan folder or an inline tiny config; the precision policy), `loss` (encode, noise,
predict the velocity, weighted MSE), `checkpoint` (atomic step folders), `memory` (a per-GPU estimate), and
`loop`, which reads top to bottom: data -> models -> optimizer -> resume -> steps -> checkpoints.

    wildactor train --config configs/tiny.yaml [--resume] [--max-steps N] [--output-dir DIR]
    accelerate launch --config_file configs/accelerate/ddp.yaml -m wildactor.cli train --config ...
    torchrun --nproc_per_node 2 -m wildactor.cli train --config ...      (CPU: gloo)
    wildactor train --config ... --estimate-memory [--num-processes N]   (per-GPU memory; no weights needed)

Determinism: the p-th sample of the run, its frame window, its reference draw, its noise and its timestep are
functions of (seed, p) only, so `--resume` continues bitwise (CPU) and N processes with micro-batch b see the
same global batch as one process with micro-batch N*b.
"""

from wildactor.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from wildactor.train.cli import add_arguments, main
from wildactor.train.config import (
    CheckpointConfig,
    DataConfig,
    EMAConfig,
    LoggingConfig,
    ModelConfig,
    OptimizerConfig,
    PrecisionConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    TrainResult,
)
from wildactor.train.data import build_dataset, check_sampler_coverage, load_records
from wildactor.train.loop import train
from wildactor.train.loss import evaluation_loss, flow_matching_loss, learning_rate
from wildactor.train.memory import MemoryEstimate, estimate_memory, format_estimate
from wildactor.train.models import build_models, save_inline_model

__all__ = [
    "CheckpointConfig",
    "DataConfig",
    "EMAConfig",
    "LoggingConfig",
    "MemoryEstimate",
    "ModelConfig",
    "OptimizerConfig",
    "PrecisionConfig",
    "SamplerConfig",
    "ScheduleConfig",
    "TrainConfig",
    "TrainResult",
    "add_arguments",
    "build_dataset",
    "build_models",
    "check_sampler_coverage",
    "estimate_memory",
    "evaluation_loss",
    "flow_matching_loss",
    "format_estimate",
    "latest_checkpoint",
    "learning_rate",
    "load_checkpoint",
    "load_records",
    "main",
    "save_checkpoint",
    "save_inline_model",
    "train",
]
