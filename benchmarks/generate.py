"""Generation cost of references: time per denoising step and end to end, four variants side by side.

  no_refs       : text only
  refs_cache    : 3 references (face, body, three-view), reference stream run once per call (the default)
  refs_no_cache : the same 3 references, reference stream recomputed inside every forward
  full_attention: 3 references, attention_mode="full" (the ablation; no cache possible)
  refs_cache_half_size: 3 cached references fitted into half the video's width and height (1/4 the tokens)

All variants share the same weights, prompt, seed and size; runs are interleaved (variant order rotates each
repeat) and the median is kept, so a busy machine slows every variant alike. A step is both CFG branches plus
the scheduler update; its time is the median gap between consecutive scheduler updates (step 1, which also
holds text/reference encoding, is left out). End to end = the whole `pipe(...)` call including VAE decoding.

    python benchmarks/generate.py --config tiny --out benchmarks/results/generate_cpu_tiny.json
    python benchmarks/generate.py --config 5b --size 832x480 --frames 81 \\
        --out benchmarks/results/generate_cuda_5b_480p.json            # CUDA only
    python benchmarks/generate.py --config 5b --size 1280x704 --frames 121 \\
        --out benchmarks/results/generate_cuda_5b_720p.json            # CUDA only

`--config 5b` builds Wan2.2-TI2V-5B's transformer (30 layers, 24x128 heads, LoRA rank 128) and VAE with
random weights in bf16 (VAE float32). The text encoder is a 2-layer UMT5 of width 4096 instead of UMT5-XXL:
it runs once per call and does not change per-step cost; end-to-end times therefore omit ~UMT5-XXL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common import machine_info

VARIANTS = ("no_refs", "refs_cache", "refs_no_cache", "full_attention", "refs_cache_half_size")
WAN22_5B_TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=24,
    attention_head_dim=128,
    in_channels=48,
    out_channels=48,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=14336,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
    lora_rank=128,
)
WAN22_5B_VAE = dict(
    base_dim=160,
    decoder_base_dim=256,
    z_dim=48,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    temperal_downsample=[False, True, True],
    latents_mean=[0.0] * 48,
    latents_std=[1.0] * 48,
    is_residual=True,
    patch_size=2,
    in_channels=12,
    out_channels=12,
    scale_factor_spatial=16,
    scale_factor_temporal=4,
)


def video_macs_per_layer(
    dim: int, ffn: int, video_tokens: int, reference_tokens: int, text_tokens: int
) -> float:
    """Multiply-adds of one block for all video tokens (reference K/V come from the cache).

    q/k/v/o projections 4 D^2, cross-attention q/o 2 D^2 (text K/V: 2 D^2 per text token), FFN 2 D F per
    token; self-attention scores + weighted sum 2 D (S_v + S_ref) per query; cross-attention 2 D L per query.
    """
    per_token = (
        6 * dim * dim + 2 * dim * ffn + 2 * dim * (video_tokens + reference_tokens) + 2 * dim * text_tokens
    )
    return video_tokens * per_token + text_tokens * 2 * dim * dim


def flop_estimates(text_tokens: int = 512) -> list[dict]:
    """(b)/(a) per step by multiply-add count at the 5B config: an estimate, not a measurement."""
    dim = WAN22_5B_TRANSFORMER["num_attention_heads"] * WAN22_5B_TRANSFORMER["attention_head_dim"]
    ffn = WAN22_5B_TRANSFORMER["ffn_dim"]
    rows = []
    for name, (w, h, frames) in {"480p": (832, 480, 81), "720p": (1280, 704, 121)}.items():
        per_frame = (h // 32) * (w // 32)
        s_v = ((frames - 1) // 4 + 1) * per_frame
        base = video_macs_per_layer(dim, ffn, s_v, 0, text_tokens)
        row = {"name": name, "size": f"{w}x{h}", "frames": frames, "video_tokens": s_v}
        for label, refs in (("3_refs_video_size", 3 * per_frame), ("3_refs_half_size", 3 * per_frame // 4)):
            row[f"macs_ratio_{label}"] = round(
                video_macs_per_layer(dim, ffn, s_v, refs, text_tokens) / base, 4
            )
        rows.append(row)
    return rows


def bf16_like_from_pretrained(model: torch.nn.Module) -> torch.nn.Module:
    """bf16, except the modules diffusers keeps in float32 when loading with torch_dtype=bf16."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if tensor.is_floating_point():
                tensor.data = tensor.data.to(
                    torch.float32 if any(k in name for k in keep) else torch.bfloat16
                )
    return model


