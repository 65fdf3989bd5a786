"""`wildactor world make`: an Actor-18M-style dataset of ActorWorld clips, references and a manifest.

Layout of OUT::

    world.json                       the settings (a resumed run must use the same ones)
    clips/<actor>/<clip>.mp4         H.264 clips
    labels/<actor>/<clip>.json       exact per-frame labels (yaw, boxes, visibility) + clip facts
    refs/<actor>/*.png               self-crop, view-aug, attr-aug and three-view references
    records/<actor>.jsonl            finished actors (resume skips them)
    manifest.jsonl / .parquet        every record (extra field ``split``: train | heldout)
    manifest_train.jsonl, manifest_heldout.jsonl
    stats.json / stats.md            Table-1-style counts and F/S/B % per region x source

Everything is drawn from ``numpy.random.default_rng([seed, actor_index])``, so a dataset is a pure
function of its settings, whatever order or how many runs made it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wildactor.data.schema import (
    VIEW_BINS,
    ManifestRecord,
    ReferenceRecord,
    read_manifest,
    validate_records,
    view_bin,
    write_manifest,
)
from wildactor.errors import WildActorError
from wildactor.world.actors import Actor, actor_id
from wildactor.world.clips import ClipSpec, render_clip, sample_clip_spec
from wildactor.world.motions import MOTION_KINDS
from wildactor.world.prompts import clip_prompt
from wildactor.world.references import VIEW_AUG_ANGLES, ActorWorldEditor, Reference, self_crop
from wildactor.world.scenes import SCENE_KINDS, sample_scene

PAPER_SELF_CROP_BIAS = (0.628, 0.366, 0.006)  # Actor-18M raw self-crops, F / S / B


@dataclass(frozen=True)
class WorldConfig:
    """Settings of `world make`. frontal_bias: probabilities of front / side / back for the view a clip's
    self-crops are taken from; heldout_fraction: share of actors kept for evaluation."""

    actors: int = 8
    clips_per_actor: int = 4
    seed: int = 0
    first_actor: int = 0
    num_frames: int = 17  # 1 + 4k, what a Wan-style VAE (4x in time) expects
    size: int = 64
    fps: int = 8
    ref_size: int = 64
    frontal_bias: tuple[float, float, float] = PAPER_SELF_CROP_BIAS
    heldout_fraction: float = 0.1
    view_aug_views: tuple[str, ...] = tuple(VIEW_AUG_ANGLES)
    attr_aug_per_clip: int = 1
    three_view: bool = True
    crf: int = 16
    motions: tuple[str, ...] = field(default=MOTION_KINDS)
    # "described": prompts name every identity attribute; "person": only scene and motion ("a person walks
    # ..."), so a model trained on them must take identity from the references.
    prompts: str = "described"
    # Where View-Aug references are rendered. "other": a scene of another kind than the clip's (one per clip),
    # so references carry identity and viewpoint but never the clip's background, and a model trained on them
    # takes the scene from the prompt; "clip": the clip's own scene (references then leak the background, and
    # a model learns to copy it from them).
    view_aug_scene: str = "other"

    def __post_init__(self) -> None:
        if self.actors < 1 or self.clips_per_actor < 1:
            raise ValueError("actors and clips_per_actor must be >= 1")
        if self.first_actor < 0:
            raise ValueError(f"first_actor must be >= 0, got {self.first_actor}")
        if not 2 <= self.num_frames <= 257:
            raise ValueError(f"num_frames must be in [2, 257], got {self.num_frames}")
        if self.size < 16 or self.size % 2 or self.size > 1024:
            raise ValueError(f"size must be even and in [16, 1024] (H.264 needs even sizes), got {self.size}")
        if self.ref_size < 8:
            raise ValueError(f"ref_size must be >= 8, got {self.ref_size}")
        if (
            len(self.frontal_bias) != 3
            or min(self.frontal_bias) < 0
            or abs(sum(self.frontal_bias) - 1) > 1e-6
        ):
            raise ValueError(
                f"frontal_bias must be three non-negative numbers (F, S, B) summing to 1, got {self.frontal_bias}"
            )
        if self.view_aug_scene not in ("other", "clip"):
            raise ValueError(f"view_aug_scene must be 'other' or 'clip', got {self.view_aug_scene!r}")
        if self.prompts not in ("described", "person"):
            raise ValueError(f"prompts must be 'described' or 'person', got {self.prompts!r}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        bad = [v for v in self.view_aug_views if v not in VIEW_AUG_ANGLES]
        if bad:
            raise ValueError(f"unknown view_aug_views {bad}; expected some of {tuple(VIEW_AUG_ANGLES)}")
        bad = [m for m in self.motions if m not in MOTION_KINDS]
        if bad or not self.motions:
            raise ValueError(f"motions must be a non-empty subset of {MOTION_KINDS}, got {self.motions}")
        if self.attr_aug_per_clip < 0:
            raise ValueError("attr_aug_per_clip must be >= 0")


def heldout_actors(cfg: WorldConfig) -> set[str]:
    """Actor ids of the held-out split: a seeded choice of round(fraction * N) actors (at least one
    when the fraction is positive and there are two actors or more)."""
    n_held = int(round(cfg.heldout_fraction * cfg.actors))
    if cfg.heldout_fraction > 0 and cfg.actors >= 2:
        n_held = max(n_held, 1)
    order = np.random.default_rng([cfg.seed, 2**31 - 1]).permutation(cfg.actors)
    return {actor_id(cfg.first_actor + int(i)) for i in order[:n_held]}


def _yaw_in_bin(bin_name: str, rng: np.random.Generator) -> float:
    if bin_name == "front":
        return float(rng.uniform(-45, 45) % 360)
    if bin_name == "back":
        return float(rng.uniform(135, 225))
    return float((rng.choice([90.0, 270.0]) + rng.uniform(-45, 45)) % 360)


def _pick_frame(bins: list[str], ok: list[bool], target: str, rng: np.random.Generator) -> int | None:
    """A frame in the target view bin when there is one, else any usable frame."""
    usable = [i for i, good in enumerate(ok) if good]
    if not usable:
        return None
    matching = [i for i in usable if bins[i] == target]
    pool = matching or usable
    return int(pool[int(rng.integers(len(pool)))])


def _clip_spec(actor: Actor, cfg: WorldConfig, rng: np.random.Generator) -> tuple[ClipSpec, str]:
    target = VIEW_BINS[int(rng.choice(3, p=np.asarray(cfg.frontal_bias)))]
    motions = [m for m in cfg.motions if m != "walk_across" or target == "side"] or list(cfg.motions)
    motion = str(motions[int(rng.integers(len(motions)))])
    yaw = None if motion == "walk_across" else _yaw_in_bin(target, rng)
    spec = sample_clip_spec(
        actor, rng, motion=motion, yaw=yaw, num_frames=cfg.num_frames, size=(cfg.size, cfg.size), fps=cfg.fps
    )
    return spec, target


def _save_ref(ref: Reference, out: Path, rel: str, extra_meta: dict | None = None) -> ReferenceRecord:
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.png")
    ref.save(tmp)
    tmp.replace(path)
    return ref.to_record(rel, **(extra_meta or {}))


def make_actor(cfg: WorldConfig, index: int, out: Path, split: str, write_mp4) -> list[ManifestRecord]:
    """Render every clip and reference of one actor; return its manifest records."""
    aid = actor_id(index)
    actor = Actor.from_id(aid)
    rng = np.random.default_rng([cfg.seed, index])
    editor = ActorWorldEditor(out_size=cfg.ref_size, render_size=max(3 * cfg.ref_size, 96))
    three = None
    if cfg.three_view:
        three = _save_ref(editor.three_view(actor), out, f"refs/{aid}/three_view.png")
    records = []
    for k in range(cfg.clips_per_actor):
        spec, target = _clip_spec(actor, cfg, rng)
        clip = render_clip(spec)
        name = f"clip_{k:03d}"
        video_rel, labels_rel = f"clips/{aid}/{name}.mp4", f"labels/{aid}/{name}.json"
        write_mp4(out / video_rel, clip.frames, fps=cfg.fps, crf=cfg.crf)
        (out / labels_rel).parent.mkdir(parents=True, exist_ok=True)
        (out / labels_rel).write_text(json.dumps(clip.label_dict()) + "\n")

        refs: list[ReferenceRecord] = []
        bins = [view_bin(lb.yaw) for lb in clip.labels]
        body_ok = [lb.visibility >= 0.45 and lb.person_box is not None for lb in clip.labels]
        frame = _pick_frame(bins, body_ok, target, rng)
        for region in ("body", "face"):
            if frame is None:
                break
            ref = self_crop(clip.frames[frame], clip.labels[frame], region, frame, cfg.ref_size)
            if ref is not None:
                refs.append(_save_ref(ref, out, f"refs/{aid}/{name}_{region}_self_crop.png"))
        state = spec.motion.state(frame / max(cfg.num_frames - 1, 1)) if frame is not None else None
        aug_scene = spec.scene
        if cfg.view_aug_scene == "other":  # own stream: the clip stream above stays as it was
            scene_rng = np.random.default_rng([cfg.seed, index, k, 1])
            others = [kind for kind in SCENE_KINDS if kind != spec.scene.kind]
            aug_scene = sample_scene(others[int(scene_rng.integers(len(others)))], scene_rng)
        for region in ("face", "body"):
            for view in cfg.view_aug_views:
                ref = editor.rerender(actor, region, view, state, aug_scene, "view_aug", frame)
                if ref is not None:
                    rel = f"refs/{aid}/{name}_{region}_view_aug_{view}.png"
                    refs.append(_save_ref(ref, out, rel, {"scene": aug_scene.kind}))
        if cfg.attr_aug_per_clip and frame is not None:
            yaw = clip.labels[frame].yaw
            for j, ref in enumerate(editor.attr_aug(actor, yaw, state, rng, cfg.attr_aug_per_clip, frame)):
                refs.append(_save_ref(ref, out, f"refs/{aid}/{name}_body_attr_aug_{j}.png"))
        if three is not None:
            refs.append(three)
        records.append(
            ManifestRecord(
                video=video_rel,
                prompt=clip_prompt(spec, describe=cfg.prompts == "described"),
                actor_id=aid,
                source="actorworld",
                width=cfg.size,
                height=cfg.size,
                duration_sec=spec.duration_sec,
                refs=refs,
                extra={
                    "split": split,
                    "labels": labels_rel,
                    "motion": spec.motion.kind,
                    "scene": spec.scene.kind,
                },
            )
        )
    return records


def reference_stats(records: list[ManifestRecord]) -> dict:
    """Table-1-style statistics over unique reference files: region x source -> count and F/S/B %.
    Canonical sheets and top-down / bottom-up views count in the bin of their yaw."""
    seen: dict[str, ReferenceRecord] = {}
    for rec in records:
        for ref in rec.refs:
            seen.setdefault(ref.path, ref)
    rows: dict[tuple[str, str], list[str]] = {}
    for ref in seen.values():
        rows.setdefault((ref.region, ref.source or "unknown"), []).append(view_bin(ref.angle or 0.0))
    table = []
    for (region, source), bins in sorted(rows.items()):
        n = len(bins)
        table.append(
            {
                "region": region,
                "source": source,
                "count": n,
                **{b: round(100.0 * bins.count(b) / n, 1) for b in VIEW_BINS},
            }
        )
    total = sum(r["count"] for r in table)
    return {
        "clips": len(records),
        "actors": len({r.actor_id for r in records}),
        "videos_seconds": round(sum(r.duration_sec for r in records), 2),
        "references": total,
        "table": table,
    }


def stats_markdown(stats: dict) -> str:
    lines = [
        f"ActorWorld: {stats['actors']} actors, {stats['clips']} clips, {stats['references']} reference images",
        "",
        "| region | source | count | F % | S % | B % |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in stats["table"]:
        lines.append(
            f"| {r['region']} | {r['source']} | {r['count']} | {r['front']} | {r['side']} | {r['back']} |"
        )
    return "\n".join(lines) + "\n"


def make_world(cfg: WorldConfig, out: str | os.PathLike[str], progress: bool = True) -> dict:
    """Write (or finish) the dataset in `out`; return the statistics. Resumable: finished actors are
    kept, unfinished ones are redone."""
    try:
        from wildactor.media import write_mp4
    except ImportError:  # pragma: no cover - media.py ships with the package
        raise WildActorError("wildactor.media is missing: cannot write MP4 clips") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps(asdict(cfg)))
    cfg_path = out / "world.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != settings:
            changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise WildActorError(
                f"{out} was made with other settings ({', '.join(changed)}); use a new --out folder"
            )
    else:
        cfg_path.write_text(json.dumps(settings, indent=2) + "\n")
    held = heldout_actors(cfg)
    (out / "records").mkdir(exist_ok=True)
    indices = range(cfg.first_actor, cfg.first_actor + cfg.actors)
    for index in tqdm(indices, desc="actors", disable=not progress):
        aid = actor_id(index)
        rec_path = out / "records" / f"{aid}.jsonl"
        if rec_path.exists():
            continue
        records = make_actor(cfg, index, out, "heldout" if aid in held else "train", write_mp4)
        write_manifest(records, rec_path)
    all_records: list[ManifestRecord] = []
    for index in indices:
        all_records.extend(read_manifest(out / "records" / f"{actor_id(index)}.jsonl"))
    problems = validate_records(all_records, root=out)
    if problems:  # pragma: no cover - a bug, not a user error
        raise RuntimeError(f"ActorWorld wrote an invalid manifest: {problems[:3]}")
    write_manifest(all_records, out / "manifest.jsonl")
    write_manifest(all_records, out / "manifest.parquet")
    for split in ("train", "heldout"):
        write_manifest(
            [r for r in all_records if r.extra.get("split") == split], out / f"manifest_{split}.jsonl"
        )
    stats = reference_stats(all_records)
    stats["splits"] = {s: sum(r.extra.get("split") == s for r in all_records) for s in ("train", "heldout")}
    stats["frontal_bias"] = list(cfg.frontal_bias)
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    (out / "stats.md").write_text(stats_markdown(stats))
    return stats
