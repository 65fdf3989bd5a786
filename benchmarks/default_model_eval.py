"""The embedded default model on held-out ActorWorld actors: references vs no references vs pasted references.

For each actor (ids from the probes' held-out range, never in the model's training set) the model generates a
3-shot storyline with the actor's example references (1 face + front and back body views), and the same prompts
and seeds with no references; the "pasted" baseline repeats the body reference in every frame. The probes judge
body consistency (share of identity attributes read back equal to the actor's) per clip; scores are averaged
per actor and reported with a 95 % bootstrap CI over actors, overall and by the viewpoint the probes read in each
frame (front / side / back: the Table 3 split).

Realism: the Fréchet distance (`wildactor.bench.metrics.frechet`, an FID on the probes' penultimate features)
between each condition's clips and the real ActorWorld clips of the same shots (the renders the prompts
describe, at the training clips' frame stride), and, as the floor, between those real clips and the same shots
rendered with other held-out actors (real clips as a perfect model that ignores the references makes them;
like any FID the number is biased upward for small sets, so compare within one run).

    python benchmarks/default_model_eval.py --actors 24 --out benchmarks/results/default_model_actorworld.json

Any folder written by `export_default_model` can be judged the same way (``--model``): the ablation runs are
(`benchmarks/ablations.py` compares them; ``--conditions wildactor`` judges only the reference condition).

The Table 2 analogue (``--conditions all``) adds, for a model whose tokenizer knows the described prompts (v2:
a frozen text-to-video base plus a reference LoRA, which without references IS the base):

- ``text_described``: the base with the identity in the text (every shot's prompt describes the actor), no refs;
- ``t2v_i2v``: the narrative without references: shot 1 from the described prompt, each next shot image-to-video
  from the previous shot's last frame (the paper's w/o-Ref baseline);
- ``oracle``: the real renders of the shots with the true actor, judged like the generated clips.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from common import machine_info
from wildactor.bench.baselines import pasted_video
from wildactor.bench.metrics.actorworld import build_probe_backend, chance_attribute_agreement
from wildactor.bench.metrics.base import RefImage
from wildactor.bench.metrics.body import VIEWS, body_consistency_actorworld
from wildactor.bench.metrics.frechet import frechet_actorworld
from wildactor.bench.report import bootstrap_ci
from wildactor.default_model import DEFAULT_MODEL_DIR, write_example_actor
from wildactor.pipeline import Reference, WildActorPipeline
from wildactor.world import Actor, clip_prompt, make_storyline, render_clip
from wildactor.world.actors import attribute_fields
from wildactor.world.prompts import describe_actor

FIRST_ACTOR = 300_000  # the probes' held-out range starts here; the model trained on ids < 400
# The floor's real clips show actor index + this (held out, none of the judged actors) in the same shots.
FLOOR_OFFSET = 498


def real_clips(
    index: int, prompts: list[str], frames: int, size: tuple[int, int], actor: int | None = None
) -> list[np.ndarray]:
    """The ActorWorld renders of an example actor's storyline shots (as `write_example_actor` draws it), at the
    training data's frame stride: `frames` frames taken every 2nd of a 2 * frames - 1 frame render. With
    `actor`, the same shots played by that actor instead."""
    story = make_storyline(Actor.from_id(index), np.random.default_rng(0), num_shots=len(prompts))
    shown = [clip_prompt(spec, describe=False) for spec in story.shots]
    if shown != list(prompts):
        raise RuntimeError(
            f"actor {index}: storyline drifted from the example prompts ({shown} vs {prompts})"
        )
    who = {} if actor is None else {"actor": Actor.from_id(actor)}
    return [
        render_clip(replace(spec, **who, num_frames=2 * frames - 1, size=(size[1], size[0]))).frames[::2]
        for spec in story.shots
    ]


def described_prompts(index: int, prompts: list[str]) -> list[str]:
    """The example storyline's prompts with the actor described ("A tall person with ... walks ...")."""
    who = describe_actor(Actor.from_id(index))
    if not all(p.startswith("A person ") for p in prompts):
        raise RuntimeError(f"actor {index}: expected prompts that start with 'A person ', got {prompts}")
    return [who[0].upper() + who[1:] + p[len("A person") :] for p in prompts]


