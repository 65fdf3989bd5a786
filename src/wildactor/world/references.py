"""Reference images, the ActorWorld analogues of Actor-18M's four kinds:

- self-crop: face (1.35x face box) and body (1.10x person box) crops of clip frames;
- View-Aug: the same actor and pose re-rendered from six angles (`ActorWorldEditor`, the stand-in for the
  multi-angle image-editing model: here the "edit" is exact);
- Attr-Aug: the same actor and pose under another scene and lighting;
- 3-View: a canonical front / side / back sheet on white.

Every reference carries region, view, angle, visibility, source frame and source as in the manifest schema.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from wildactor.data.schema import ReferenceRecord, view_bin
from wildactor.world.actors import Actor
from wildactor.world.body import BodyState, Pose
from wildactor.world.camera import Camera
from wildactor.world.renderer import Box, FrameLabels, render_scene
from wildactor.world.scenes import SCENE_KINDS, Scene, sample_scene

FACE_CROP_SCALE = 1.35
BODY_CROP_SCALE = 1.10
MIN_VISIBILITY = 0.45
# View-Aug angles: view name -> (body yaw, camera elevation). Yaw 90 shows the actor's right side.
VIEW_AUG_ANGLES: dict[str, tuple[float, float]] = {
    "front": (0.0, 5.0),
    "left": (270.0, 5.0),
    "right": (90.0, 5.0),
    "back": (180.0, 5.0),
    "down": (0.0, 55.0),  # top-down: the camera looks down on the actor
    "up": (0.0, -35.0),  # bottom-up: the camera looks up at the actor
}
WHITE = (1.0, 1.0, 1.0)


@dataclass
class Reference:
    """One reference image (uint8 (S, S, 3) or a sheet) with its schema tags."""

    image: np.ndarray
    region: str  # face | body | three_view
    view: str
    angle: float
    visibility: float
    source: str  # self_crop | view_aug | attr_aug | canonical
    source_frame: int | None = None

    def to_record(self, path: str, **metadata) -> ReferenceRecord:
        """Schema record for this reference saved at `path` (relative to the manifest)."""
        return ReferenceRecord(
            path=path,
            region=self.region,
            view=self.view,
            angle=round(float(self.angle), 3),
            visibility=round(float(np.clip(self.visibility, 0.0, 1.0)), 4),
            source_frame=self.source_frame,
            metadata={"source": self.source, **metadata},
        )

    def save(self, path) -> None:
        Image.fromarray(self.image).save(path)


def scaled_box(box: Box, scale: float) -> Box:
    """Box grown by `scale` about its centre."""
    x0, y0, x1, y1 = box
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * scale / 2, (y1 - y0) * scale / 2
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def crop_square(image: np.ndarray, box: Box, out_size: int) -> np.ndarray:
    """Crop `box` widened on its short side to a square of real image content (edge pixels repeat only
    where the square leaves the image), resized to out_size x out_size."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sx0, sy0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = int(round(side))
    if sx0 >= w or sy0 >= h or sx0 + n <= 0 or sy0 + n <= 0:
        raise ValueError(f"crop box {box} lies outside the {w}x{h} image")
    pad = max(0, -sx0, -sy0, sx0 + n - w, sy0 + n - h)
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad else image
    crop = padded[sy0 + pad : sy0 + pad + n, sx0 + pad : sx0 + pad + n]
    return np.asarray(Image.fromarray(crop).resize((out_size, out_size), Image.BICUBIC))


def _view_name(yaw: float) -> str:
    """Schema view of a yaw: front / back, or left / right for side views (yaw 90 = right side)."""
    b = view_bin(yaw)
    if b != "side":
        return b
    return "right" if (yaw % 360.0) < 180.0 else "left"


def self_crop(
    frame: np.ndarray, label: FrameLabels, region: str, frame_index: int, out_size: int = 64
) -> Reference | None:
    """Face or body crop of one labelled frame; None when the region is not visible enough."""
    if region == "face":
        box, vis, scale = label.face_box, label.face_visibility, FACE_CROP_SCALE
    elif region == "body":
        box, vis, scale = label.person_box, label.visibility, BODY_CROP_SCALE
    else:
        raise ValueError(f"self-crop region must be 'face' or 'body', got {region!r}")
    if box is None or vis < MIN_VISIBILITY:
        return None
    img = crop_square(frame, scaled_box(box, scale), out_size)
    return Reference(img, region, _view_name(label.yaw), label.yaw, vis, "self_crop", frame_index)