def build_pipelines(config: str, device: torch.device):
    """{"aipa": pipeline, "full": pipeline} sharing every weight; the full one differs only in attention."""
    from wildactor.default_model import build_tiny_pipeline
    from wildactor.model import WildActorTransformer3DModel
    from wildactor.pipeline import WildActorPipeline

    if config == "tiny":
        aipa = build_tiny_pipeline(0)
        full = build_tiny_pipeline(0, attention_mode="full")
        full.transformer.load_state_dict(aipa.transformer.state_dict())
        return {"aipa": aipa.to(device), "full": full.to(device)}

    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    with torch.device(device):
        transformer = bf16_like_from_pretrained(WildActorTransformer3DModel(**WAN22_5B_TRANSFORMER))
        vae = AutoencoderKLWan(**WAN22_5B_VAE)
        text_encoder = UMT5EncoderModel(
            UMT5Config(vocab_size=384, d_model=4096, d_kv=64, d_ff=1024, num_layers=2, num_heads=64)
        ).to(torch.bfloat16)
    parts = dict(tokenizer=ByT5Tokenizer(), text_encoder=text_encoder.eval(), vae=vae.eval())
    sched = dict(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
    aipa = WildActorPipeline(
        transformer=transformer.eval(), scheduler=UniPCMultistepScheduler(**sched), **parts
    )
    # The ablation reuses the same weights: a second module object sharing every parameter tensor.
    with torch.device(device):
        full_transformer = WildActorTransformer3DModel(**{**WAN22_5B_TRANSFORMER, "attention_mode": "full"})
    full_transformer.load_state_dict(transformer.state_dict(), assign=True)  # shares every tensor
    full = WildActorPipeline(
        transformer=full_transformer.eval(), scheduler=UniPCMultistepScheduler(**sched), **parts
    )
    return {"aipa": aipa, "full": full}


def example_references():
    from wildactor.default_model import synthetic_example_actor
    from wildactor.pipeline import Reference

    face, body = synthetic_example_actor()
    sheet = np.concatenate([np.asarray(body.image)] * 3, axis=1)  # front/side/back stand-in
    return [face, body, Reference(sheet, "three_view")]


def timed_call(
    pipe, refs, use_cache, args, width, height, sync, clock, ref_size=None
) -> tuple[float, list[float], float]:
    """(end-to-end seconds, per-step seconds, seconds after the last step = VAE decoding) of one call."""
    stamps: list[float] = []
    step = pipe.scheduler.step

    def stamped_step(*a, **kw):
        out = step(*a, **kw)
        sync()
        stamps.append(clock())
        return out

    pipe.scheduler.step = stamped_step
    try:
        sync()
        start = clock()
        pipe(
            ["a woman in a red coat walks along a rainy street at night"],
            refs,
            height=height,
            width=width,
            num_frames=args.frames,
            num_inference_steps=args.steps,
            guidance_scale=5.0,
            seed=0,
            use_reference_cache=use_cache,
            reference_size=ref_size,
            max_sequence_length=args.max_sequence_length,
        )
        sync()
        total = clock() - start
    finally:
        del pipe.scheduler.step  # back to the class method
    return total, list(np.diff(stamps)), start + total - stamps[-1]


def run(args) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.config == "5b" and device.type != "cuda":
        sys.exit("--config 5b needs a CUDA GPU (random 5B weights in bf16); use --config tiny on a CPU")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    # On a shared CPU, process CPU time (one thread) is what the code costs; wall time measures the neighbours.
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    width, height = (int(v) for v in args.size.lower().split("x"))
    pipes = build_pipelines(args.config, device)
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    refs = example_references()
    multiple = pipes["aipa"].size_multiple
    half = (
        max(multiple, width // 2 // multiple * multiple),
        max(multiple, height // 2 // multiple * multiple),
    )
    plan = {  # variant: (pipeline, references, use_reference_cache, reference_size)
        "no_refs": (pipes["aipa"], [], None, None),
        "refs_cache": (pipes["aipa"], refs, True, None),
        "refs_no_cache": (pipes["aipa"], refs, False, None),
        "full_attention": (pipes["full"], refs, None, None),
        "refs_cache_half_size": (pipes["aipa"], refs, True, half),
    }
    # Warm-up (allocator, kernels), then interleaved timed repeats.
    warm = argparse.Namespace(**{**vars(args), "steps": 3})
    for pipe, r, cache, ref_size in plan.values():
        timed_call(pipe, r, cache, warm, width, height, sync, clock, ref_size)
    totals = {k: [] for k in VARIANTS}
    steps = {k: [] for k in VARIANTS}
    decodes = {k: [] for k in VARIANTS}
    for rep in range(args.repeats):
        shift = rep % len(VARIANTS)
        order = VARIANTS[shift:] + VARIANTS[:shift]
        for key in order:
            pipe, r, cache, ref_size = plan[key]
            total, per_step, decode = timed_call(pipe, r, cache, args, width, height, sync, clock, ref_size)
            totals[key].append(total)
            decodes[key].append(decode)
            steps[key].extend(per_step[1:] if len(per_step) > 1 else per_step)
    # The cache build alone (reference stream once).
    pipe = pipes["aipa"]
    images, types = pipe.prepare_references(refs, height, width)
    latents = pipe.encode_reference_images(images).to(device, pipe.transformer.dtype)
    latent_shape = pipe._latent_shape(height, width, args.frames)[1:]
    builds = []
    for _ in range(args.repeats):
        sync()
        start = clock()
        with torch.no_grad():
            pipe.transformer.encode_references(latents, types, latent_shape)
        sync()
        builds.append(clock() - start)

    base_step = statistics.median(steps["no_refs"])
    base_total = statistics.median(totals["no_refs"])
    p_h = pipe.transformer.config.patch_size[1]
    tokens_per_frame = (height // pipe.vae_scale_factor_spatial // p_h) * (
        width // pipe.vae_scale_factor_spatial // p_h
    )
    rows = []
    for key in VARIANTS:
        step_s, total_s = statistics.median(steps[key]), statistics.median(totals[key])
        rows.append(
            {
                "variant": key,
                "ms_per_step": round(step_s * 1e3, 3),
                "s_end_to_end": round(total_s, 4),
                "s_vae_decode": round(statistics.median(decodes[key]), 4),
                "step_ratio_to_no_refs": round(step_s / base_step, 3),
                "end_to_end_ratio_to_no_refs": round(total_s / base_total, 3),
            }
        )
        print(json.dumps(rows[-1]))
    latent_frames = pipe._latent_shape(height, width, args.frames)[1]
    return {
        "benchmark": "generate",
        "command": " ".join(["python", "benchmarks/generate.py", *sys.argv[1:]]),
        "machine": machine_info(args.threads if device.type == "cpu" else None),
        "device": str(device),
        "config": args.config,
        "dtype": str(pipe.transformer.dtype),
        "size": f"{width}x{height}",
        "frames": args.frames,
        "steps": args.steps,
        "guidance": "CFG 5.0 (2 forwards per step)",
        "repeats": args.repeats,
        "clock": "process CPU time" if args.clock == "cpu" else "wall time",
        "video_tokens": latent_frames * tokens_per_frame,
        "reference_tokens": len(refs) * tokens_per_frame,
        "ms_cache_build": round(statistics.median(builds) * 1e3, 3),
        "rows": rows,
        "goal": "refs_cache / no_refs per step <= 1.03 at the 5B config",
        "estimate_5b_multiply_adds": flop_estimates(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=("tiny", "5b"), default="tiny")
    parser.add_argument("--size", default=None, help="WxH (default: 128x128 tiny, 832x480 5b)")
    parser.add_argument("--frames", type=int, default=None, help="default: 81")
    parser.add_argument("--steps", type=int, default=None, help="default: 6 tiny, 4 5b")
    parser.add_argument("--repeats", type=int, default=None, help="default: 5 tiny, 2 5b")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: see --clock)")
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default=None, help="default: cpu on a CPU device, wall on CUDA"
    )
    parser.add_argument("--max-sequence-length", type=int, default=512)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    tiny = args.config == "tiny"
    args.size = args.size or ("128x128" if tiny else "832x480")
    args.frames = args.frames or 81
    args.steps = args.steps or (6 if tiny else 4)
    args.repeats = args.repeats or (5 if tiny else 2)
    if args.steps < 3:
        parser.error("--steps must be >= 3 (step 1 holds the encoders and is not a per-step sample)")
    args.clock = args.clock or ("wall" if torch.cuda.is_available() else "cpu")
    if args.clock == "cpu" and torch.cuda.is_available():
        parser.error("--clock cpu cannot time GPU work")
    torch.set_num_threads(args.threads)
    result = run(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
