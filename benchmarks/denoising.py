"""How much noise a model takes out: held-out clips noised to t, then denoised in one step and sampled back.

Samples that keep a fine, grid-aligned noise (with the projected pixel codec every latent error is a 4x4 pixel
block) come from a model that does not finish denoising. This measures that directly: each held-out ActorWorld
clip, with its own actor's references (the `reference_use.py` set) and prompt, is noised to t with fixed noise;

- ``x0_mse@t``: squared error of the one-step clean-latent estimate x0 = z_t - t v (normalised latents);
- ``sampled_mse@t``: squared error after Euler steps on the model's velocity from t down to 0;
- ``input_mse@t``: the error of the noisy input itself, z_t / (1 - t) - z_0 (the do-nothing baseline).

Per-clip values, means with 95 % bootstrap CIs over clips.

    python benchmarks/denoising.py --model DIR --data data/actorworld --out benchmarks/results/X.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from common import machine_info
from reference_use import clip_latents, pick_references
from wildactor.bench.report import bootstrap_ci
from wildactor.diffusion.flow import model_timestep, noisy_latents
from wildactor.pipeline import WildActorPipeline

NOISE_LEVELS = (0.2, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a WildActorPipeline folder")
    parser.add_argument("--data", type=Path, default=Path("data/actorworld"))
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--steps", type=int, default=10, help="Euler steps from t to 0")
    parser.add_argument(
        "--frame-stride", type=int, default=1, help="use every k-th clip frame (as the model was trained)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lines = (args.data / "manifest_heldout.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines][: args.clips]
    pipe = WildActorPipeline.from_pretrained(args.model)
    transformer = pipe.transformer.eval()
    num_train = pipe.scheduler.config.num_train_timesteps
    scores: dict[str, list[float]] = {}
    start = time.perf_counter()
    with torch.no_grad():
        for index, record in enumerate(records):
            images, types = pipe.prepare_references(
                pick_references(record, args.data), record["height"], record["width"]
            )
            refs = pipe.encode_reference_images(images)  # (1, C, R, h, w)
            z0 = clip_latents(pipe, args.data, record, args.frame_stride)
            text = pipe.encode_prompts([record["prompt"]])

            def velocity(z, t: float, text=text, refs=refs, types=types):
                timestep = model_timestep(torch.tensor([t]), num_train)
                return transformer(z, timestep, text, reference_latents=refs, reference_types=types).sample

            gen = torch.Generator().manual_seed(args.seed * 1_000_003 + index)
            for t in NOISE_LEVELS:
                z = noisy_latents(z0, torch.randn(z0.shape, generator=gen), torch.tensor([t]))
                scores.setdefault(f"input_mse@{t}", []).append(float((z / (1 - t) - z0).pow(2).mean()))
                scores.setdefault(f"x0_mse@{t}", []).append(
                    float((z - t * velocity(z, t) - z0).pow(2).mean())
                )
                levels = np.linspace(t, 0.0, args.steps + 1)
                for a, b in zip(levels[:-1], levels[1:]):
                    z = z + float(b - a) * velocity(z, float(a))
                scores.setdefault(f"sampled_mse@{t}", []).append(float((z - z0).pow(2).mean()))
            print(f"\r{index + 1}/{len(records)} clips", end="", flush=True)
    print()
    summary = {k: {"mean": float(np.mean(v)), "ci95": bootstrap_ci(v)} for k, v in scores.items()}
    result = {
        "benchmark": "denoising",
        "command": f"python benchmarks/denoising.py --model {args.model} --data {args.data} --clips {args.clips} "
        f"--steps {args.steps} --frame-stride {args.frame_stride} --seed {args.seed} --threads {args.threads}",
        "machine": machine_info(args.threads),
        "model": str(args.model),
        "clips": len(records),
        "seconds": round(time.perf_counter() - start, 1),
        "summary": summary,
    }
    for key, s in summary.items():
        lo, hi = s["ci95"]
        print(f"{key:18s} {s['mean']:.4f} [{lo:.4f}, {hi:.4f}]")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
