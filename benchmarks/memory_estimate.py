"""`wildactor train --estimate-memory` against a measurement, and its numbers for configs/wan22-5b.yaml.

Measured (tiny config, this CPU): a fresh subprocess builds the tiny model at a larger frame size so that
activations dominate, feeds one cached-latent batch (6 references), and records its resident set size just
before one training step (forward, backward, AdamW step) and its peak (ru_maxrss) after it. The step's delta is
compared with what the estimate says the step adds: activations + gradients + AdamW state. CPU attention here is
PyTorch's fused flash kernel for CPU (O(S) saved), as the estimate assumes.

Computed (wan22-5b): the estimate only, at 8 processes, from a folder holding the Wan2.2-TI2V-5B transformer,
VAE and UMT5-XXL configs (no weights).

    PYTHONPATH=src python benchmarks/memory_estimate.py --out benchmarks/results/memory_estimate_tiny.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine_info
from generate import WAN22_5B_TRANSFORMER, WAN22_5B_VAE

ROOT = Path(__file__).resolve().parents[1]
# google/umt5-xxl's encoder (the text encoder of Wan2.2-TI2V-5B)
UMT5_XXL = dict(
    vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gelu",
    is_gated_act=True, dense_act_fn="gelu_new",
)  # fmt: skip
# glibc: every block >= 128 KiB its own mmap, returned on free (no dynamic threshold), so RSS follows live bytes
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
TINY_SETS = ["data.height=512", "data.width=512", "data.num_frames=17"]


def step_rss(config: str, sets: list[str]) -> dict:
    """In this (fresh) process: RSS before one training step and the peak during it, in bytes."""
    import gc

    import torch

    from wildactor.train.config import TrainConfig
    from wildactor.train.memory import latent_grid
    from wildactor.train.models import build_models

    cfg = TrainConfig.from_yaml(config, sets)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        transformer, encoder, _ = build_models(cfg, Path(tmp))
    transformer.enable_reference_training()
    if cfg.model.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    trainable = [p for p in transformer.parameters() if p.requires_grad]
    (f, h, w), (rh, rw) = latent_grid(cfg, transformer.config, cfg.model.vae)
    small = _batch(cfg, transformer.config, (f, 4, 4), (4, 4))
    big = _batch(cfg, transformer.config, (f, h, w), (rh, rw))
    del encoder
    # a warm-up step at a small size first: kernels, thread pools and libraries load outside the measured peak
    _step(transformer, torch.optim.AdamW(trainable, lr=1e-4), small, cfg)
    for p in trainable:
        p.grad = None
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    gc.collect()
    before = _rss()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    _step(transformer, optimizer, big, cfg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rss_before": before, "peak_before": peak_before, "peak": peak}


def _batch(cfg, tc, video: tuple[int, int, int], ref: tuple[int, int]) -> dict:
    """A cached-latent batch: video latents (B, C, F, H, W), 6 reference latents (B, C, R, h, w), text."""
    import torch

    b, c = cfg.data.batch_size, tc.in_channels
    kinds = ["face"] * cfg.sampler.num_face + ["body"] * cfg.sampler.num_body
    g = torch.Generator().manual_seed(0)
    return {
        "video_latents": torch.randn(b, c, *video, generator=g),
        "reference_latents": torch.randn(b, c, len(kinds), *ref, generator=g),
        "text_embeddings": torch.randn(b, cfg.model.max_text_length, tc.text_dim, generator=g),
        "position": torch.arange(b),
        "reference_types": kinds,
    }


def _step(transformer, optimizer, batch: dict, cfg) -> None:
    import torch

    from wildactor.train.loss import flow_matching_loss

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision.mixed_precision)
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):  # as accelerate's mixed precision
        loss = flow_matching_loss(transformer, None, batch, cfg, "cpu")
    loss.backward()
    optimizer.step()


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/memory_estimate_tiny.json"))
    parser.add_argument("--child", nargs="*", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(step_rss(str(ROOT / "configs/tiny.yaml"), args.child)))
        return

    from wildactor.train.config import TrainConfig
    from wildactor.train.memory import estimate_memory

    rows = []
    for ckpt, mixed in ((False, "no"), (True, "no"), (False, "bf16")):  # bf16: CPU autocast in the step
        sets = TINY_SETS + [
            f"model.gradient_checkpointing={str(ckpt).lower()}",
            f"precision.mixed_precision='{mixed}'",  # quoted: YAML reads a bare no as false
        ]
        est = estimate_memory(TrainConfig.from_yaml(ROOT / "configs/tiny.yaml", sets))
        acts = est.activations.with_checkpointing if ckpt else est.activations.without_checkpointing
        predicted = acts + est.gradient_bytes + est.optimizer_bytes
        runs = []
        for _ in range(3):  # fresh processes; the median is kept
            out = subprocess.run(
                [sys.executable, __file__, "--child", *sets], check=True, capture_output=True, text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **FIXED_MALLOC},
            ).stdout  # fmt: skip
            m = json.loads(out.strip().splitlines()[-1])
            runs.append(m["peak"] - max(m["rss_before"], m["peak_before"]))
        measured = sorted(runs)[1]
        rows.append({
            "gradient_checkpointing": ckpt,
            "mixed_precision": mixed,
            "tokens": vars(est.tokens),
            "estimate_step_bytes": predicted,
            "estimate_activations_bytes": acts,
            "measured_step_bytes_runs": runs,
            "measured_step_bytes_median": measured,
            "relative_error": round((predicted - measured) / measured, 4),
        })  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for sub, conf in (
            ("transformer", WAN22_5B_TRANSFORMER),
            ("vae", WAN22_5B_VAE),
            ("text_encoder", UMT5_XXL),
        ):
            (folder / sub).mkdir()
            (folder / sub / "config.json").write_text(json.dumps(conf))
        est = estimate_memory(
            TrainConfig.from_yaml(ROOT / "configs/wan22-5b.yaml", [f"model.pretrained={folder}"]),
            num_processes=8,
        )
        wan = est.to_dict()
        wan["source"] = "configs/wan22-5b.yaml with the Wan2.2-TI2V-5B configs (no weights)"

    result = {
        "what": "wildactor train --estimate-memory vs one measured CPU training step (tiny), and the computed "
        "estimate for configs/wan22-5b.yaml",
        "command": "PYTHONPATH=src python benchmarks/memory_estimate.py",
        "machine": machine_info(),
        "tiny_overrides": TINY_SETS,
        "measurement": "peak RSS (ru_maxrss) minus RSS just before one step (forward, backward, AdamW), fresh "
        "process each after a warm-up step at a small size, glibc mmap threshold fixed at 128 KiB, median of 3; "
        "compared with the estimate's activations + gradients + AdamW state",
        "tiny": rows,
        "wan22_5b_computed": wan,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
