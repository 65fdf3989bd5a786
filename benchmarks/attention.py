"""AIPA attention cost: two mask-free calls vs one SDPA call over the same keys.

Compares, at a few sizes, for video tokens S_v and reference tokens S_r:
  aipa   : video queries over [video ; ref] K/V (one concat) + reference queries over ref K/V (two calls)
  masked : one SDPA over all S_v + S_r queries and keys with a boolean mask giving the same asymmetry
  joint  : one unmasked SDPA over all tokens (the cost of full attention, the ablation)
`aipa` and `masked` compute the same function (checked each run). Runs are interleaved and the median kept,
so a busy machine slows every variant alike.

    python benchmarks/attention.py --out benchmarks/results/attention_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn

from common import machine_info

# (name, video frames, tokens per frame, references): tokens per frame of 480p Wan2.2-TI2V is 15*26 = 390.
SIZES = (("small", 2, 96, 3), ("medium", 4, 195, 3), ("480p-like", 5, 390, 3))


def aipa(q_v, k_v, v_v, q_r, k_r, v_r):
    out_v = dispatch_attention_fn(q_v, torch.cat([k_v, k_r], 1), torch.cat([v_v, v_r], 1))
    out_r = dispatch_attention_fn(q_r, k_r, v_r)
    return torch.cat([out_v, out_r], 1)


def masked(q, k, v, mask):
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
    )  # (B, H, S, D)
    return out.transpose(1, 2)


def joint(q, k, v):
    return dispatch_attention_fn(q, k, v)


def run(heads: int, head_dim: int, repeats: int, dtype: torch.dtype, device: str) -> list[dict]:
    rows = []
    for name, frames, per_frame, refs in SIZES:
        s_v, s_r = frames * per_frame, refs * per_frame
        gen = torch.Generator(device="cpu").manual_seed(0)
        qkv = [
            torch.randn(1, s, heads, head_dim, generator=gen).to(device, dtype)
            for s in (s_v,) * 3 + (s_r,) * 3
        ]
        q_v, k_v, v_v, q_r, k_r, v_r = qkv
        q, k, v = (torch.cat(p, 1) for p in ((q_v, q_r), (k_v, k_r), (v_v, v_r)))
        mask = torch.ones(s_v + s_r, s_v + s_r, dtype=torch.bool, device=device)
        mask[s_v:, :s_v] = False  # reference queries never see video keys
        variants = {
            "aipa": partial(aipa, q_v, k_v, v_v, q_r, k_r, v_r),
            "masked": partial(masked, q, k, v, mask),
            "joint": partial(joint, q, k, v),
        }
        err = (variants["aipa"]() - variants["masked"]()).abs().max().item()
        times = {key: [] for key in variants}
        for _ in range(repeats):
            for key, fn in variants.items():
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                fn()
                if device == "cuda":
                    torch.cuda.synchronize()
                times[key].append(time.perf_counter() - start)
        med = {key: statistics.median(v) * 1e3 for key, v in times.items()}
        rows.append(
            {
                "size": name,
                "video_tokens": s_v,
                "reference_tokens": s_r,
                "heads": heads,
                "head_dim": head_dim,
                "ms_aipa": round(med["aipa"], 3),
                "ms_masked": round(med["masked"], 3),
                "ms_joint": round(med["joint"], 3),
                "ratio_aipa_over_masked": round(med["aipa"] / med["masked"], 3),
                "ratio_aipa_over_joint": round(med["aipa"] / med["joint"], 3),
                "max_abs_diff_aipa_vs_masked": err,
            }
        )
        print(json.dumps(rows[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    rows = run(args.heads, args.head_dim, args.repeats, dtype, device)
    result = {
        "benchmark": "attention",
        "command": f"python benchmarks/attention.py --heads {args.heads} --head-dim {args.head_dim} "
        f"--repeats {args.repeats} --threads {args.threads}",
        "machine": machine_info(args.threads),
        "dtype": str(dtype),
        "rows": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
