"""`wildactor train` on the command line."""

from __future__ import annotations

import argparse
import os

from wildactor.errors import WildActorError
from wildactor.train.config import TrainConfig
from wildactor.train.loop import train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML training config (see configs/)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in the output dir"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="override schedule.max_steps")
    parser.add_argument("--output-dir", default=None, help="override output_dir")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set sampler.kind=random (repeatable; VALUE is YAML)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even where CUDA is available")
    parser.add_argument(
        "--estimate-memory",
        action="store_true",
        help="print the per-GPU memory of this config (weights, optimizer, activations) and exit; no weights needed",
    )
    parser.add_argument(
        "--num-processes",
        type=int,
        default=None,
        help="processes (GPUs) for --estimate-memory's DDP/FSDP rows (default: WORLD_SIZE, else 1)",
    )


def main(args: argparse.Namespace) -> int:
    cfg = TrainConfig.from_yaml(args.config, args.set)
    if args.estimate_memory:
        from wildactor.train.memory import estimate_memory, format_estimate

        n = args.num_processes or int(os.environ.get("WORLD_SIZE", "1"))
        print(format_estimate(estimate_memory(cfg, num_processes=n)))
        return 0
    if args.num_processes is not None:
        raise WildActorError("--num-processes is for --estimate-memory (a launch sets the process count)")
    if args.max_steps is not None and args.max_steps < 1:
        raise WildActorError("--max-steps must be >= 1")
    result = train(cfg, resume=args.resume, max_steps=args.max_steps, output_dir=args.output_dir,
                   show_progress=not args.no_progress, cpu=args.cpu)  # fmt: skip
    if int(os.environ.get("RANK", "0")) != 0:  # one summary per launch, from the main process
        return 0
    if result.losses:
        print(
            f"steps {result.start_step}->{result.final_step}: loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}"
        )
    if result.checkpoint is not None:
        print(f"checkpoint: {result.checkpoint}")
    return 0
