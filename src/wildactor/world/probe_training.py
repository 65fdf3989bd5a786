"""Training and evaluation of the ActorWorld probes on fresh renders (CPU, minutes).

Train and held-out sets use disjoint actor-id ranges, so held-out accuracy is measured on identities
the probe never saw. Corruptions imitate generation artefacts: Gaussian blur, pixel noise, colour jitter.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from wildactor.data.schema import VIEW_BINS, angular_distance, view_bin
from wildactor.world.actors import NUM_IDENTITIES, Actor
from wildactor.world.camera import Camera
from wildactor.world.clips import render_clip, sample_clip_spec
from wildactor.world.motions import MOTION_KINDS, sample_motion
from wildactor.world.probes import (
    YAW_BINS,
    FrameProbe,
    MotionProbe,
    Probes,
    clip_to_tensor,
    frame_heads,
    frames_to_tensor,
)
from wildactor.world.renderer import render_scene
from wildactor.world.scenes import SCENE_KINDS, sample_scene

TRAIN_ACTORS = (0, 250_000)
HELDOUT_ACTORS = (300_000, NUM_IDENTITIES)
GRAPHIC_TRAIN_MAX_YAW = 100.0  # beyond this the print is hidden: no loss on it
GRAPHIC_EVAL_MAX_YAW = 45.0  # accuracy of the print is measured on front-view frames
CORRUPTIONS = ("blur", "noise", "colour_jitter")


@dataclass(frozen=True)
class ProbeTrainConfig:
    """Sizes of the render sets and the training schedule."""

    train_frames: int = 16_000
    eval_frames: int = 3_000
    train_clips: int = 1_800
    eval_clips: int = 600
    frame_epochs: int = 16
    motion_epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    threads: int = 1
    frame_width: int = 24
    motion_width: int = 24

    def __post_init__(self) -> None:
        for name in ("train_frames", "eval_frames", "train_clips", "eval_clips", "batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.frame_epochs < 0 or self.motion_epochs < 0:
            raise ValueError("epochs must be >= 0")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")


def render_probe_frames(
    n: int, seed: int, actor_range: tuple[int, int], progress: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """n random single-actor frames (N, 64, 64, 3) uint8 and integer targets per head, plus 'yaw'
    (degrees, float). Random actor, motion, time, scene, lighting, camera; the body stays in frame."""
    rng = np.random.default_rng(seed)
    heads = frame_heads()
    frames = np.empty((n, 64, 64, 3), np.uint8)
    targets = {k: np.empty(n, np.int64) for k in heads}
    yaws = np.empty(n, np.float64)
    i = 0
    bar = tqdm(total=n, desc="render frames", disable=not progress, leave=False)
    while i < n:
        actor = Actor.from_id(int(rng.integers(*actor_range)))
        kind = str(rng.choice(MOTION_KINDS))
        motion = sample_motion(kind, rng, yaw=None if kind == "walk_across" else float(rng.uniform(0, 360)))
        state = motion.state(float(rng.random()))
        scene = sample_scene(str(rng.choice(SCENE_KINDS)), rng)
        camera = Camera(elevation=float(rng.uniform(-5, 20)), distance=float(rng.uniform(2.9, 3.1)))
        img, (lab,) = render_scene([(actor, state)], scene, camera, 64)
        if lab.visibility < 0.9:
            continue
        frames[i] = img
        for name, idx in actor.attribute_indices().items():
            targets[name][i] = idx
        targets["view"][i] = VIEW_BINS.index(view_bin(lab.yaw))
        targets["yaw_bin"][i] = int(((lab.yaw + 15.0) % 360.0) // 30.0)
        targets["scene"][i] = SCENE_KINDS.index(scene.kind)
        yaws[i] = lab.yaw
        i += 1
        bar.update(1)
    bar.close()
    targets["yaw"] = yaws
    return frames, targets


def render_probe_clips(
    n: int, seed: int, actor_range: tuple[int, int], progress: bool = False
) -> tuple[torch.Tensor, np.ndarray]:
    """n random clips as grey probe tensors (N, 8, 64, 64) and motion targets (N,)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in tqdm(range(n), desc="render clips", disable=not progress, leave=False):
        kind = MOTION_KINDS[i % len(MOTION_KINDS)]
        actor = Actor.from_id(int(rng.integers(*actor_range)))
        spec = sample_clip_spec(
            actor,
            rng,
            motion=kind,
            num_frames=int(rng.integers(8, 13)),
            elevation_range=(-5, 20),
            distance_range=(2.9, 3.1),
        )
        xs.append(clip_to_tensor(render_clip(spec).frames))
        ys.append(MOTION_KINDS.index(kind))
    return torch.cat(xs), np.asarray(ys)


