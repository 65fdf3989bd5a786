"""Actor-Bench runner: make (or find) one video per suite item, score it, write one JSON per item.

Output folder layout::

    OUT/run.json               what was run: method, params, video source, suite, metric back-ends
    OUT/references/...         ActorWorld references as rendered (for inspection)
    OUT/videos/<item_id>.mp4   generated / baseline videos (not written for --videos)
    OUT/items/<item_id>.json   per-item metric results; its presence marks the item finished
    OUT/rejects.jsonl          items that could not be scored in the last run, with the reason

A rerun skips finished items (resumable); a storyline is generated in one pipeline call (shared reference
cache) only if one of its shots is missing.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wildactor.bench.metrics.base import MetricResult, RefImage, sample_indices
from wildactor.bench.opens2v_scorer import OpenS2VConfig
from wildactor.bench.spec import BenchItem, Suite
from wildactor.errors import WildActorError
from wildactor.paths import outside_root

SOURCES = ("videos", "model", "baseline")


@dataclass(frozen=True)
class MetricConfig:
    """Metric back-ends. face: `dlib` | `dlib:DIR` | `insightface:DIR`; clip / vlm: local model folders
    (None = that back-end reports n/a); probes: ActorWorld probe folder (None = the shipped probes);
    opens2v: OpenS2V-Eval's metrics too (None = not scored)."""

    face: str = "dlib"
    clip: str | None = None
    vlm: str | None = None
    probes: str | None = None
    device: str = "cpu"
    opens2v: OpenS2VConfig | None = None

    def __post_init__(self) -> None:
        if self.face.partition(":")[0] not in ("dlib", "insightface", "arcface"):
            raise ValueError(f"face back-end must be dlib, dlib:DIR or insightface:DIR, got {self.face!r}")


