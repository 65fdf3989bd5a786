"""ActorWorld-Bench: the `actorworld` suite (held-out actors, three settings, two axes), its reference
renders, and exact renders of an item's clip (used by the oracle and no-reference baselines).

The suite's actors come from the id range the ActorWorld probes never saw in training, so the probes judge
unseen identities.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from wildactor.bench.spec import BenchItem, RefSpec
from wildactor.errors import WildActorError

VIEW_AUG_VIEWS = ("front", "left", "right", "back", "down", "up")


def unseen_actor_range() -> tuple[int, int]:
    """[lo, hi) of held-out actor indices: ActorWorld's held-out probe range, clipped to the identity space
    and to ids past the probes' training range."""
    from wildactor.world.actors import NUM_IDENTITIES
    from wildactor.world.probe_training import HELDOUT_ACTORS, TRAIN_ACTORS

    lo, hi = max(HELDOUT_ACTORS[0], TRAIN_ACTORS[1]), min(HELDOUT_ACTORS[1], NUM_IDENTITIES)
    if hi - lo < 1000:
        raise WildActorError(
            f"too few held-out actor ids: [{lo}, {hi}) (probe training range {TRAIN_ACTORS})"
        )
    return lo, hi


def _clip_labels(spec: Any) -> dict[str, Any]:
    """Labels an exact metric checks, plus everything needed to re-render the clip."""
    from wildactor.data.schema import view_bin

    m, s, c = spec.motion, spec.scene, spec.camera

    def r(d: dict[str, Any]) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}

    return {
        "scene": s.kind,
        "motion": m.kind,
        "view": view_bin(m.yaw_at(0.0)),
        "clip": {
            "motion": r(asdict(m)),
            "scene": r(asdict(s)),
            "camera": r({"elevation": c.elevation, "azimuth": c.azimuth, "distance": c.distance}),
        },
    }


