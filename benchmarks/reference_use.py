"""How much a model draws from its references: denoising error with the actor's own references vs another's.

Generation-based scores (`default_model_eval.py`) need a model that already samples well; this measures the
identity information a model takes from its references directly, on held-out ActorWorld clips. Each clip
(actors never seen in training: ``manifest_heldout.jsonl`` of `wildactor world make`) is noised to levels t with
fixed noise; the model predicts the clean latent x0 with

- the clip's own actor's references (1 face + front and back body renders: what `wildactor generate` is given),
- the same kinds of references of another held-out actor,
- no references,

and the squared x0 error (normalised latents) is compared. ``identity_gain`` = err(other actor) - err(own):
above 0 means the model's output moves towards the right actor's appearance, i.e. it reads identity from the
references. Per-actor means, 95 % bootstrap CIs over actors.

    python benchmarks/reference_use.py --model DIR --data data/actorworld --out benchmarks/results/X.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from common import machine_info
from wildactor.bench.report import bootstrap_ci
from wildactor.diffusion.flow import model_timestep, noisy_latents
from wildactor.media import read_mp4
from wildactor.pipeline import Reference, WildActorPipeline

NOISE_LEVELS = (0.95, 0.8, 0.5)


def pick_references(record: dict, root: Path) -> list[Reference]:
    """The example-actor set: face render from the front, body renders from the front and the back."""
    wanted = [("face", "view_aug", "front"), ("body", "view_aug", "front"), ("body", "view_aug", "back")]
    refs = []
    for region, source, view in wanted:
        match = [
            r
            for r in record["refs"]
            if r["region"] == region and r["metadata"].get("source") == source and r["view"] == view
        ]
        if not match:
            raise SystemExit(f"{record['video']}: no {region} {source} {view} reference")
        refs.append(Reference(root / match[0]["path"], region))
    return refs


def clip_latents(pipe: WildActorPipeline, root: Path, record: dict, frame_stride: int) -> torch.Tensor:
    """A held-out clip's clean latents (1, C, F, h, w), every ``frame_stride``-th frame, as training reads it."""
    return pipe.encode_video_frames(read_mp4(root / record["video"])[::frame_stride])


def x0_error(transformer, z0, zt, t: float, timestep, text, refs) -> float:
    """Mean squared error of the model's clean-latent estimate x0 = z_t - t v at noise level t."""
    kwargs = {} if refs is None else {"reference_latents": refs[0], "reference_types": refs[1]}
    v = transformer(zt, timestep, text, **kwargs).sample
    return float(((zt - t * v - z0) ** 2).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a WildActorPipeline folder")
    parser.add_argument("--data", type=Path, default=Path("data/actorworld"))
    parser.add_argument(
        "--manifest",
        default="manifest_heldout.jsonl",
        help="held-out manifest in --data (identity-free prompts for v2: manifest_heldout_person.jsonl)",
    )
    parser.add_argument("--clips", type=int, default=160, help="held-out clips to use (default: 160)")
    parser.add_argument(
        "--frame-stride", type=int, default=1, help="use every k-th clip frame (as the model was trained)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    records = [json.loads(line) for line in (args.data / args.manifest).read_text().splitlines()]
    records = records[: args.clips]
    actors = sorted({r["actor_id"] for r in records})
    if len(actors) < 2:
        raise SystemExit("need clips of at least two held-out actors")
    first_record = {a: next(r for r in records if r["actor_id"] == a) for a in actors}
    pipe = WildActorPipeline.from_pretrained(args.model)
    transformer = pipe.transformer.eval()
    ref_latents: dict[str, tuple[torch.Tensor, list[str]]] = {}
    for actor in actors:
        record = first_record[actor]
        images, types = pipe.prepare_references(
            pick_references(record, args.data), record["height"], record["width"]
        )
        ref_latents[actor] = (pipe.encode_reference_images(images), types)

    per_actor: dict[str, dict[str, list[float]]] = {a: {} for a in actors}
    start = time.perf_counter()
    with torch.no_grad():
        for index, record in enumerate(records):
            actor = record["actor_id"]
            other = actors[(actors.index(actor) + 1) % len(actors)]
            z0 = clip_latents(pipe, args.data, record, args.frame_stride)
            text = pipe.encode_prompts([record["prompt"]])
            gen = torch.Generator().manual_seed(args.seed * 1_000_003 + index)
            for t in NOISE_LEVELS:
                tt = torch.tensor([t])
                zt = noisy_latents(z0, torch.randn(z0.shape, generator=gen), tt)
                timestep = model_timestep(tt, pipe.scheduler.config.num_train_timesteps)

                own, wrong, bare = (
                    x0_error(transformer, z0, zt, t, timestep, text, refs)
                    for refs in (ref_latents[actor], ref_latents[other], None)
                )
                scores = per_actor[actor]
                scores.setdefault(f"identity_gain@{t}", []).append(wrong - own)
                scores.setdefault(f"reference_gain@{t}", []).append(bare - own)
                scores.setdefault(f"error_own@{t}", []).append(own)
            print(f"\r{index + 1}/{len(records)} clips", end="", flush=True)
    print()
    means = {a: {k: float(np.mean(v)) for k, v in s.items()} for a, s in per_actor.items()}
    summary = {}
    for key in next(iter(means.values())):
        values = [m[key] for m in means.values()]
        summary[key] = {"mean": float(np.mean(values)), "ci95": bootstrap_ci(values)}
        if "gain" in key:
            summary[key]["actors_positive"] = int(sum(v > 0 for v in values))
    result = {
        "benchmark": "reference_use",
        "command": f"python benchmarks/reference_use.py --model {args.model} --data {args.data} "
        f"--manifest {args.manifest} --clips {args.clips} --frame-stride {args.frame_stride} --seed {args.seed} --threads {args.threads}",
        "machine": machine_info(args.threads),
        "model": str(args.model),
        "clips": len(records),
        "actors": len(actors),
        "seconds": round(time.perf_counter() - start, 1),
        "summary": summary,
        "per_actor": means,
    }
    for key, s in summary.items():
        lo, hi = s["ci95"]
        positive = f"  positive for {s['actors_positive']}/{len(actors)}" if "actors_positive" in s else ""
        print(f"{key:24s} {s['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}]{positive}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