@dataclass(frozen=True)
class RunConfig:
    """Where videos come from and how the run is labelled in the report."""

    method: str
    source: str
    params: str = ""
    videos_dir: str | None = None
    model_dir: str | None = None
    lora: str | None = None
    baseline: str | None = None
    no_references: bool = False
    num_frames: int | None = None
    size: int | None = None
    steps: int | None = None
    allow_outside_root: bool = False  # videos_dir entries may be links out of videos_dir

    def __post_init__(self) -> None:
        if not self.method.strip():
            raise ValueError("method name must not be empty")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        need = {"videos": "videos_dir", "model": "model_dir", "baseline": "baseline"}[self.source]
        if getattr(self, need) is None:
            raise ValueError(f"source {self.source!r} needs {need}")
        for name in ("num_frames", "size", "steps"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")

    def identity(self) -> dict[str, Any]:
        """The fields that must match for a rerun to reuse an output folder."""
        d = asdict(self)
        return {
            k: d[k]
            for k in ("method", "source", "videos_dir", "model_dir", "lora", "baseline", "no_references")
        }


class Scorer:
    """Builds the metric back-ends once and scores one item's frames."""

    def __init__(self, cfg: MetricConfig, actorworld: bool) -> None:
        from wildactor.bench.metrics.face import build_face_backend

        self.cfg = cfg
        self.face = build_face_backend(cfg.face)
        self.probes = None
        if actorworld:
            from wildactor.bench.metrics.actorworld import build_probe_backend, memoized_probes

            self.probes = memoized_probes(build_probe_backend(cfg.probes))
        self.clip = None
        if cfg.clip is not None:
            from wildactor.bench.metrics.semantic import build_clip_backend

            self.clip = build_clip_backend(cfg.clip, cfg.device)
        self.vlm = None
        if cfg.vlm is not None:
            from wildactor.bench.metrics.vlm import build_vlm_backend

            self.vlm = build_vlm_backend(cfg.vlm, cfg.device)
        self.opens2v = None
        if cfg.opens2v is not None:
            from wildactor.bench.opens2v_scorer import OpenS2VScorer

            self.opens2v = OpenS2VScorer(cfg.opens2v)

    def describe(self) -> dict[str, str]:
        def name(b: Any) -> str:
            if b is None:
                return "not configured"
            reason = getattr(b, "reason", None)
            return f"{b.name} (n/a: {reason})" if reason else getattr(b, "name", type(b).__name__)

        extra = self.opens2v.describe() if self.opens2v is not None else {}
        return extra | {
            "face": name(self.face),
            "probes": f"ActorWorld probes ({self.cfg.probes or 'shipped with the package'})"
            if self.probes is not None and not hasattr(self.probes, "reason")
            else name(self.probes),
            "clip": name(self.clip),
            "vlm": name(self.vlm),
        }

    def score(self, item: BenchItem, frames: np.ndarray, refs: list[RefImage]) -> dict[str, MetricResult]:
        from wildactor.bench.metrics import body, copypaste, face, motion, semantic

        out: dict[str, MetricResult] = {"face": face.face_identity(frames, refs, self.face)}
        labels = item.prompt.labels
        exact = item.actor is not None and self.probes is not None
        if exact:
            from wildactor.world import Actor

            out["body"] = body.body_consistency_actorworld(
                frames, Actor.from_id(item.actor).attributes(), self.probes
            )
        if self.vlm is not None:
            out["body" if not exact else "body_vlm"] = body.body_consistency_vlm(frames, refs, self.vlm)
        if "body" not in out:
            out["body"] = MetricResult.na(
                "body", "none", "no body judge configured (give --vlm DIR, or run an ActorWorld suite)"
            )
        if exact and "scene" in labels and "motion" in labels:
            out["semantic"] = semantic.semantic_actorworld(
                frames, labels["scene"], labels["motion"], self.probes
            )
        if self.vlm is not None:
            out["semantic" if "semantic" not in out else "semantic_vlm"] = semantic.semantic_vlm(
                frames, item.prompt.text, self.vlm
            )
        if self.clip is not None:
            out["semantic" if "semantic" not in out else "semantic_clip"] = semantic.semantic_clip(
                frames, item.prompt.text, self.clip
            )
        if "semantic" not in out:
            out["semantic"] = MetricResult.na(
                "semantic", "none", "no semantic back-end configured (give --clip DIR or --vlm DIR)"
            )
        out["copy_paste"] = copypaste.copy_paste(frames, refs)
        if exact:
            if hasattr(self.probes, "reason"):
                out["pose_spread"] = MetricResult.na("pose_spread", "actorworld-probes", self.probes.reason)
            else:
                idx = sample_indices(len(frames), 32)
                out["pose_spread"] = copypaste.pose_spread(
                    [v["yaw"] for v in self.probes.predict_view(frames[idx])]
                )
        out["motion"] = motion.motion_amplitude(frames)
        if self.opens2v is not None:
            out.update(self.opens2v.score(item, frames, refs))
        return out


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


class ReferenceStore:
    """Loads (or renders, for ActorWorld) each subject's references once per setting."""

    def __init__(self, suite: Suite, out: Path) -> None:
        self.suite = suite
        self.out = out
        self._cache: dict[tuple[str, str], list[RefImage]] = {}

    def get(self, item: BenchItem) -> list[RefImage]:
        key = (item.subject, item.setting)
        if key not in self._cache:
            self._cache[key] = [self._load(item, r, k) for k, r in enumerate(item.references)]
        return self._cache[key]

    def _load(self, item: BenchItem, ref: Any, k: int) -> RefImage:
        from PIL import Image

        if ref.path is not None:
            from wildactor.media import load_image

            img = np.asarray(load_image(self.suite.root / ref.path))
        else:
            from wildactor.bench.actorworld import render_reference

            if item.actor is None:
                raise WildActorError(f"subject {item.subject}: ActorWorld reference without an 'actor'")
            path = self.out / "references" / item.subject / item.setting / f"{k}_{ref.key()}.png"
            if path.is_file():
                img = np.asarray(Image.open(path).convert("RGB"))
            else:
                img = render_reference(item.actor, ref)
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(path)
        return RefImage(img, ref.region, ref.view)


class VideoMaker:
    """Produces the videos of a generation group (a storyline or a single prompt) for model / baseline runs."""

    def __init__(self, cfg: RunConfig, suite: Suite) -> None:
        self.cfg = cfg
        v = suite.video
        self.num_frames = cfg.num_frames or v.num_frames
        self.height = cfg.size or v.height
        self.width = cfg.size or v.width
        self.steps = cfg.steps or v.steps
        self.guidance = v.guidance_scale
        self.fps = v.fps
        self._pipe = None

    def pipeline(self) -> Any:
        if self._pipe is None:
            from wildactor.generate import quiet_weight_loading

            with quiet_weight_loading():
                if self.cfg.model_dir == "default":
                    from wildactor.default_model import load_default_model

                    self._pipe = load_default_model().pipeline
                else:
                    from wildactor.pipeline import WildActorPipeline

                    self._pipe = WildActorPipeline.from_pretrained(self.cfg.model_dir, lora=self.cfg.lora)
            self._pipe.set_progress_bar_config(disable=True)
        return self._pipe

    def make(self, items: list[BenchItem], refs: list[RefImage], paths: list[Path]) -> None:
        from wildactor.media import write_mp4

        if self.cfg.source == "baseline":
            from wildactor.bench.baselines import baseline_video

            for it, p in zip(items, paths):
                write_mp4(
                    p,
                    baseline_video(self.cfg.baseline, it, refs, self.num_frames, self.height, self.width),
                    fps=self.fps,
                )
            return
        from wildactor.pipeline import Reference

        references = [] if self.cfg.no_references else [Reference(r.image, r.region) for r in refs]

        def save(i: int, frames: np.ndarray) -> None:
            write_mp4(paths[i], frames, fps=self.fps)

        self.pipeline()(
            prompts=[it.prompt.text for it in items],
            references=references,
            height=self.height,
            width=self.width,
            num_frames=self.num_frames,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            seed=items[0].seed,
            on_shot_end=save,
        )


def select_items(suite: Suite, subjects: int | None = None, limit: int | None = None) -> list[BenchItem]:
    """The suite's items, optionally only those of its first `subjects` subjects and at most `limit` items."""
    items = suite.items()
    if subjects is not None:
        keep = {s.id for s in suite.subjects[:subjects]}
        items = [it for it in items if it.subject in keep]
    if limit is not None:
        # Never split a storyline: it is generated in one call.
        groups = list(OrderedDict.fromkeys(it.group for it in items))
        kept, n = set(), 0
        for g in groups:
            size = sum(it.group == g for it in items)
            if n + size > limit and n > 0:
                break
            kept.add(g)
            n += size
        items = [it for it in items if it.group in kept]
    return items


def run_bench(
    suite: Suite,
    out: str | os.PathLike[str],
    cfg: RunConfig,
    metrics: MetricConfig | None = None,
    subjects: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Generate (or find) and score every selected item; returns counts {scored, skipped, rejected}.

    ``log`` (default: printed above the progress bar) gets the item count up front and, once the first storyline
    is done, an estimate of the time left measured on it."""
    from tqdm import tqdm

    from wildactor.media import read_mp4

    metrics = metrics or MetricConfig()
    if cfg.source == "model":
        # Fail before any work rather than rejecting every item one by one.
        if cfg.model_dir != "default":
            from wildactor.pipeline import check_model_folder

            check_model_folder(cfg.model_dir)
        if cfg.lora is not None and not Path(cfg.lora).is_file():
            raise WildActorError(f"reference LoRA file not found: {cfg.lora}")
    out = Path(out)
    (out / "items").mkdir(parents=True, exist_ok=True)
    run_file = out / "run.json"
    prev = json.loads(run_file.read_text()) if run_file.is_file() else None
    if prev is not None and prev.get("config", {}).get("identity") != cfg.identity():
        raise WildActorError(
            f"{out} holds a different run ({prev.get('config', {}).get('identity')}); use another output folder"
        )
    items = select_items(suite, subjects, limit)
    if not items:
        raise WildActorError("no items selected from the suite")
    todo = [it for it in items if not (out / "items" / f"{it.item_id}.json").is_file()]
    scorer = Scorer(metrics, suite.is_actorworld)
    scored_before = any((out / "items").glob("*.json"))
    if prev is not None and scored_before:
        # Same settings but a back-end that appeared or vanished (e.g. probe weights installed since) would mix
        # n/a and numbers, or two back-ends, in one table.
        before = (prev.get("metrics"), prev.get("backends"))
        if before != (asdict(metrics), scorer.describe()):
            raise WildActorError(
                f"{out} was scored with other metric back-ends ({before[1]}); use another output "
                f"folder, or delete {out / 'items'} to rescore every item with the current ones"
            )
    _write_json(
        run_file,
        {
            "method": cfg.method,
            "params": cfg.params,
            "suite": suite.name,
            "suite_description": suite.description,
            "config": {"identity": cfg.identity(), **asdict(cfg)},
            "metrics": asdict(metrics),
            "backends": scorer.describe(),
            "suite_items": len(suite.items()),
        },
    )
    refs = ReferenceStore(suite, out)
    maker = VideoMaker(cfg, suite) if cfg.source != "videos" else None
    groups: OrderedDict[str, list[BenchItem]] = OrderedDict()
    for it in todo:
        groups.setdefault(it.group, []).append(it)
    rejects: list[dict[str, str]] = []
    scored = 0
    log = log or tqdm.write
    total = len(suite.items())
    subset = "" if len(items) == total else f" (a subset of the suite's {total})"
    log(f"{suite.name}: {len(items)} items selected{subset}, {len(todo)} to {_verb(cfg)}")
    if len(todo) > 100:
        log("a long run: --subjects N or --limit N run a subset; rerun the same command to resume")
    bar = tqdm(total=len(todo), desc=f"bench {cfg.method}", unit="item", disable=not progress)
    started, estimated = time.perf_counter(), False
    for group_items in groups.values():
        if scored and not estimated and scored < len(todo):
            estimated = True
            per_item = (time.perf_counter() - started) / scored
            left = per_item * (len(todo) - scored)
            log(
                f"estimate: {per_item:.1f} s an item here, about {_duration(left)} for the {len(todo) - scored} left"
            )
        try:
            ref_images = refs.get(group_items[0])
        except WildActorError as exc:
            rejects += [
                {"item_id": it.item_id, "stage": "references", "reason": str(exc)} for it in group_items
            ]
            bar.update(len(group_items))
            continue
        if cfg.source == "videos":
            paths = [Path(cfg.videos_dir) / f"{it.item_id}.mp4" for it in group_items]
        else:
            paths = [out / "videos" / f"{it.item_id}.mp4" for it in group_items]
            if not all(p.is_file() for p in paths):
                # The whole storyline is regenerated so its shots share one reference cache and seed.
                all_shots = [it for it in items if it.group == group_items[0].group]
                all_paths = [out / "videos" / f"{it.item_id}.mp4" for it in all_shots]
                try:
                    maker.make(all_shots, ref_images, all_paths)
                except WildActorError as exc:
                    rejects += [
                        {"item_id": it.item_id, "stage": "generate", "reason": str(exc)} for it in group_items
                    ]
                    bar.update(len(group_items))
                    continue
        for it, path in zip(group_items, paths):
            bar.update(1)
            why = None
            if cfg.source == "videos" and not cfg.allow_outside_root:
                why = outside_root(cfg.videos_dir, path.name)
            if why is not None:
                rejects.append(
                    {
                        "item_id": it.item_id,
                        "stage": "video",
                        "reason": f"{why} (--allow-outside-root allows it)",
                    }
                )
                continue
            if not path.is_file():
                rejects.append(
                    {"item_id": it.item_id, "stage": "video", "reason": f"video not found: {path}"}
                )
                continue
            try:
                frames = read_mp4(path)
            except Exception as exc:  # any decoder failure is a reject row, never a crash
                rejects.append(
                    {
                        "item_id": it.item_id,
                        "stage": "video",
                        "reason": f"cannot decode {path}: {str(exc).splitlines()[0]}",
                    }
                )
                continue
            t0 = time.perf_counter()
            results = scorer.score(it, frames, ref_images)
            _write_json(
                out / "items" / f"{it.item_id}.json",
                {
                    "item": {
                        "item_id": it.item_id,
                        "subject": it.subject,
                        "setting": it.setting,
                        "axis": it.axis,
                        "group": it.group,
                        "shot": it.shot,
                        "actor": it.actor,
                        "prompt": it.prompt.text,
                        "labels": {k: v for k, v in it.prompt.labels.items() if k != "clip"},
                    },
                    "video": str(path),
                    "num_frames": int(len(frames)),
                    "score_seconds": round(time.perf_counter() - t0, 3),
                    "metrics": {k: r.to_json() for k, r in results.items()},
                },
            )
            scored += 1
    bar.close()
    with open(out / "rejects.jsonl", "w") as f:
        for r in rejects:
            f.write(json.dumps(r) + "\n")
    if suite.is_actorworld and scorer.probes is not None:
        from wildactor.bench.actorworld import run_realism

        run_realism(out, items, scorer.probes)  # a set-level metric: over every scored item, after each run
    return {"scored": scored, "skipped": len(items) - len(todo), "rejected": len(rejects)}


def _verb(cfg: RunConfig) -> str:
    return "score" if cfg.source == "videos" else "generate and score"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