def corrupt(x01: torch.Tensor, kind: str, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Apply one corruption to images in [0, 1], (N, C, H, W). strength 1 = the evaluation level."""
    if kind == "blur":
        sigma = 1.0 * strength
        r = 2
        k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * max(sigma, 1e-3) ** 2))
        k = k / k.sum()
        c = x01.shape[1]
        x = F.conv2d(
            F.pad(x01, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c
        )
        return F.conv2d(
            F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c
        )
    if kind == "noise":
        return (x01 + 0.05 * strength * torch.randn(x01.shape, generator=gen)).clamp(0, 1)
    if kind == "colour_jitter":
        n = x01.shape[0]
        bright = 1 + 0.15 * strength * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
        gain = 1 + 0.06 * strength * (2 * torch.rand(n, x01.shape[1], 1, 1, generator=gen) - 1)
        mean = x01.mean(dim=(1, 2, 3), keepdim=True)
        contrast = 1 + 0.15 * strength * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
        return ((x01 - mean) * contrast + mean).mul(bright * gain).clamp(0, 1)
    raise ValueError(f"unknown corruption {kind!r}; expected one of {CORRUPTIONS}")


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Training augmentation on normalised frames: a random corruption on half of the batch."""
    x01 = x * 0.25 + 0.5
    out = x01.clone()
    for kind in CORRUPTIONS:
        sel = (torch.rand(len(x), generator=gen) < 0.2).nonzero().flatten()
        if len(sel):
            out[sel] = corrupt(out[sel], kind, gen, strength=float(torch.rand(1, generator=gen)) * 1.2)
    return (out - 0.5) / 0.25


def _frame_loss(logits: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> torch.Tensor:
    loss = torch.zeros(())
    for name, out in logits.items():
        if name == "top_graphic":
            keep = t["graphic_visible"]
            if keep.any():
                loss = loss + F.cross_entropy(out[keep], t[name][keep])
        else:
            loss = loss + F.cross_entropy(out, t[name])
    return loss


def _graphic_visible(yaws: np.ndarray, max_yaw: float) -> np.ndarray:
    return np.array([angular_distance(y, 0.0) <= max_yaw for y in yaws])


def train_frame_probe(
    frames: np.ndarray,
    targets: dict[str, np.ndarray],
    cfg: ProbeTrainConfig,
    progress: bool = False,
    init: FrameProbe | None = None,
) -> FrameProbe:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = init if init is not None else FrameProbe(frame_heads(), width=cfg.frame_width)
    t_all = {k: torch.as_tensor(v) for k, v in targets.items() if k != "yaw"}
    t_all["graphic_visible"] = torch.as_tensor(_graphic_visible(targets["yaw"], GRAPHIC_TRAIN_MAX_YAW))
    n = len(frames)
    steps = max(1, cfg.frame_epochs * ((n + cfg.batch_size - 1) // cfg.batch_size))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    model.train()
    bar = tqdm(total=steps, desc="train frame probe", disable=not progress, leave=False)
    for _ in range(cfg.frame_epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            x = _augment(frames_to_tensor(frames[idx.numpy()]), gen)  # uint8 kept in memory, floats per batch
            loss = _frame_loss(model(x), {k: v[idx] for k, v in t_all.items()})
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def train_motion_probe(
    clips: torch.Tensor,
    targets: np.ndarray,
    cfg: ProbeTrainConfig,
    progress: bool = False,
    init: MotionProbe | None = None,
) -> MotionProbe:
    torch.manual_seed(cfg.seed + 1)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    model = init if init is not None else MotionProbe(len(MOTION_KINDS), width=cfg.motion_width)
    y_all = torch.as_tensor(targets)
    n = len(clips)
    bs = min(cfg.batch_size, 64)
    steps = max(1, cfg.motion_epochs * ((n + bs - 1) // bs))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    model.train()
    bar = tqdm(total=steps, desc="train motion probe", disable=not progress, leave=False)
    for _ in range(cfg.motion_epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            x = clips[idx]
            noisy = torch.rand(len(idx), 1, 1, 1, generator=gen) < 0.3
            x = torch.where(noisy, x + 0.15 * torch.randn(x.shape, generator=gen), x)
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    return model.eval()


@torch.no_grad()
def evaluate_frame_probe(
    model: FrameProbe,
    frames: np.ndarray,
    targets: dict[str, np.ndarray],
    corruption: str | None = None,
    seed: int = 0,
) -> dict[str, float | None]:
    """Held-out accuracy per head; the top print only on frames within GRAPHIC_EVAL_MAX_YAW of frontal (None when
    no frame is: an accuracy over no frames is undefined, and NaN is not valid JSON for the probe card)."""
    x = frames_to_tensor(frames)
    if corruption is not None:
        gen = torch.Generator().manual_seed(seed)
        x = (corrupt(x * 0.25 + 0.5, corruption, gen) - 0.5) / 0.25
    logits: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(x), 512):
        for k, v in model(x[i : i + 512]).items():
            logits.setdefault(k, []).append(v)
    visible = _graphic_visible(targets["yaw"], GRAPHIC_EVAL_MAX_YAW)
    acc = {}
    for k, parts in logits.items():
        pred = torch.cat(parts).argmax(-1).numpy()
        ok = pred == targets[k]
        if k == "top_graphic":
            ok = ok[visible]
        acc[k] = round(float(ok.mean()), 4) if ok.size else None
    return acc


@torch.no_grad()
def evaluate_motion_probe(model: MotionProbe, clips: torch.Tensor, targets: np.ndarray) -> float:
    pred = torch.cat([model(clips[i : i + 256]) for i in range(0, len(clips), 256)]).argmax(-1).numpy()
    return round(float((pred == targets).mean()), 4)


def train_probes(cfg: ProbeTrainConfig, progress: bool = True, init: Probes | None = None) -> Probes:
    """Render train/held-out sets, train both probes (from scratch, or continuing `init` on fresh renders
    when a seed other than init's is used), and measure held-out accuracy (clean + corrupted)."""
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    train_x, train_t = render_probe_frames(cfg.train_frames, cfg.seed, TRAIN_ACTORS, progress)
    eval_x, eval_t = render_probe_frames(cfg.eval_frames, cfg.seed + 10_000, HELDOUT_ACTORS, progress)
    train_c, train_m = render_probe_clips(cfg.train_clips, cfg.seed + 1, TRAIN_ACTORS, progress)
    eval_c, eval_m = render_probe_clips(cfg.eval_clips, cfg.seed + 10_001, HELDOUT_ACTORS, progress)
    t_render = time.perf_counter() - t0
    frame = train_frame_probe(train_x, train_t, cfg, progress, init.frame.train() if init else None)
    motion = train_motion_probe(train_c, train_m, cfg, progress, init.motion.train() if init else None)
    t_train = time.perf_counter() - t0 - t_render
    heldout = {"clean": evaluate_frame_probe(frame, eval_x, eval_t)}
    for kind in CORRUPTIONS:
        heldout[kind] = evaluate_frame_probe(frame, eval_x, eval_t, corruption=kind, seed=cfg.seed)
    card = {
        "frame_heads": {k: list(v) for k, v in frame_heads().items()},
        "motion_classes": list(MOTION_KINDS),
        "frame_width": cfg.frame_width,
        "motion_width": cfg.motion_width,
        "yaw_bins": YAW_BINS,
        "graphic_eval_max_yaw": GRAPHIC_EVAL_MAX_YAW,
        "train_config": asdict(cfg),
        "continued_from": (init.card.get("continued_from", []) + [init.card["train_config"]]) if init else [],
        "train_actor_ids": list(TRAIN_ACTORS),
        "heldout_actor_ids": list(HELDOUT_ACTORS),
        "heldout_frame_accuracy": heldout,
        "heldout_motion_accuracy": evaluate_motion_probe(motion, eval_c, eval_m),
        "render_seconds": round(t_render, 1),
        "train_seconds": round(t_train, 1),
        "attributes_target": 0.97,
    }
    return Probes(frame=frame, motion=motion, card=card)