class ActorWorldEditor:
    """Re-renders an actor exactly: the stand-in for an image-editing model (View-Aug / Attr-Aug / 3-View).

    Renders happen at `render_size` (large enough for sharp face crops) and are cropped like self-crops.
    """

    def __init__(self, out_size: int = 64, render_size: int = 192) -> None:
        if out_size < 8 or render_size < 32:
            raise ValueError("out_size must be >= 8 and render_size >= 32")
        self.out_size = out_size
        self.render_size = render_size

    def render_view(
        self,
        actor: Actor,
        yaw: float,
        elevation: float = 5.0,
        state: BodyState | None = None,
        scene: Scene | None = None,
        background: tuple[float, float, float] | None = None,
    ) -> tuple[np.ndarray, FrameLabels]:
        """Full frame of the actor at `yaw` (degrees, relative to the camera) and camera `elevation`,
        centred (the state's root position is ignored)."""
        state = state or BodyState()
        state = BodyState(yaw=float(yaw), position=(0.0, state.position[1], 0.0), pose=state.pose)
        img, (lab,) = render_scene(
            [(actor, state)], scene, Camera(elevation=elevation), self.render_size, background=background
        )
        return img, lab

    def rerender(
        self,
        actor: Actor,
        region: str,
        view: str,
        state: BodyState | None = None,
        scene: Scene | None = None,
        source: str = "view_aug",
        source_frame: int | None = None,
    ) -> Reference | None:
        """One View-Aug reference: `view` in VIEW_AUG_ANGLES; the body yaw is the view's (front = 0)."""
        if view not in VIEW_AUG_ANGLES:
            raise ValueError(f"view must be one of {tuple(VIEW_AUG_ANGLES)}, got {view!r}")
        yaw, elev = VIEW_AUG_ANGLES[view]
        img, lab = self.render_view(actor, yaw, elev, state, scene)
        ref = self_crop(img, lab, region, 0, self.out_size)
        if ref is None and region == "face":
            # A face seen from behind is still a head reference (the paper keeps back views): crop the head.
            if lab.face_box is None:
                return None
            ref = Reference(
                crop_square(img, scaled_box(lab.face_box, FACE_CROP_SCALE), self.out_size),
                "face",
                view,
                yaw,
                lab.face_visibility,
                source,
            )
        if ref is None:
            return None
        return replace(ref, view=view, angle=yaw, source=source, source_frame=source_frame)

    def view_aug(
        self,
        actor: Actor,
        state: BodyState | None = None,
        scene: Scene | None = None,
        source_frame: int | None = None,
    ) -> list[Reference]:
        """Face and body references from the six View-Aug angles."""
        refs = []
        for region in ("face", "body"):
            for view in VIEW_AUG_ANGLES:
                ref = self.rerender(actor, region, view, state, scene, "view_aug", source_frame)
                if ref is not None:
                    refs.append(ref)
        return refs

    def attr_aug(
        self,
        actor: Actor,
        yaw: float,
        state: BodyState | None,
        rng: np.random.Generator,
        count: int = 2,
        source_frame: int | None = None,
    ) -> list[Reference]:
        """Body references of the same actor and pose in `count` other scenes / lightings."""
        refs = []
        kinds = rng.permutation(SCENE_KINDS)[:count]
        for kind in kinds:
            scene = sample_scene(str(kind), rng)
            img, lab = self.render_view(actor, yaw, float(rng.uniform(0, 15)), state, scene)
            ref = self_crop(img, lab, "body", 0, self.out_size)
            if ref is not None:
                refs.append(replace(ref, source="attr_aug", source_frame=source_frame))
        return refs

    def three_view(self, actor: Actor) -> Reference:
        """Canonical sheet: front, side (right) and back views on white, side by side, neutral pose."""
        s = self.render_size
        tiles = []
        for yaw in (0.0, 90.0, 180.0):
            img, _ = self.render_view(actor, yaw, 0.0, BodyState(pose=Pose()), None, background=WHITE)
            tiles.append(img[:, s // 3 : s - s // 3])  # (S, S/3, 3) middle third holds the figure
        sheet = np.concatenate(tiles, axis=1)
        out = np.asarray(Image.fromarray(sheet).resize((self.out_size, self.out_size), Image.BICUBIC))
        return Reference(out, "three_view", "canonical", 0.0, 1.0, "canonical", None)
