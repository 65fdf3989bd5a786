"""Clips: actor x motion x scene x camera x T frames, rendered with per-frame labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wildactor.world.actors import Actor
from wildactor.world.camera import Camera
from wildactor.world.motions import MOTION_KINDS, Motion, sample_motion
from wildactor.world.renderer import FrameLabels, render_scene
from wildactor.world.scenes import SCENE_KINDS, Scene, sample_scene


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines a clip's pixels. fps only sets the clip's duration in seconds."""

    actor: Actor
    motion: Motion = field(default_factory=Motion)
    scene: Scene = field(default_factory=Scene)
    camera: Camera = field(default_factory=Camera)
    num_frames: int = 16
    size: tuple[int, int] = (64, 64)
    fps: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.num_frames <= 1024:
            raise ValueError(f"num_frames must be in [1, 1024], got {self.num_frames}")
        if not 1 <= self.fps <= 120:
            raise ValueError(f"fps must be in [1, 120], got {self.fps}")

    @property
    def duration_sec(self) -> float:
        return self.num_frames / self.fps


@dataclass(frozen=True)
class Clip:
    """Rendered clip: frames (T, H, W, 3) uint8 and one `FrameLabels` per frame."""

    spec: ClipSpec
    frames: np.ndarray
    labels: list[FrameLabels]

    def label_dict(self) -> dict:
        """JSON-ready labels: clip-level facts plus per-frame yaw, boxes and visibilities."""
        s = self.spec
        return {
            "actor_id": s.actor.actor_id,
            "attributes": s.actor.attributes(),
            "motion": s.motion.kind,
            "motion_params": {k: getattr(s.motion, k) for k in s.motion.__dataclass_fields__},
            "scene": s.scene.kind,
            "lighting": s.scene.lighting,
            "camera": {
                "elevation": s.camera.elevation,
                "azimuth": s.camera.azimuth,
                "distance": s.camera.distance,
            },
            "num_frames": s.num_frames,
            "fps": s.fps,
            "size": list(s.size),
            "frames": [
                {
                    "yaw": round(lb.yaw, 3),
                    "person_box": lb.person_box,
                    "face_box": lb.face_box,
                    "visibility": lb.visibility,
                    "face_visibility": lb.face_visibility,
                }
                for lb in self.labels
            ],
        }


def render_clip(
    spec: ClipSpec | Actor,
    motion: Motion | None = None,
    scene: Scene | None = None,
    camera: Camera | None = None,
    num_frames: int = 16,
    size: int | tuple[int, int] = 64,
) -> Clip:
    """Render a clip frame by frame (deterministic: the spec fixes every pixel). Takes a `ClipSpec`, or
    an actor plus motion / scene / camera / num_frames / size (defaults: idle, studio, default camera)."""
    if isinstance(spec, Actor):
        hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        spec = ClipSpec(spec, motion or Motion(), scene or Scene(), camera or Camera(), num_frames, hw)
    frames, labels = [], []
    for state in spec.motion.states(spec.num_frames):
        img, lbs = render_scene([(spec.actor, state)], spec.scene, spec.camera, spec.size)
        frames.append(img)
        labels.append(lbs[0])
    return Clip(spec=spec, frames=np.stack(frames), labels=labels)


def sample_clip_spec(
    actor: Actor,
    rng: np.random.Generator,
    *,
    motion: str | None = None,
    scene: str | None = None,
    yaw: float | None = None,
    num_frames: int = 16,
    size: tuple[int, int] = (64, 64),
    fps: int = 8,
    elevation_range: tuple[float, float] = (0.0, 15.0),
    distance_range: tuple[float, float] = (2.95, 3.05),
) -> ClipSpec:
    """A random clip of one actor: motion, scene, lighting and camera drawn from `rng` unless given."""
    motion = motion or str(rng.choice(MOTION_KINDS))
    scene = scene or str(rng.choice(SCENE_KINDS))
    m = sample_motion(motion, rng, yaw=yaw)
    sc = sample_scene(scene, rng)
    cam = Camera(elevation=float(rng.uniform(*elevation_range)), distance=float(rng.uniform(*distance_range)))
    return ClipSpec(actor=actor, motion=m, scene=sc, camera=cam, num_frames=num_frames, size=size, fps=fps)
