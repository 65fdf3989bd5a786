"""Stage 4 — point-tracking consistency at 8 fps over at most 32 frames.

Points seeded inside the person box in the first frame are tracked to the last; the track ratio is
the share of points that stay tracked (forward-backward error below `fb_error_px` at every step) and
inside the person box (grown by `box_margin`) in every frame, among the points that stay in the
frame: a point that leaves the picture (a zoom-in, a pan) is not inconsistent, so it counts neither
way. A ratio below `min_ratio` (0.60) means the subject does not persist (cut, occlusion, another
person taking over) and the clip is rejected.

Back-ends: ``lk`` (default) OpenCV pyramidal Lucas-Kanade with a forward-backward check; ``cotracker``
CoTracker3 from a local checkout of its repository plus checkpoint (``tracking.cotracker_path``). That
folder's ``hubconf.py`` is run as Python code by ``torch.hub.load(..., source="local")``: point it only at
a checkout you trust.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildactor.data.curate.stage import Item, Stage, reject
from wildactor.data.curate.video import DecodeError, read_frames, sample_times
from wildactor.errors import WildActorError


def interpolate_box(samples: list[dict], t: float) -> list[float] | None:
    """Person box at time t, linearly interpolated between the detection samples that have one."""
    pts = [(s["time"], s["person"]) for s in samples if s["person"] is not None]
    if not pts:
        return None
    if t <= pts[0][0]:
        return list(pts[0][1])
    if t >= pts[-1][0]:
        return list(pts[-1][1])
    for (t0, b0), (t1, b1) in zip(pts[:-1], pts[1:]):
        if t0 <= t <= t1:
            a = (t - t0) / max(t1 - t0, 1e-9)
            return [(1 - a) * u + a * v for u, v in zip(b0, b1)]
    return list(pts[-1][1])


def grow(box: list[float], margin: float) -> list[float]:
    w, h = box[2] - box[0], box[3] - box[1]
    return [box[0] - margin * w, box[1] - margin * h, box[2] + margin * w, box[3] + margin * h]


def inside(points: np.ndarray, box: list[float]) -> np.ndarray:
    return (
        (points[:, 0] >= box[0])
        & (points[:, 0] <= box[2])
        & (points[:, 1] >= box[1])
        & (points[:, 1] <= box[3])
    )


def seed_points(gray: np.ndarray, box: list[float], n: int) -> np.ndarray:
    """Up to n corners inside the box (a grid if the box has too little texture). (N, 2) float32."""
    import cv2

    h, w = gray.shape
    x0, y0 = int(max(0, box[0])), int(max(0, box[1]))
    x1, y1 = int(min(w, box[2])), int(min(h, box[3]))
    mask = np.zeros_like(gray)
    mask[y0:y1, x0:x1] = 255
    pts = cv2.goodFeaturesToTrack(
        gray, maxCorners=n, qualityLevel=0.01, minDistance=2, mask=mask, blockSize=3
    )
    if pts is not None and len(pts) >= min(8, n):
        return pts.reshape(-1, 2).astype(np.float32)
    gx, gy = np.meshgrid(np.linspace(x0 + 1, x1 - 1, 8), np.linspace(y0 + 1, y1 - 1, 8))
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


_WIN = 15  # LK window (pixels)


def in_frame(points: np.ndarray, width: int, height: int, border: float = 0.0) -> np.ndarray:
    """Which points lie inside the frame shrunk by `border` pixels. (N,) bool."""
    return (
        (points[:, 0] >= border)
        & (points[:, 0] <= width - 1 - border)
        & (points[:, 1] >= border)
        & (points[:, 1] <= height - 1 - border)
    )


def ratio_of(alive: np.ndarray, left: np.ndarray) -> float:
    """Share of the points that stayed in the frame which were tracked throughout. Points that left
    the frame (a zoom-in, a pan) are neither failures nor successes; if every point left, 0."""
    stayed = int((~left).sum())
    return float((alive & ~left).sum() / stayed) if stayed else 0.0


def lk_track(
    grays: list[np.ndarray], boxes: list[list[float]], n: int, fb_px: float, margin: float
) -> tuple[float, float]:
    """(track ratio, share of points that left the frame); see the module docstring."""
    import cv2

    height, width = grays[0].shape
    edge = 0.05 * max(width, height)  # about one step of an edge point's motion in a fast zoom
    pts = seed_points(grays[0], boxes[0], n)
    alive = np.ones(len(pts), dtype=bool)
    left = np.zeros(len(pts), dtype=bool)
    params = dict(
        winSize=(_WIN, _WIN),
        maxLevel=3,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
    )
    for prev, nxt, box in zip(grays[:-1], grays[1:], boxes[1:]):
        p0 = pts.reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, nxt, p0, None, **params)
        pb, st2, _ = cv2.calcOpticalFlowPyrLK(nxt, prev, p1, None, **params)
        fb = np.linalg.norm((pb - p0).reshape(-1, 2), axis=1)
        ok = (st1.reshape(-1) == 1) & (st2.reshape(-1) == 1) & (fb < fb_px)
        new = p1.reshape(-1, 2)
        # A point that is tracked out of the frame, or that was near the edge and is now lost or
        # outside, is leaving the picture: it stops being followed and counts neither way. A point
        # lost in mid-frame (a cut, an occlusion) is a failure even if LK throws it off the frame.
        out_now = ~in_frame(new, width, height, _WIN / 2)
        near_edge = ~in_frame(pts, width, height, max(_WIN, edge))
        leaving = (ok & out_now) | (near_edge & (~ok | out_now))
        left |= alive & leaving
        alive &= ~left & ok & inside(new, grow(box, margin))
        pts = new
    return ratio_of(alive, left), float(left.mean()) if len(left) else 0.0


def lk_track_ratio(
    grays: list[np.ndarray], boxes: list[list[float]], n: int, fb_px: float, margin: float
) -> float:
    """Share of seeded points valid through all frames, among those that stayed in the frame."""
    return lk_track(grays, boxes, n, fb_px, margin)[0]


def check_cotracker_path(path: str) -> tuple[Path, Path]:
    if not path:
        raise WildActorError(
            "tracking.backend=cotracker needs tracking.cotracker_path: a local co-tracker checkout"
        )
    folder = Path(path)
    if not (folder / "hubconf.py").is_file():
        raise WildActorError(f"CoTracker3 code not found: {folder}/hubconf.py (a local co-tracker checkout)")
    ckpts = sorted(folder.glob("**/*.pth"))
    if not ckpts:
        raise WildActorError(f"CoTracker3 checkpoint not found under {folder} (expected a *.pth file)")
    return folder, ckpts[0]


class CoTracker:
    """CoTracker3 (offline model) from a local checkout; visibility + box membership as with LK."""

    def __init__(self, path: str) -> None:
        import torch

        folder, ckpt = check_cotracker_path(path)
        self.model = torch.hub.load(str(folder), "cotracker3_offline", source="local", pretrained=False)
        self.model.model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        self.model.eval()

    def ratio(self, rgbs: list[np.ndarray], boxes: list[list[float]], n: int, margin: float) -> float:
        import cv2
        import torch

        gray = cv2.cvtColor(rgbs[0], cv2.COLOR_RGB2GRAY)
        pts = seed_points(gray, boxes[0], n)
        video = torch.from_numpy(np.stack(rgbs)).permute(0, 3, 1, 2)[None].float()  # (1, T, 3, H, W)
        queries = torch.cat([torch.zeros(len(pts), 1), torch.from_numpy(pts)], dim=1)[None]  # (1, N, 3)
        with torch.no_grad():
            tracks, vis = self.model(video, queries=queries)  # (1, T, N, 2), (1, T, N)
        tracks, vis = tracks[0].numpy(), vis[0].numpy() > 0.5
        height, width = rgbs[0].shape[:2]
        left = np.zeros(len(pts), dtype=bool)
        alive = np.ones(len(pts), dtype=bool)
        for t, box in enumerate(boxes):
            left |= alive & ~in_frame(tracks[t], width, height)
            alive &= ~left & vis[t] & inside(tracks[t], grow(box, margin))
        return ratio_of(alive, left)


class TrackStage(Stage):
    name = "tracking"
    batch_size = 2

    def resources(self) -> dict[str, float]:
        return {
            "num_cpus": self.num_cpus,
            "num_gpus": 1.0 if self.config.tracking.backend == "cotracker" else 0.0,
        }

    def check(self) -> None:
        if self.config.tracking.backend == "cotracker":
            check_cotracker_path(self.config.tracking.cotracker_path)

    def setup(self) -> None:
        cfg = self.config.tracking
        self.cotracker = CoTracker(cfg.cotracker_path) if cfg.backend == "cotracker" else None

    def process(self, items: list[Item]) -> list[Item]:
        return [self._one(it) for it in items]

    def _one(self, item: Item) -> Item:
        import cv2

        cfg = self.config.tracking
        shot = item["shot"]
        times = sample_times(shot["start_sec"], shot["end_sec"], cfg.fps, cfg.max_frames)
        try:
            frames = read_frames(item["path"], times, item["probe"]["fps"])
        except DecodeError as exc:
            return reject(item, self.name, "corrupt_stream", str(exc))
        boxes = [interpolate_box(item["detect"]["samples"], fr.time) for fr in frames]
        if boxes[0] is None or len(frames) < 2:
            item["tracking"] = {"backend": cfg.backend, "ratio": None, "frames": len(frames)}
            return reject(item, self.name, "tracking_inconsistent", "too few frames or no person box to seed")
        if self.cotracker is not None:
            ratio = self.cotracker.ratio([f.rgb for f in frames], boxes, cfg.num_points, cfg.box_margin)
        else:
            grays = [cv2.cvtColor(f.rgb, cv2.COLOR_RGB2GRAY) for f in frames]
            ratio, left = lk_track(grays, boxes, cfg.num_points, cfg.fb_error_px, cfg.box_margin)
        item["tracking"] = {"backend": cfg.backend, "ratio": round(ratio, 4), "frames": len(frames)}
        if self.cotracker is None:
            item["tracking"]["left_frame"] = round(left, 4)
        if ratio < cfg.min_ratio:
            return reject(
                item, self.name, "tracking_inconsistent", f"track ratio {ratio:.2f} < {cfg.min_ratio}"
            )
        return item
