"""Training throughput.

Two measurements:

  trainer : the real `wildactor train` loop on a config (data decoding, VAE + text encoding, forward, backward,
            AdamW, checkpoints): samples/s from the per-step wall times the trainer logs, warm-up steps dropped.
  step    : one transformer training step on synthetic latents (what a run from the latent cache does per
            step), for a model preset: step time, video tokens/s, MFU and peak memory. Meant for the
            Wan2.2-TI2V-5B preset on a CUDA GPU; on a machine without one it records "n/a".

MFU counts 2 x the forward matmul FLOPs per step (forward + activation gradients; the frozen base gets no
weight gradients), divided by the GPU's dense bf16 peak.

    python benchmarks/train_throughput.py trainer --config configs/tiny.yaml --out benchmarks/results/train_tiny_cpu.json
    python benchmarks/train_throughput.py trainer --config configs/tiny.yaml --cache --out benchmarks/results/train_tiny_cpu_cached.json
    python benchmarks/train_throughput.py step --preset wan22-5b --out benchmarks/results/train_wan22_5b.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import machine_info

# Dense bf16 peak FLOP/s by GPU name fragment (vendor datasheets, without sparsity).
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}

WAN22_5B = dict(
    patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48,
    text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", rope_max_seq_len=1024, lora_rank=128,
)  # fmt: skip
TINY = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
    text_dim=16, freq_dim=16, ffn_dim=32, num_layers=2, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", rope_max_seq_len=32, lora_rank=4,
)  # fmt: skip
# (model config, latent (C, F, H, W), reference latent (h, w), text length)
PRESETS = {
    "wan22-5b": (WAN22_5B, (48, 21, 30, 52), (30, 52), 512),  # 81 frames at 480x832, VAE 4x16x16
    "tiny": (TINY, (4, 2, 4, 4), (4, 4), 32),
}


def trainer_benchmark(args: argparse.Namespace) -> dict:
    from wildactor.train import LoggingConfig, TrainConfig, train

    cfg = TrainConfig.from_yaml(args.config)
    cfg = dataclasses.replace(
        cfg,
        logging=LoggingConfig(tensorboard=False),
        checkpointing=dataclasses.replace(cfg.checkpointing, every_steps=10**9),
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.cache:  # encode once before the loop; the timed steps read latents
            cfg = dataclasses.replace(
                cfg, data=dataclasses.replace(cfg.data, cache_dir=str(Path(tmp) / "cache"))
            )
        result = train(cfg, max_steps=args.warmup + args.steps, output_dir=tmp, show_progress=False)
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    step_s = [r["step_s"] for r in rows[args.warmup :]]
    global_batch = cfg.data.batch_size * cfg.schedule.gradient_accumulation_steps
    median = statistics.median(step_s)
    return {
        "mode": "trainer",
        "config": args.config,
        "latent_cache": args.cache,
        "global_batch": global_batch,
        "frames": cfg.data.num_frames,
        "size": [cfg.data.height, cfg.data.width],
        "references": cfg.sampler.num_face + cfg.sampler.num_body,
        "timed_steps": len(step_s),
        "median_step_s": round(median, 4),
        "samples_per_s": round(global_batch / median, 3),
        "samples_per_s_mean": round(global_batch * len(step_s) / sum(step_s), 3),
        # the fastest step: least disturbed by other jobs on a shared machine
        "min_step_s": round(min(step_s), 4),
        "samples_per_s_best": round(global_batch / min(step_s), 3),
        "final_loss": round(result.losses[-1], 4),
    }


def forward_flops(cfg: dict, latent: tuple, ref_hw: tuple, num_refs: int, text_len: int) -> float:
    """Matmul FLOPs of one forward (2 per multiply-add): projections, attention, cross-attention, FFN."""
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    f, r = cfg["ffn_dim"], cfg["lora_rank"]
    pt, ph, pw = cfg["patch_size"]
    _, frames, h, w = latent
    sv = (frames // pt) * (h // ph) * (w // pw)
    sr = num_refs * (ref_hw[0] // ph) * (ref_hw[1] // pw)
    per_layer = (
        2 * 4 * (sv + sr) * d * d  # q, k, v, out of video and reference tokens
        + 2 * 3 * sr * 2 * d * r  # reference LoRA on q, k, v
        + 2 * 2 * sv * (sv + sr) * d  # video queries over [video ; reference] keys: scores + values
        + 2 * 2 * sr * sr * d  # reference queries over reference keys
        + 2 * 2 * sv * d * d
        + 2 * 2 * text_len * d * d  # cross-attention q, out (video) and k, v (text)
        + 2 * 2 * sv * text_len * d  # cross-attention scores + values
        + 2 * 2 * (sv + sr) * d * f  # FFN
    )
    return float(cfg["num_layers"] * per_layer)


def step_benchmark(args: argparse.Namespace) -> dict:
    from wildactor.diffusion.flow import flow_loss, noisy_latents
    from wildactor.model import WildActorTransformer3DModel

    model_cfg, latent, ref_hw, text_len = PRESETS[args.preset]
    cuda = torch.cuda.is_available()
    if not cuda and args.preset != "tiny":
        return {"mode": "step", "preset": args.preset, "result": "n/a: no CUDA device on this machine"}
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = WildActorTransformer3DModel(**model_cfg)
    model.to(dtype=dtype)
    model.enable_reference_training()
    for p in model.reference_lora_parameters():
        p.data = p.data.float()
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(model.reference_lora_parameters(), lr=1e-5)
    num_refs = args.references
    z0 = torch.randn(1, *latent, device=device)
    refs = torch.randn(1, latent[0], num_refs, *ref_hw, device=device, dtype=dtype)
    text = torch.randn(1, text_len, model_cfg["text_dim"], device=device, dtype=dtype)
    types = ["face"] * (num_refs // 2) + ["body"] * (num_refs - num_refs // 2)

    def step() -> None:
        noise = torch.randn_like(z0)
        t = torch.rand(1, device=device)
        with torch.autocast(device.type, dtype=dtype, enabled=cuda):
            pred = model(noisy_latents(z0, noise, t).to(dtype), t * 1000, text, reference_latents=refs,
                         reference_types=types).sample  # fmt: skip
        loss = flow_loss(pred, z0, noise, t)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    pt, ph, pw = model_cfg["patch_size"]
    video_tokens = (latent[1] // pt) * (latent[2] // ph) * (latent[3] // pw)
    flops = 2 * forward_flops(model_cfg, latent, ref_hw, num_refs, text_len)
    peak = next((v for k, v in PEAK_BF16.items() if cuda and k in torch.cuda.get_device_name()), None)
    return {
        "mode": "step",
        "preset": args.preset,
        "dtype": str(dtype),
        "gradient_checkpointing": args.gradient_checkpointing,
        "latent_shape": list(latent),
        "references": num_refs,
        "video_tokens": video_tokens,
        "timed_steps": len(times),
        "median_step_s": round(median, 4),
        "video_tokens_per_s": round(video_tokens / median, 1),
        "train_tflops_per_step": round(flops / 1e12, 3),
        "mfu": round(flops / median / peak, 4) if peak else "n/a: unknown GPU peak (or CPU)",
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else "n/a: CPU",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    tr = sub.add_parser("trainer", help="the full trainer on a config")
    tr.add_argument("--config", default="configs/tiny.yaml")
    tr.add_argument("--steps", type=int, default=20)
    tr.add_argument("--warmup", type=int, default=5)
    tr.add_argument("--cache", action="store_true", help="train from a latent cache built before the loop")
    st = sub.add_parser("step", help="one training step on synthetic latents")
    st.add_argument("--preset", choices=sorted(PRESETS), default="wan22-5b")
    st.add_argument("--references", type=int, default=6)
    st.add_argument("--steps", type=int, default=10)
    st.add_argument("--warmup", type=int, default=3)
    st.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    for p in (tr, st):
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        p.add_argument("--out", default=None, help="write the result JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    result = trainer_benchmark(args) if args.mode == "trainer" else step_benchmark(args)
    record = {
        "benchmark": "train_throughput",
        "command": "python benchmarks/train_throughput.py " + shlex.join(sys.argv[1:]),
        "machine": machine_info(args.threads),
        "load_average_1min": [
            round(load_before, 2),
            round(os.getloadavg()[0], 2),
        ],  # before, after: a shared machine
        **result,
    }
    text = json.dumps(record, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
