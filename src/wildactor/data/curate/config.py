"""Settings of the curation pipeline: one frozen dataclass per stage, checked on construction.

A YAML file maps 1:1 onto ``CurateConfig`` (top-level keys = stage names, nested keys = fields);
``configs/curate/default.yaml`` holds the offline defaults, ``configs/curate/actorworld.yaml`` the
set-up for ActorWorld input.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError

DETECT_BACKENDS = ("hog", "silhouette", "yolo")
FACE_BACKENDS = ("dlib", "arcface", "appearance")
TRACK_BACKENDS = ("lk", "cotracker")
VIEW_BACKENDS = ("landmarks", "world_probe", "vlm")
EDITOR_BACKENDS = ("none", "world", "qwen")
SIX_VIEWS = ("front", "left", "right", "back", "up", "down")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


@dataclass(frozen=True)
class ProbeConfig:
    """Stage 1a. Inputs outside these limits become rejects."""

    min_duration_sec: float = 1.0
    max_duration_sec: float = 3600.0
    max_pixels: int = 3840 * 2160
    max_file_bytes: int = 8 * 1024**3
    min_side: int = 32
    grayscale_chroma: float = 2.0  # mean |U-128|+|V-128| below this on sampled frames = grayscale

    def __post_init__(self) -> None:
        _check(0 < self.min_duration_sec < self.max_duration_sec, "probe: need 0 < min_duration_sec < max")
        _check(self.max_pixels > 0 and self.max_file_bytes > 0, "probe: limits must be positive")
        _check(self.min_side >= 8, "probe: min_side must be >= 8")
        _check(self.grayscale_chroma >= 0, "probe: grayscale_chroma must be >= 0")


@dataclass(frozen=True)
class ShotConfig:
    """Stage 1b: content detector on HSV differences of downscaled frames."""

    threshold: float = 27.0
    min_shot_sec: float = 1.0
    analysis_width: int = 96

    def __post_init__(self) -> None:
        _check(self.threshold > 0, "shots: threshold must be > 0")
        _check(self.min_shot_sec > 0, "shots: min_shot_sec must be > 0")
        _check(16 <= self.analysis_width <= 1024, "shots: analysis_width must be in [16, 1024]")


@dataclass(frozen=True)
class DetectConfig:
    """Stage 2: person and face detection at `fps`; single-person filter."""

    backend: str = "hog"
    fps: float = 2.0
    max_frames: int = 16
    min_person_share: float = 0.5  # a person in at least this share of sampled frames
    max_multi_share: float = 0.2  # two or more people in more than this share = multi-person
    upscale_to: int = 0  # frames smaller than this (short side) are upscaled before detection
    work_size: int = 480  # frames larger than this (short side) are downscaled to it (0 = never)
    min_other_share: float = 0.1  # a second person counts if its box has this share of the largest's area
    face_threshold: float = 0.3  # dlib HOG face detector score
    hog_threshold: float = 0.5  # OpenCV HOG people detector SVM score
    yolo_path: str = ""
    yolo_score: float = 0.5
    silhouette_threshold: float = 0.12  # colour distance to the backdrop model, in [0, 1] units
    min_person_area: float = 0.01  # share of the frame a silhouette must cover

    def __post_init__(self) -> None:
        _check(self.backend in DETECT_BACKENDS, f"detect.backend must be one of {DETECT_BACKENDS}")
        _check(0 < self.fps <= 30, "detect.fps must be in (0, 30]")
        _check(self.max_frames >= 1, "detect.max_frames must be >= 1")
        _check(0 < self.min_person_share <= 1, "detect.min_person_share must be in (0, 1]")
        _check(0 <= self.max_multi_share < 1, "detect.max_multi_share must be in [0, 1)")
        _check(self.upscale_to >= 0, "detect.upscale_to must be >= 0")
        _check(self.work_size == 0 or self.work_size >= 128, "detect.work_size must be 0 or >= 128")
        _check(0 <= self.min_other_share <= 1, "detect.min_other_share must be in [0, 1]")
        _check(0 < self.min_person_area < 1, "detect.min_person_area must be in (0, 1)")


@dataclass(frozen=True)
class IdentityConfig:
    """Stage 3: every face's similarity to the clip's medoid face must reach `threshold`.

    threshold None = the back-end's calibrated default (ArcFace 0.40, dlib 0.90, appearance 0.70).
    """

    backend: str = "dlib"
    fps: float = 1.0
    max_frames: int = 16
    threshold: float | None = None
    min_faces: int = 1  # fewer faces than this: the check cannot run and the clip is kept, marked so
    arcface_path: str = ""

    def __post_init__(self) -> None:
        _check(self.backend in FACE_BACKENDS, f"identity.backend must be one of {FACE_BACKENDS}")
        _check(0 < self.fps <= 30, "identity.fps must be in (0, 30]")
        _check(self.max_frames >= 1, "identity.max_frames must be >= 1")
        _check(self.threshold is None or -1 <= self.threshold <= 1, "identity.threshold must be in [-1, 1]")
        _check(self.min_faces >= 1, "identity.min_faces must be >= 1")


@dataclass(frozen=True)
class TrackConfig:
    """Stage 4: share of seeded points tracked and inside the person box through the clip."""

    backend: str = "lk"
    fps: float = 8.0
    max_frames: int = 32
    min_ratio: float = 0.60
    num_points: int = 64
    fb_error_px: float = 1.5
    box_margin: float = 0.15
    cotracker_path: str = ""  # a co-tracker checkout; its hubconf.py is executed (torch.hub.load): trust it

    def __post_init__(self) -> None:
        _check(self.backend in TRACK_BACKENDS, f"tracking.backend must be one of {TRACK_BACKENDS}")
        _check(0 < self.fps <= 60, "tracking.fps must be in (0, 60]")
        _check(2 <= self.max_frames <= 256, "tracking.max_frames must be in [2, 256]")
        _check(0 <= self.min_ratio <= 1, "tracking.min_ratio must be in [0, 1]")
        _check(self.num_points >= 4, "tracking.num_points must be >= 4")
        _check(self.fb_error_px > 0, "tracking.fb_error_px must be > 0")


@dataclass(frozen=True)
class ViewpointConfig:
    """Stage 5: yaw of the actor in each candidate frame."""

    backend: str = "landmarks"
    vlm_path: str = ""
    world_probe_path: str = ""  # "" = the probe weights shipped with wildactor.world
    side_yaw: float = 45.0  # |yaw| above this from landmarks = side
    smooth: int = 1  # circular mean over this many neighbouring samples on each side (0 = off)
    hysteresis: float = 10.0  # degrees: near a F/S/B boundary a sample keeps the previous sample's bin

    def __post_init__(self) -> None:
        _check(self.backend in VIEW_BACKENDS, f"viewpoint.backend must be one of {VIEW_BACKENDS}")
        _check(0 <= self.smooth <= 8, "viewpoint.smooth must be in [0, 8]")
        _check(0 <= self.hysteresis < 45, "viewpoint.hysteresis must be in [0, 45)")
        _check(0 < self.side_yaw < 90, "viewpoint.side_yaw must be in (0, 90)")


@dataclass(frozen=True)
class CropConfig:
    """Stage 6: self-crop references spread over viewpoints."""

    face_scale: float = 1.35
    body_scale: float = 1.10
    min_visibility: float = 0.45
    max_face: int = 3
    max_body: int = 3
    min_face_px: int = 12
    min_body_px: int = 24

    def __post_init__(self) -> None:
        _check(self.face_scale >= 1 and self.body_scale >= 1, "crops: scales must be >= 1")
        _check(0 <= self.min_visibility <= 1, "crops.min_visibility must be in [0, 1]")
        _check(self.max_face >= 0 and self.max_body >= 1, "crops: need max_face >= 0, max_body >= 1")


@dataclass(frozen=True)
class AugmentConfig:
    """Stage 7: View-Aug (six angles), Attr-Aug (attribute lists), 3-View sheet through an `Editor`."""

    editor: str = "none"
    editor_path: str = ""
    lora_path: str = ""
    views: tuple[str, ...] = SIX_VIEWS
    skip_source_view: bool = True  # do not re-render the view the self-crop already shows
    attr_per_clip: int = 2
    three_view: bool = True
    attributes_file: str = "configs/curate/attributes.yaml"
    prompts_file: str = "configs/curate/editor_prompts.yaml"
    world_size: int = 128

    def __post_init__(self) -> None:
        _check(self.editor in EDITOR_BACKENDS, f"augment.editor must be one of {EDITOR_BACKENDS}")
        bad = [v for v in self.views if v not in SIX_VIEWS]
        _check(not bad, f"augment.views: unknown {bad} (expected some of {SIX_VIEWS})")
        _check(self.attr_per_clip >= 0, "augment.attr_per_clip must be >= 0")
        _check(16 <= self.world_size <= 1024, "augment.world_size must be in [16, 1024]")


@dataclass(frozen=True)
class IdCheckConfig:
    """Stage 8: augmented references must match the clip's self-crop identity."""

    threshold: float | None = None  # None = the identity back-end's calibrated default
    keep_faceless_back: bool = True  # a requested back view shows no face: keep it unchecked

    def __post_init__(self) -> None:
        _check(self.threshold is None or -1 <= self.threshold <= 1, "idcheck.threshold must be in [-1, 1]")


