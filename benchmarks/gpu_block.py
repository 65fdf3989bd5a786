"""The 5B-width WildActor transformer (random weights, a few layers) in bf16 on a CUDA GPU: forward time, training
step time and peak memory with and without references, and the reference overhead ratios.

  video      : forward, text only (stock Wan's cost)
  refs_cached: forward with the references' K/V from `encode_references` (one denoising branch at inference)
  encode     : the reference stream alone (`encode_references`, once per generation)
  train      : forward + backward with references in every block call (a training micro-step, LoRA trainable)
  train_video: the same without references (the base cost a training step adds references to)

Runs are interleaved and the median kept; peak memory is `torch.cuda.max_memory_allocated` per variant.

    python benchmarks/gpu_block.py --layers 4 --out benchmarks/results/gpu_block_h200.json       # CUDA
    python benchmarks/gpu_block.py --device cpu --tiny                                           # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from common import machine_info
from wildactor.model import WildActorTransformer3DModel
from wildactor.precision import cast_frozen

WIDTH_5B = dict(num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48, text_dim=4096,
                freq_dim=256, ffn_dim=14336, lora_rank=128)  # fmt: skip
TINY = dict(num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4, text_dim=16, freq_dim=16,
            ffn_dim=32, lora_rank=4)  # fmt: skip
KINDS = ("face", "face", "face", "body", "body", "body")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(device: torch.device, layers: int, tiny: bool, latent: tuple[int, int, int], repeats: int) -> dict:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    arch = TINY if tiny else WIDTH_5B
    torch.manual_seed(0)
    model = WildActorTransformer3DModel(**arch, num_layers=layers)
    cast_frozen(model, device, dtype)  # the trainer's precision policy: fp32 islands stay fp32
    model.enable_reference_training()
    for p in model.reference_lora_parameters():  # trainable weights in fp32, as the trainer keeps them
        p.data = p.data.float()
    channels, text_dim = arch["in_channels"], arch["text_dim"]
    x = torch.randn(1, channels, *latent, device=device, dtype=dtype)
    t = torch.tensor([500.0], device=device)
    text = torch.randn(1, 512, text_dim, device=device, dtype=dtype)
    refs = torch.randn(
        1, channels, len(KINDS), *latent[1:], device=device, dtype=dtype
    )  # video-size references
    with torch.no_grad():
        cache = model.encode_references(refs, KINDS, latent)

    def video():
        with torch.no_grad():
            model(x, t, text)

    def refs_cached():
        with torch.no_grad():
            model(x, t, text, reference_cache=cache)

    def encode():
        with torch.no_grad():
            model.encode_references(refs, KINDS, latent)

    def train():
        model(
            x, t, text, reference_latents=refs, reference_types=KINDS
        ).sample.float().square().mean().backward()
        model.zero_grad(set_to_none=True)

    def train_video():  # the LoRA gets no gradient without references: measure the base's backward via the input
        xg = x.detach().requires_grad_(True)
        model(xg, t, text).sample.float().square().mean().backward()

    variants = {"video": video, "refs_cached": refs_cached, "encode": encode, "train": train,
                "train_video": train_video}  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in variants}
    peaks: dict[str, int] = {}
    for fn in variants.values():  # warm-up (kernels, allocator)
        fn()
    for _ in range(repeats):
        for key, fn in variants.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[key].append((time.perf_counter() - t0) * 1e3)
            if device.type == "cuda":
                peaks[key] = max(peaks.get(key, 0), torch.cuda.max_memory_allocated())
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "layers": layers,
        "latent": list(latent),
        "video_tokens": latent[0] * latent[1] * latent[2] // 4,
        "reference_tokens": len(KINDS) * latent[1] * latent[2] // 4,
        "dtype": str(dtype).removeprefix("torch."),
        "median_ms": {k: round(v, 3) for k, v in med.items()},
        "peak_memory_GiB": {k: round(v / 2**30, 3) for k, v in peaks.items()} or "n/a: not a CUDA device",
        "ratio_refs_cached_over_video": round(med["refs_cached"] / med["video"], 3),
        "ratio_train_over_train_video": round(med["train"] / med["train_video"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny width instead of the 5B width (smoke test)"
    )
    parser.add_argument("--latent", default="21x30x52", help="F x H x W latent (default: 480p, 81 frames)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "n/a: no CUDA device here; run on a GPU machine (or --device cpu --tiny to smoke-test)"
        )
    latent = tuple(int(v) for v in args.latent.lower().split("x"))
    report = {
        "machine": machine_info(),
        "command": "python benchmarks/gpu_block.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)),
        "results": run(device, args.layers, args.tiny, latent, args.repeats),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
