"""The training run, top to bottom: data, models, optimizer, resume, the loop, checkpoints."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError
from wildactor.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    snapshot_training_state,
)
from wildactor.train.config import TrainConfig, TrainResult
from wildactor.train.data import build_dataset, check_sampler_coverage, load_records
from wildactor.train.loss import flow_matching_loss, learning_rate
from wildactor.train.models import build_models, save_inline_model


def train(
    cfg: TrainConfig,
    resume: bool = False,
    max_steps: int | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    show_progress: bool = True,
    cpu: bool = False,
) -> TrainResult:
    """Run (or continue) training up to ``max_steps`` optimizer steps; returns the loss trace of this call.

    Runs on CUDA when available unless ``cpu`` (bitwise reproducibility is a CPU property)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, set_seed
    from tqdm.auto import tqdm

    from wildactor.precision import VAE_DTYPE, cast_frozen

    out = Path(output_dir or cfg.output_dir)
    max_steps = max_steps or cfg.schedule.max_steps
    sc, oc = cfg.schedule, cfg.optimizer
    if max_steps > sc.max_steps and sc.decay_steps:
        raise WildActorError(
            f"--max-steps {max_steps} runs past schedule.max_steps {sc.max_steps}, where the learning rate has "
            f"decayed to 0; to train further, stretch the schedule: --set schedule.max_steps={max_steps}"
        )
    accelerator = Accelerator(
        cpu=cpu or not torch.cuda.is_available(),
        mixed_precision=cfg.precision.mixed_precision,
        log_with="tensorboard" if cfg.logging.tensorboard else None,
        project_dir=str(out),
    )
    device = accelerator.device
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)

    if accelerator.is_main_process:  # leftovers of a save that was interrupted
        for stale in list(out.glob("checkpoints/.tmp-step-*")) + list(out.glob("checkpoints/.old-step-*")):
            shutil.rmtree(stale, ignore_errors=True)
    if not resume and latest_checkpoint(out) is not None:
        raise WildActorError(f"{out} already holds checkpoints: pass --resume, or pick another --output-dir")

    # 1. data first: a bad manifest stops the run before any weight is loaded (the main process checks files)
    if accelerator.is_main_process:
        manifest, records = load_records(cfg, out)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        manifest, records = load_records(cfg, out, check_files=False)
    check_sampler_coverage(cfg, records)

    # 2. models: the frozen transformer and text encoder in frozen_dtype (fp32 islands kept, as diffusers loads
    #    them), the VAE in fp32 as the pipeline runs it, trainable weights in fp32
    set_seed(cfg.seed)
    transformer, encoder, encoder_id = build_models(cfg, out)
    if cfg.model.pretrained is None and accelerator.is_main_process:
        save_inline_model(out, transformer, encoder, cfg.schedule)
    frozen_dtype = getattr(torch, cfg.precision.frozen_dtype)
    for module in (encoder.text_encoder, transformer):
        cast_frozen(module, device, frozen_dtype)
    cast_frozen(encoder.vae, device, VAE_DTYPE)
    if oc.trainable == "lora":
        transformer.enable_reference_training()
    else:
        transformer.requires_grad_(True)
    if cfg.model.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    named = [(n, p) for n, p in transformer.named_parameters() if p.requires_grad]
    for _, p in named:
        p.data = p.data.float()
    trainable_names, trainable = [n for n, _ in named], [p for _, p in named]

    dataset = build_dataset(cfg, manifest, records, encoder, encoder_id, accelerator, show_progress)
    null_text = encoder.encode_text([""]).cpu() if cfg.schedule.text_dropout > 0 else None  # (1, L, D)
    if cfg.data.cache_dir is not None:  # training reads cached latents: free the encoders' device memory
        encoder.to(device="cpu")

    # 3. optimizer, EMA, and the state to resume from
    optimizer = torch.optim.AdamW(
        trainable, lr=oc.lr, betas=oc.betas, eps=oc.eps, weight_decay=oc.weight_decay
    )
    ema = [p.detach().clone() for p in trainable] if cfg.ema.decay is not None else None
    start_step = 0
    if resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            raise WildActorError(f"--resume: no checkpoint in {out / 'checkpoints'}")
        saved = load_checkpoint(ckpt, transformer, optimizer, ema, trainable_names)
        start_step = int(saved["step"])
        if (
            saved.get("global_batch")
            != cfg.data.batch_size * sc.gradient_accumulation_steps * accelerator.num_processes
        ):
            accelerator.print(
                "warning: the global batch differs from the checkpoint's; the data order changes"
            )
    if start_step >= max_steps:
        accelerator.print(f"already at step {start_step} >= max_steps {max_steps}; nothing to do")
        return TrainResult([], start_step, start_step, out, latest_checkpoint(out))

    metrics_path = out / "metrics.jsonl"
    if accelerator.is_main_process and metrics_path.is_file():  # drop steps logged after the checkpoint
        rows = [
            line for line in metrics_path.read_text().splitlines() if json.loads(line)["step"] <= start_step
        ]
        metrics_path.write_text("".join(row + "\n" for row in rows))

    model, optimizer = accelerator.prepare(transformer, optimizer)
    fsdp = accelerator.distributed_type == DistributedType.FSDP

    # 4. the data stream, from the resume point
    from wildactor.data.dataset import PositionSampler, collate

    positions = PositionSampler(
        cfg.data.batch_size, sc.gradient_accumulation_steps, accelerator.num_processes,
        accelerator.process_index, start_step, max_steps,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.data.batch_size, sampler=positions, collate_fn=collate,
        num_workers=cfg.data.num_workers, persistent_workers=False,
    )  # fmt: skip
    batches: Iterator[dict[str, Any]] = iter(loader)

    if cfg.logging.tensorboard:
        accelerator.init_trackers("wildactor-train", config={"seed": cfg.seed, "max_steps": max_steps})
    global_batch = cfg.data.batch_size * sc.gradient_accumulation_steps * accelerator.num_processes
    state = {
        "seed": cfg.seed,
        "trainable": oc.trainable,
        "global_batch": global_batch,
        "config": cfg.to_dict(),
        "base_model": cfg.model.pretrained,
    }
    losses: list[float] = []
    checkpoint = None
    bar = tqdm(range(start_step, max_steps), initial=start_step, total=max_steps, desc="train",
               disable=not (show_progress and accelerator.is_main_process))  # fmt: skip

    # 5. the loop: accumulate micro-batches, clip, warm-up LR, step, EMA, log, checkpoint
    for step in bar:
        t0 = time.perf_counter()
        step_loss = torch.zeros((), device=device)
        for micro in range(sc.gradient_accumulation_steps):
            batch = next(batches)
            sync = micro == sc.gradient_accumulation_steps - 1
            with accelerator.no_sync(model) if not sync else contextlib.nullcontext():
                loss = flow_matching_loss(model, encoder, batch, cfg, device, null_text)
                accelerator.backward(loss / sc.gradient_accumulation_steps)
            step_loss += loss.detach() / sc.gradient_accumulation_steps
        if oc.max_grad_norm is not None:
            accelerator.clip_grad_norm_(trainable, oc.max_grad_norm)
        lr = learning_rate(step, oc.lr, sc)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in trainable], 1.0 - cfg.ema.decay)

        mean_loss = accelerator.reduce(step_loss, reduction="mean").item()
        if not math.isfinite(mean_loss):
            raise WildActorError(
                f"loss is {mean_loss} at step {step + 1}; lower optimizer.lr or check the data"
            )
        losses.append(mean_loss)
        done = step + 1
        if accelerator.is_main_process:
            bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
            with metrics_path.open("a") as f:
                f.write(
                    json.dumps(
                        {"step": done, "loss": mean_loss, "lr": lr, "step_s": time.perf_counter() - t0}
                    )
                    + "\n"
                )
        if cfg.logging.tensorboard and (done % cfg.logging.every_steps == 0 or done == max_steps):
            step_s = time.perf_counter() - t0
            accelerator.log(
                {"train/loss": mean_loss, "train/lr": lr, "train/samples_per_s": global_batch / step_s},
                step=done,
            )
        if done % cfg.checkpointing.every_steps == 0 or done == max_steps:
            snapshot = snapshot_training_state(model, optimizer, fsdp, oc.trainable)  # collective under FSDP
            if accelerator.is_main_process:
                checkpoint = save_checkpoint(
                    out, done, accelerator.unwrap_model(model), snapshot, ema, trainable_names, state,
                    cfg.checkpointing.keep_last,
                )  # fmt: skip
            accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(losses, start_step, max_steps, out, checkpoint, accelerator.unwrap_model(model))
