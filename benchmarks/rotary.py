"""Rotary tables per forward: rebuilt every call (the earlier behaviour) vs cached per layout (IRoPE), with stock
Wan's `WanRotaryPosEmbed` beside them, at Wan2.2-TI2V-5B token grids with 6 video-size references.

  rebuild : video + reference tables computed from coordinates in float64 on every forward
  cached  : `IRoPE` lookups after the first call (what every denoising step after the first costs)
  stock   : diffusers' `WanRotaryPosEmbed.forward` (video tokens only; it has no reference tokens)

Runs are interleaved and the median kept. On a GPU the rebuild also paid a host-to-device copy of the tables
per step; the cached tables are built on the target device once.

    python benchmarks/rotary.py --out benchmarks/results/rotary_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

from common import machine_info
from wildactor.model.irope import (
    IRoPE,
    IRoPEConfig,
    reference_coordinates,
    rotary_tables,
    video_coordinates,
)

# name -> latent (F, H, W) of Wan2.2-TI2V-5B (VAE 4x temporal, 16x spatial; 48 channels; patch 1x2x2)
GRIDS = {"480p_81f": (21, 30, 52), "720p_121f": (31, 44, 80)}
KINDS = ("face", "face", "face", "body", "body", "body")
HEAD_DIM = 128


def _variants(latent: tuple, grid: tuple, ref_h: int, ref_w: int) -> dict:
    x = torch.zeros(1, 1, *latent)  # only the shape is read
    rope = IRoPE(HEAD_DIM, (1, 2, 2), IRoPEConfig())
    stock = WanRotaryPosEmbed(HEAD_DIM, (1, 2, 2), 1024)

    def rebuild():
        rotary_tables(video_coordinates(*grid), HEAD_DIM)
        rotary_tables(reference_coordinates(*grid, KINDS, ref_h, ref_w, IRoPEConfig()), HEAD_DIM)

    def cached():
        rope(x)
        rope.reference(latent, KINDS, ref_h, ref_w, x.device)

    cached()  # the first call builds (once per generation)
    return {"rebuild": rebuild, "cached": cached, "stock": lambda: stock(x)}


def run(repeats: int) -> dict:
    results = {}
    for name, latent in GRIDS.items():
        grid = (latent[0], latent[1] // 2, latent[2] // 2)
        ref_h, ref_w = grid[1], grid[2]  # video-size references
        variants = _variants(latent, grid, ref_h, ref_w)
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(repeats):
            for key, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[key].append((time.perf_counter() - t0) * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        tokens = grid[0] * grid[1] * grid[2]
        results[name] = {
            "latent": list(latent),
            "video_tokens": tokens,
            "reference_tokens": len(KINDS) * ref_h * ref_w,
            "median_ms": {k: round(v, 4) for k, v in med.items()},
            "rebuild_over_cached": round(med["rebuild"] / med["cached"], 1),
            "table_bytes_per_step_avoided": 2 * 4 * HEAD_DIM * (tokens + len(KINDS) * ref_h * ref_w),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = {
        "machine": machine_info(1),
        "command": "python benchmarks/rotary.py --out benchmarks/results/rotary_cpu.json",
        "results": run(args.repeats),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
