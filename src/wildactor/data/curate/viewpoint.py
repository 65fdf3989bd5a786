"""Stage 5 — viewpoint of the actor in each candidate frame: yaw angle and view name.

Angle convention (as in the manifest schema and ActorWorld): yaw in degrees in [0, 360); 0 faces the
camera, 180 shows the back, 90 shows the actor's right side (the actor faces screen right), 270 the
left side. View names: front / right / left / back (from ``view_bin`` plus the side's sign).

Back-ends (``viewpoint.backend``):

- ``landmarks`` (default): dlib 68-point landmarks of the detected face, head pose by ``cv2.solvePnP``
  against a generic 3D face (six points); the yaw's sign is read from where the nose tip sits between
  the eyes, its size from the pose. Body evidence: a person with no detectable face = back (180).
  Frontal-face detection misses most strict profiles, so true profiles tend to be labelled back.
- ``world_probe``: ActorWorld's frame probe (a small CNN trained on renders, weights shipped with
  ``wildactor.world``; its yaw head) applied to the frame; for ActorWorld input, whose faces are too
  stylised for landmarks. It reads pixels only, never the clip's labels. Its accuracy is measured against true yaw in tests/test_curate_world.py.
- ``vlm``: a Qwen2-VL-family model (Qwen2-VL, Qwen2.5-VL) from a local folder (``viewpoint.vlm_path``) asked
  which side of the person faces the camera; the view is the most likely of the first answer tokens front / left
  / right / back (deterministic, read from the logits: `bench.metrics.vlm_rater`, which needs no torchvision).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildactor.data.curate.stage import Item, Stage
from wildactor.data.curate.video import DecodeError, read_frames
from wildactor.data.schema import view_bin
from wildactor.errors import WildActorError

# Generic head, millimetres, x right (of the image), y up, z towards the camera.
_MODEL_3D = np.array(
    [
        [0.0, 0.0, 0.0],  # nose tip (landmark 30)
        [0.0, -63.0, -12.0],  # chin (8)
        [-43.0, 32.0, -26.0],  # outer corner of the eye on image left (36)
        [43.0, 32.0, -26.0],  # outer corner of the eye on image right (45)
        [-28.0, -28.0, -24.0],  # mouth corner on image left (48)
        [28.0, -28.0, -24.0],  # mouth corner on image right (54)
    ]
)
_MODEL_IDX = [30, 8, 36, 45, 48, 54]


def view_name(angle: float) -> str:
    """front / right / left / back of a yaw angle in degrees."""
    b = view_bin(angle)
    if b != "side":
        return b
    return "right" if (angle % 360.0) < 180.0 else "left"


def yaw_from_landmarks(lm: np.ndarray, image_size: tuple[int, int]) -> float:
    """Yaw in degrees in (-90, 90) from 68 landmarks (positive = the actor faces screen right)."""
    import cv2

    h, w = image_size
    cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], dtype=np.float64)
    pts = lm[_MODEL_IDX].astype(np.float64)
    ok, rvec, _ = cv2.solvePnP(_MODEL_3D, pts, cam, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        magnitude = 0.0
    else:
        rot, _ = cv2.Rodrigues(rvec)
        # rotation about the vertical axis: angle of the model's forward (z) axis in the x-z plane
        fwd = rot @ np.array([0.0, 0.0, 1.0])
        magnitude = abs(float(np.degrees(np.arctan2(fwd[0], abs(fwd[2]) + 1e-9))))
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    span = max(abs(eye_r[0] - eye_l[0]), 1e-6)
    offset = (lm[30][0] - (eye_l[0] + eye_r[0]) / 2) / span  # nose tip left (-) or right (+) of the eyes
    sign = 1.0 if offset >= 0 else -1.0
    # the pose's magnitude, bounded by the nose offset (a flat PnP solution can overshoot)
    return sign * min(magnitude, 89.0)


def snap_to_bin(angle: float, bin_name: str) -> float:
    """The angle moved to the nearest angle inside the F/S/B bin a classifier chose (the probe's view
    head is more accurate than its yaw-bin head; the yaw keeps the side and the detail)."""
    angle %= 360.0
    if view_bin(angle) == bin_name:
        return angle
    candidates = {
        "front": (0.0, 44.0, 316.0),
        "back": (180.0, 136.0, 224.0),
        "side": (46.0, 134.0, 226.0, 314.0),
    }
    from wildactor.data.schema import angular_distance

    return min(candidates[bin_name], key=lambda c: angular_distance(c, angle))


def smooth_angles(angles: list[float | None], radius: int) -> list[float | None]:
    """Circular mean of each estimate with its `radius` neighbours on either side (yaw changes
    smoothly within a shot, per-frame estimates jitter). None stays None."""
    out: list[float | None] = []
    for i, a in enumerate(angles):
        if a is None:
            out.append(None)
            continue
        near = [b for b in angles[max(0, i - radius) : i + radius + 1] if b is not None]
        rad = np.deg2rad(near)
        out.append(float(np.rad2deg(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())) % 360.0))
    return out


def hold_bins(angles: list[float | None], margin: float) -> list[float | None]:
    """Hysteresis on the F/S/B bin along a shot: an angle within `margin` degrees of a bin boundary
    (45, 135, 225, 315) keeps the bin of the sample before it and is moved just inside that bin.
    Without it a yaw wavering around 45 deg flips front/side from frame to frame. None stays None."""
    from wildactor.data.schema import angular_distance

    out: list[float | None] = []
    held: str | None = None
    for a in angles:
        if a is None:
            out.append(None)
            continue
        near_edge = min(angular_distance(a, b) for b in (45.0, 135.0, 225.0, 315.0)) < margin
        if held is not None and near_edge and view_bin(a) != held:
            a = snap_to_bin(a, held)
        held = view_bin(a)
        out.append(a)
    return out


class LandmarkViews:
    def __init__(self, side_yaw: float) -> None:
        from wildactor.data.curate.faces import Landmarker

        self.landmarks = Landmarker()
        self.side_yaw = side_yaw

    def __call__(
        self, rgb: np.ndarray, person: list[float] | None, face: list[float] | None
    ) -> tuple[float | None, str]:
        if person is None and face is None:
            return None, "none"
        if face is None:
            return 180.0, "body:no_face"
        yaw = yaw_from_landmarks(self.landmarks(rgb, face), rgb.shape[:2])
        if abs(yaw) > self.side_yaw:
            yaw = float(np.sign(yaw) * max(abs(yaw), 46.0))
        return float(yaw % 360.0), "landmarks"


class WorldProbeViews:
    """ActorWorld's viewpoint probe on the person crop."""

    def __init__(self, path: str = "") -> None:
        try:
            from wildactor.world.probes import load_probes
        except ImportError:
            raise WildActorError(
                "viewpoint.backend=world_probe needs wildactor.world.probes (ActorWorld's trained probes)"
            ) from None
        self.probes = load_probes(path or None)

    def __call__(self, rgb, person, face):
        if person is None:
            return None, "none"
        pred = self.probes.predict_view(rgb[None])[0]
        return snap_to_bin(float(pred["yaw"]), pred["view"]), "world_probe"