@dataclass(frozen=True)
class ExportConfig:
    """Stage 9: clip files, manifest, rejects, Table 1 statistics."""

    cut_clips: bool = True
    source_name: str = "local"
    default_prompt: str = "a video of a person"

    def __post_init__(self) -> None:
        _check(bool(self.source_name), "export.source_name must not be empty")
        _check(bool(self.default_prompt.strip()), "export.default_prompt must not be empty")


@dataclass(frozen=True)
class CurateConfig:
    """The whole pipeline. `extensions`: which files in the input folder are considered (others
    are listed as rejects "not_a_video" only when they carry one of these extensions)."""

    probe: ProbeConfig = field(default_factory=ProbeConfig)
    shots: ShotConfig = field(default_factory=ShotConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    tracking: TrackConfig = field(default_factory=TrackConfig)
    viewpoint: ViewpointConfig = field(default_factory=ViewpointConfig)
    crops: CropConfig = field(default_factory=CropConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    idcheck: IdCheckConfig = field(default_factory=IdCheckConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    extensions: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")

    def __post_init__(self) -> None:
        _check(all(e.startswith(".") for e in self.extensions), "extensions must start with '.'")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CurateConfig:
        """Build from nested dicts; unknown keys are an error naming the key."""
        return _build(cls, data, "")


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{where or 'config'}: unknown key(s) {unknown}")
    kwargs = {}
    for name, value in data.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else None
        if default is not None and is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}{name}.")
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> CurateConfig:
    """Config from a YAML file (or the defaults), with dotted overrides like {"detect.backend": "yolo"}."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise WildActorError(f"curation config not found: {p}")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise WildActorError(f"{p}: not valid YAML ({exc})") from None
    for key, value in (overrides or {}).items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    try:
        return CurateConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise WildActorError(f"bad curation config{f' {path}' if path else ''}: {exc}") from None