def _shown(path: Path) -> str:
    """A path as the command would be typed from the repository root (relative when it lies inside it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (every option that was given)."""
    parts = [
        f"python benchmarks/default_model_eval.py --model {_shown(args.model)} --actors {args.actors}",
        f"--first-actor {args.first_actor} --threads {args.threads}",
    ]
    if args.conditions != "reference":
        parts.append(f"--conditions {args.conditions}")
    for flag, value in (
        ("--steps", args.steps),
        ("--guidance-scale", args.guidance_scale),
        ("--reference-guidance-scale", args.reference_guidance_scale),
    ):
        if value is not None:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


CONDITIONS = {
    # --conditions: which clips are generated (pasted, oracle and the floor cost no sampling)
    "wildactor": ("wildactor",),
    "reference": ("wildactor", "no_reference", "pasted"),
    "all": ("wildactor", "no_reference", "text_described", "t2v_i2v", "pasted", "oracle"),
}
GENERATED = ("wildactor", "no_reference", "text_described", "t2v_i2v")


def check_vocabulary(pipe: WildActorPipeline, prompts: list[str]) -> None:
    """Described prompts need a tokenizer that knows the attribute words (v1's does not)."""
    unk = pipe.tokenizer.unk_token_id
    if unk is None:
        return
    for prompt in prompts:
        if unk in pipe.tokenizer(prompt).input_ids:
            raise SystemExit(
                f"the model's tokenizer does not know every word of {prompt!r}: text_described / t2v_i2v need a "
                "model trained on described prompts (v2); use --conditions reference"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--actors", type=int, default=12)
    parser.add_argument(
        "--first-actor",
        type=int,
        default=FIRST_ACTOR,
        help="first actor id (ids first + 997 k); choose settings on another set than the one reported",
    )
    parser.add_argument(
        "--conditions",
        choices=tuple(CONDITIONS),
        default="reference",
        help="wildactor: references only (ablations); reference: + no references and pasted (default); "
        "all: + the identity in the text, the T2V -> I2V narrative and the oracle (Table 2)",
    )
    parser.add_argument("--steps", type=int, default=None, help="default: the model's generate_defaults.json")
    parser.add_argument("--guidance-scale", type=float, default=None, help="default: the model's")
    parser.add_argument(
        "--reference-guidance-scale", type=float, default=None, help="default: the model's (if any)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.first_actor < FIRST_ACTOR:
        raise SystemExit(
            f"--first-actor must be >= {FIRST_ACTOR}: lower ids overlap the probes' training actors"
        )
    torch.set_num_threads(args.threads)

    defaults = json.loads((args.model / "generate_defaults.json").read_text())
    steps = args.steps or defaults["steps"]
    size, frames = defaults["size"], defaults["frames"]
    guidance = args.guidance_scale if args.guidance_scale is not None else defaults["guidance_scale"]
    ref_guidance = args.reference_guidance_scale
    if ref_guidance is None:
        ref_guidance = defaults.get("reference_guidance_scale")
    conditions = CONDITIONS[args.conditions]
    pipe = WildActorPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    probes = build_probe_backend()
    rows = []
    clips: dict[str, list[np.ndarray]] = {name: [] for name in (*conditions, "real", "floor")}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.actors):
            index = args.first_actor + 997 * k  # spread over the held-out range
            actor = Actor.from_id(index)
            truth = {f: getattr(actor, f) for f in attribute_fields()}
            example = write_example_actor(Path(tmp) / str(index), index)
            prompts = example["prompts"]
            refs = [Reference(Path(tmp) / str(index) / r["path"], r["region"]) for r in example["references"]]
            ref_images = [RefImage(np.asarray(r.load()), r.region) for r in refs]
            described = described_prompts(index, prompts)
            if "text_described" in conditions and k == 0:
                check_vocabulary(pipe, described)
            real = real_clips(index, prompts, frames, size)
            clips["real"] += real
            clips["floor"] += real_clips(index, prompts, frames, size, actor=index + FLOOR_OFFSET)
            runs = {  # name -> (prompts, references, chain)
                "wildactor": (prompts, refs, False),
                "no_reference": (prompts, [], False),
                "text_described": (described, [], False),
                "t2v_i2v": ([described[0], *prompts[1:]], [], True),
            }
            scores: dict = {}
            for name in conditions:
                if name in GENERATED:
                    shot_prompts, conditioning, chain = runs[name]
                    out = pipe(
                        prompts=shot_prompts, references=conditioning, chain=chain, height=size[1],
                        width=size[0], num_frames=frames, num_inference_steps=steps, guidance_scale=guidance,
                        reference_guidance_scale=ref_guidance if conditioning else None, seed=k,
                    )  # fmt: skip
                    videos = [np.asarray(f) for f in out.frames]
                elif name == "pasted":
                    videos = [pasted_video(ref_images, frames, size[1], size[0])] * len(prompts)
                else:  # oracle: the real renders
                    videos = real
                if name != "oracle":
                    clips[name] += videos
                judged = [body_consistency_actorworld(v, truth, probes) for v in videos]
                scores[name] = float(np.mean([j.value for j in judged]))
                pooled: dict[str, list[float]] = {v: [] for v in VIEWS}  # frames of all shots, by read view
                for j in judged:
                    for score, view in zip(j.per_frame, j.extra["frame_views"]):
                        pooled.setdefault(view, []).append(score)
                scores[f"{name}_by_view"] = {v: (float(np.mean(x)) if x else None) for v, x in pooled.items()}
            rows.append({"actor_id": actor.actor_id, **scores})
            print(json.dumps({"actor_id": actor.actor_id, **{n: round(scores[n], 3) for n in conditions}}))
    summary = {}
    for name in conditions:
        values = [r[name] for r in rows]
        summary[name] = {"mean": float(np.mean(values)), "ci95": bootstrap_ci(values)}
    if "no_reference" in conditions:
        diffs = [r["wildactor"] - r["no_reference"] for r in rows]
        summary["wildactor_minus_no_reference"] = {"mean": float(np.mean(diffs)), "ci95": bootstrap_ci(diffs)}
    for name in conditions:
        summary[f"{name}_by_view"] = {}
        for view in VIEWS:
            values = [r[f"{name}_by_view"].get(view) for r in rows]
            values = [v for v in values if v is not None]
            summary[f"{name}_by_view"][view] = {
                "mean": float(np.mean(values)) if values else None,
                "ci95": bootstrap_ci(values),
                "actors": len(values),
            }
    realism = {}
    for name in (*(c for c in conditions if c != "oracle"), "floor"):
        fd = frechet_actorworld(clips[name], clips["real"], probes)
        realism[name] = fd.value if not fd.is_na else f"n/a: {fd.na_reason}"
    summary["frechet_distance"] = {
        **realism,
        "clips_per_set": len(clips["real"]),
        "frames_per_clip": frames,
        "note": (
            "each set vs the real renders of the same shots; floor = the same shots rendered with other held-out "
            "actors: real clips, as a perfect model that ignores the references would make them"
        ),
    }
    result = {
        "benchmark": "default_model_actorworld",
        "command": command_line(args),
        "machine": machine_info(args.threads),
        "model": _shown(args.model),
        "settings": {
            "steps": steps,
            "size": size,
            "frames": frames,
            "guidance_scale": guidance,
            "reference_guidance_scale": ref_guidance,
        },
        "chance_body_consistency": chance_attribute_agreement(),
        "seconds": round(time.perf_counter() - start, 1),
        "summary": summary,
        "per_actor": rows,
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