def make_actorworld_suite(
    num_subjects: int = 75,
    contextual_per_subject: int = 4,
    storylines_per_subject: int = 1,
    num_frames: int = 17,
    size: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """The `actorworld` suite as a plain dict (write it with yaml.safe_dump)."""
    from wildactor.world import (
        MOTION_KINDS,
        SCENE_KINDS,
        Actor,
        clip_prompt,
        make_storyline,
        sample_clip_spec,
    )

    if num_subjects < 1 or contextual_per_subject < 0 or storylines_per_subject < 0:
        raise ValueError("num_subjects must be >= 1 and prompt counts >= 0")
    rng = np.random.default_rng(seed)
    lo, hi = unseen_actor_range()
    indices = sorted(int(i) for i in rng.choice(np.arange(lo, hi), size=num_subjects, replace=False))
    subjects = []
    for index in indices:
        actor = Actor.from_id(index)
        views = [str(v) for v in rng.permutation(VIEW_AUG_VIEWS)]
        # Arbitrary viewpoint: two body views and one face view, drawn without regard to frontality.
        arbitrary = [
            {"actorworld": "view_aug", "region": "body", "view": views[0]},
            {"actorworld": "view_aug", "region": "body", "view": views[1]},
            {"actorworld": "view_aug", "region": "face", "view": views[2]},
        ]
        wild_scene = str(rng.choice(SCENE_KINDS))
        wild_seed = int(rng.integers(0, 2**31))
        wild_yaw = round(float(rng.uniform(-60, 60)) % 360.0, 2)  # self-crops are mostly frontal
        in_the_wild = [
            {
                "actorworld": "self_crop",
                "region": "body",
                "view": "unknown",
                "scene": wild_scene,
                "yaw": wild_yaw,
                "seed": wild_seed,
            },
            {
                "actorworld": "self_crop",
                "region": "face",
                "view": "unknown",
                "scene": wild_scene,
                "yaw": wild_yaw,
                "seed": wild_seed,
            },
        ]
        motions = rng.permutation(MOTION_KINDS)
        scenes = rng.permutation(SCENE_KINDS)
        contextual = []
        for k in range(contextual_per_subject):
            spec = sample_clip_spec(
                actor, rng, motion=str(motions[k % len(motions)]), scene=str(scenes[k % len(scenes)]),
                num_frames=num_frames, size=(size, size),
            )  # fmt: skip
            contextual.append({"text": clip_prompt(spec), **_clip_labels(spec)})
        narrative = []
        for _ in range(storylines_per_subject):
            story = make_storyline(actor, rng, 3, num_frames=num_frames, size=(size, size))
            narrative.append([{"text": t, **_clip_labels(s)} for t, s in zip(story.prompts, story.shots)])
        subjects.append(
            {
                "id": actor.actor_id,
                "actor": actor.actor_id,
                "references": {
                    "three_view": [{"actorworld": "three_view", "region": "three_view", "view": "canonical"}],
                    "arbitrary": arbitrary,
                    "in_the_wild": in_the_wild,
                },
                "narrative": narrative,
                "contextual": contextual,
            }
        )
    return {
        "name": "actorworld",
        "description": (
            f"ActorWorld-Bench: {num_subjects} held-out ActorWorld actors (ids outside the probes' training range), settings "
            "three_view / arbitrary / in_the_wild, axes narrative (3-shot storylines) and contextual. "
            f"Generated by `wildactor bench make-suite` (seed {seed})."
        ),
        "video": {
            "num_frames": num_frames,
            "height": size,
            "width": size,
            "fps": 8,
            "steps": 20,
            "guidance_scale": 5.0,
            "seed": seed,
        },
        "subjects": subjects,
    }


def render_reference(actor_id: str, ref: RefSpec, out_size: int = 64) -> np.ndarray:
    """Render one ActorWorld reference request to (S, S, 3) uint8."""
    from wildactor.world import Actor, ActorWorldEditor, sample_scene, self_crop

    actor = Actor.from_id(actor_id)
    editor = ActorWorldEditor(out_size=out_size)
    if ref.actorworld == "three_view":
        return editor.three_view(actor).image
    if ref.actorworld == "view_aug":
        out = editor.rerender(actor, ref.region, ref.view)
    elif ref.actorworld == "self_crop":
        p = ref.params
        scene = sample_scene(str(p.get("scene", "studio")), np.random.default_rng(int(p.get("seed", 0))))
        img, lab = editor.render_view(actor, float(p.get("yaw", 0.0)), 8.0, None, scene)
        out = self_crop(img, lab, ref.region, 0, out_size)
    else:
        raise WildActorError(f"unknown ActorWorld render {ref.actorworld!r}")
    if out is None:
        raise WildActorError(f"ActorWorld render {ref.key()} of {actor_id} shows no visible {ref.region}")
    return out.image


def render_item_clip(
    item: BenchItem, actor_id: str | None = None, num_frames: int = 17, size: int = 64
) -> np.ndarray:
    """The exact clip an item's prompt describes, of `actor_id` (default: the item's own actor)."""
    from wildactor.world import Actor, Camera, ClipSpec, Motion, Scene, render_clip

    clip = item.prompt.labels.get("clip")
    if clip is None:
        raise WildActorError(f"{item.item_id}: prompt has no 'clip' labels, cannot render it")
    actor = Actor.from_id(actor_id or item.actor)
    spec = ClipSpec(
        actor=actor,
        motion=Motion(**clip["motion"]),
        scene=Scene(**clip["scene"]),
        camera=Camera(**clip["camera"]),
        num_frames=num_frames,
        size=(size, size),
    )
    return render_clip(spec).frames


def other_actor(item: BenchItem) -> str:
    """A deterministic different actor for the no-reference baseline (a perfect text-to-video model that
    follows the prompt but knows nothing of the referenced identity)."""
    from wildactor.bench.spec import stable_hash
    from wildactor.world import actor_id

    lo, hi = unseen_actor_range()
    idx = lo + stable_hash("noref:" + item.group) % (hi - lo)
    cand = actor_id(idx)
    return cand if cand != item.actor else actor_id(idx + 1 if idx + 1 < hi else lo)


def run_realism(out: Path, items: list[BenchItem], probes: Any) -> dict[str, Any]:
    """Realism of a run (`OUT/realism.json`): the Fréchet distance between its scored videos and the real clips
    their prompts describe (`bench/metrics/frechet.py`), next to the floor: the same real clips against the
    shots rendered with the no-reference baseline's other actors (what a perfect model that ignores the
    references scores). Over every item of `items` scored in `out`; n/a without probes or with < 2 videos."""
    import json

    from wildactor.bench.metrics.frechet import frechet_actorworld
    from wildactor.media import read_mp4

    generated, real, floor = [], [], []
    for item in items:
        path = Path(out) / "items" / f"{item.item_id}.json"
        if item.actor is None or not path.is_file():
            continue
        video = Path(json.loads(path.read_text())["video"])
        if not video.is_file():  # scored in an earlier run whose video was removed since: not part of the set
            continue
        frames = read_mp4(video)
        n, size = len(frames), frames.shape[1]
        generated.append(frames)
        real.append(render_item_clip(item, num_frames=n, size=size))
        floor.append(render_item_clip(item, other_actor(item), num_frames=n, size=size))
    fd = frechet_actorworld(generated, real, probes)
    base = frechet_actorworld(floor, real, probes)
    result = {
        "frechet_distance": fd.to_json(),
        "floor": base.to_json(),
        "clips": len(generated),
        "note": "each video vs the real render of its prompt's clip; floor: the same clips played by other "
        "held-out actors (the no-reference baseline). Biased upward for small sets: compare runs of one suite.",
    }
    (Path(out) / "realism.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