def check_vlm_path(path: str) -> Path:
    if not path:
        raise WildActorError("viewpoint.backend=vlm needs viewpoint.vlm_path: a local model folder")
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise WildActorError(f"VLM labeller not found: {folder}/config.json (viewpoint.vlm_path)")
    return folder


class VlmViews:
    """A Qwen2-VL-family model asked which side of the person faces the camera (argmax over the four answers)."""

    QUESTION = "Which side of the person faces the camera? Answer with one word: front, left, right or back."
    ANGLES = {"front": 0.0, "right": 90.0, "back": 180.0, "left": 270.0}

    def __init__(self, path: str) -> None:
        import torch

        from wildactor.bench.metrics.vlm_rater import Qwen2VLRater

        folder = check_vlm_path(path)
        try:
            self.rater = Qwen2VLRater(folder, "cuda" if torch.cuda.is_available() else "cpu")
        except (OSError, ValueError, KeyError) as exc:
            raise WildActorError(f"viewpoint.vlm_path: {folder}: {str(exc).splitlines()[0]}") from None

    def __call__(self, rgb, person, face):
        if person is None:
            return None, "none"
        x0, y0, x1, y1 = (int(round(v)) for v in person)
        crop = np.ascontiguousarray(rgb[max(0, y0) : y1, max(0, x0) : x1])
        if crop.shape[0] < 2 or crop.shape[1] < 2:
            return None, "none"
        words = list(self.ANGLES)
        probs = self.rater.option_probs([crop], self.QUESTION, words)
        return self.ANGLES[words[int(np.argmax(probs))]], "vlm"


class ViewpointStage(Stage):
    name = "viewpoint"
    batch_size = 2

    def resources(self) -> dict[str, float]:
        return {"num_cpus": self.num_cpus, "num_gpus": 1.0 if self.config.viewpoint.backend == "vlm" else 0.0}

    def check(self) -> None:
        cfg = self.config.viewpoint
        if cfg.backend == "vlm":
            check_vlm_path(cfg.vlm_path)
        elif cfg.backend == "world_probe":
            WorldProbeViews(cfg.world_probe_path)  # fails here, before any work, if weights are missing

    def setup(self) -> None:
        cfg = self.config.viewpoint
        if cfg.backend == "landmarks":
            self.estimator = LandmarkViews(cfg.side_yaw)
        elif cfg.backend == "world_probe":
            self.estimator = WorldProbeViews(cfg.world_probe_path)
        else:
            self.estimator = VlmViews(cfg.vlm_path)

    def process(self, items: list[Item]) -> list[Item]:
        return [self._one(it) for it in items]

    def _one(self, item: Item) -> Item:
        samples = item["detect"]["samples"]
        try:
            frames = read_frames(item["path"], [s["time"] for s in samples], item["probe"]["fps"])
        except DecodeError as exc:
            from wildactor.data.curate.stage import reject

            return reject(item, self.name, "corrupt_stream", str(exc))
        raw = []
        for s, fr in zip(samples, frames):
            angle, how = self.estimator(fr.rgb, s["person"], s["face"])
            raw.append(angle)
            s["angle_raw"] = None if angle is None else round(angle, 2)
            s["view_source"] = how
        cfg = self.config.viewpoint
        for s, angle in zip(samples, hold_bins(smooth_angles(raw, cfg.smooth), cfg.hysteresis)):
            s["angle"] = None if angle is None else round(angle, 2)
            s["view"] = None if angle is None else view_name(angle)
        item["viewpoint"] = {"backend": self.config.viewpoint.backend}
        return item
