"""The humanoid body: pose angles -> a list of lit, coloured ellipsoids in world space.

Actor frame: metres, y up, the actor faces +z at yaw 0 (towards the camera), the actor's left hand is
on +x. Body yaw rotates the actor about the vertical axis through its root; yaw 90 shows the actor's
right side (facing screen right), yaw 180 its back. The head keeps one size for every actor, so build
and height are read as proportions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wildactor.world.actors import (
    BOTTOM_RGB,
    BUILD_SCALE,
    HAIR_RGB,
    HEIGHT_SCALE,
    SHOE_RGB,
    SKIN_RGB,
    TOP_RGB,
    Actor,
)

# Part groups (labels: the face box is the HEAD group's visible pixels: head, face, hair cap; long hair
# and the hanging tail count as body so the box stays on the head).
GROUP_BODY, GROUP_HEAD = 0, 1
GRAPHIC_CODES = {"none": 0, "circle": 1, "band": 2, "stripe": 3}
_LIGHT_TOPS = {"white", "yellow", "orange"}
_EYE_RGB = (0.05, 0.04, 0.04)


@dataclass(frozen=True)
class Pose:
    """Joint angles in radians. Arms: pitch swings forward (+), roll lifts sideways (+), for the upper
    arm and (absolute, not relative) the forearm. Legs: absolute pitch of thigh and shin (+ = forward)."""

    arm_pitch_l: float = 0.0
    arm_roll_l: float = 0.12
    fore_pitch_l: float = 0.15
    fore_roll_l: float = 0.10
    arm_pitch_r: float = 0.0
    arm_roll_r: float = 0.12
    fore_pitch_r: float = 0.15
    fore_roll_r: float = 0.10
    thigh_l: float = 0.0
    shin_l: float = 0.0
    thigh_r: float = 0.0
    shin_r: float = 0.0


@dataclass(frozen=True)
class BodyState:
    """Where an actor is and how it stands in one frame: yaw in degrees, root position (metres, the
    point on the ground between the feet), and the joint pose."""

    yaw: float = 0.0
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pose: Pose = field(default_factory=Pose)


@dataclass
class Primitives:
    """Ellipsoids in world space. K primitives:
    centers (K, 3); rot (K, 3, 3) columns = ellipsoid axes; radii (K, 3); albedo (K, 3);
    graphic (K,) code of the front-only print (0 = none); graphic_rgb (K, 3); group (K,) GROUP_*;
    owner (K,) index of the actor in a multi-actor frame."""

    centers: np.ndarray
    rot: np.ndarray
    radii: np.ndarray
    albedo: np.ndarray
    graphic: np.ndarray
    graphic_rgb: np.ndarray
    group: np.ndarray
    owner: np.ndarray

    @staticmethod
    def concat(parts: list[Primitives]) -> Primitives:
        return Primitives(
            *(np.concatenate([getattr(p, name) for p in parts]) for name in Primitives.__dataclass_fields__)
        )


def _rot_y(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _limb_dir(pitch: float, roll: float, side: float) -> np.ndarray:
    """Unit direction of a limb hanging down, lifted sideways by roll and swung forward by pitch."""
    return np.array([side * np.sin(roll), -np.cos(roll) * np.cos(pitch), np.cos(roll) * np.sin(pitch)])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.cross is generic and slow for single 3-vectors; this runs ~30 times per frame.
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _axis_frame(u: np.ndarray) -> np.ndarray:
    """Rotation whose second column is u (a limb's long axis)."""
    ref = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    e1 = _cross(u, ref)
    e1 /= np.sqrt(e1 @ e1)
    e3 = _cross(e1, u)
    return np.stack([e1, u, e3], axis=1)


class _Builder:
    def __init__(self) -> None:
        self.centers: list[np.ndarray] = []
        self.rot: list[np.ndarray] = []
        self.radii: list[tuple[float, float, float]] = []
        self.albedo: list[tuple[float, float, float]] = []
        self.graphic: list[int] = []
        self.graphic_rgb: list[tuple[float, float, float]] = []
        self.group: list[int] = []

    def add(self, center, rot, radii, albedo, group=GROUP_BODY, graphic=0, graphic_rgb=(0, 0, 0)) -> None:
        self.centers.append(np.asarray(center, dtype=np.float64))
        self.rot.append(rot)
        self.radii.append(radii)
        self.albedo.append(albedo)
        self.graphic.append(graphic)
        self.graphic_rgb.append(graphic_rgb)
        self.group.append(group)

    def segment(self, a: np.ndarray, b: np.ndarray, radius: float, albedo) -> None:
        d = b - a
        length = float(np.sqrt(d @ d))
        u = d / max(length, 1e-6)
        self.add((a + b) / 2, _axis_frame(u), (radius, length / 2 + radius * 0.35, radius), albedo)

    def build(self, owner: int) -> Primitives:
        k = len(self.centers)
        return Primitives(
            centers=np.stack(self.centers),
            rot=np.stack(self.rot),
            radii=np.asarray(self.radii, dtype=np.float64),
            albedo=np.asarray(self.albedo, dtype=np.float64),
            graphic=np.asarray(self.graphic, dtype=np.int64),
            graphic_rgb=np.asarray(self.graphic_rgb, dtype=np.float64),
            group=np.asarray(self.group, dtype=np.int64),
            owner=np.full(k, owner, dtype=np.int64),
        )


def body_primitives(actor: Actor, state: BodyState, owner: int = 0) -> Primitives:
    """World-space ellipsoids of one actor in one state."""
    hs, ws = HEIGHT_SCALE[actor.height], BUILD_SCALE[actor.build]
    skin, hair = SKIN_RGB[actor.skin_tone], HAIR_RGB[actor.hair_colour]
    top, bottom, shoe = (
        TOP_RGB[actor.top_colour],
        BOTTOM_RGB[actor.bottom_colour],
        SHOE_RGB[actor.shoe_colour],
    )
    p = state.pose
    ident = np.eye(3)

    ankle_y = 0.085
    hip_y = 0.90 * hs
    shoulder_y = hip_y + 0.50 * hs
    hk = 1.35  # stylised head: large enough to read hair and face at 64 px
    head_c = np.array([0.0, shoulder_y + 0.07 * hs + 0.12 * hk, 0.0])
    thigh_len, shin_len = 0.42 * hs, hip_y - 0.42 * hs - ankle_y
    upper_len, fore_len = 0.29 * hs, 0.30 * hs

    b = _Builder()
    # Torso carries the front-only print; pelvis and legs are the bottom garment.
    torso_c = np.array([0.0, hip_y + 0.27 * hs, 0.0])
    graphic_rgb = (0.05, 0.05, 0.05) if actor.top_colour in _LIGHT_TOPS else (0.97, 0.97, 0.97)
    b.add(
        torso_c,
        ident,
        (0.17 * ws, 0.30 * hs, 0.11 * ws**1.3),
        top,
        GROUP_BODY,
        GRAPHIC_CODES[actor.top_graphic],
        graphic_rgb,
    )
    b.add((0.0, hip_y + 0.03, 0.0), ident, (0.15 * ws, 0.11 * hs, 0.105 * ws), bottom)
    b.add((0.0, shoulder_y + 0.04 * hs, 0.0), ident, (0.045, 0.07 * hs, 0.045), skin)  # neck
    # Head group: head, eyes, nose, hair cap.
    b.add(head_c, ident, (0.10 * hk, 0.12 * hk, 0.105 * hk), skin, GROUP_HEAD)
    for side in (-1.0, 1.0):
        b.add(
            head_c + hk * np.array([0.038 * side, 0.018, 0.088]),
            ident,
            (0.02 * hk, 0.014 * hk, 0.02 * hk),
            _EYE_RGB,
            GROUP_HEAD,
        )
    b.add(
        head_c + hk * np.array([0.0, -0.02, 0.10]),
        ident,
        (0.02 * hk, 0.03 * hk, 0.022 * hk),
        skin,
        GROUP_HEAD,
    )
    b.add(
        head_c + hk * np.array([0.0, 0.03, -0.025]),
        ident,
        (0.109 * hk, 0.116 * hk, 0.112 * hk),
        hair,
        GROUP_HEAD,
    )
    if actor.hair_style == "long":
        # A curtain down the back plus two locks beside the face: long hair reads from every side.
        b.add(head_c + hk * np.array([0.0, -0.17, -0.075]), ident, (0.125 * hk, 0.21 * hk, 0.06 * hk), hair)
        for side in (-1.0, 1.0):
            b.add(
                head_c + hk * np.array([0.088 * side, -0.13, -0.01]),
                ident,
                (0.04 * hk, 0.15 * hk, 0.06 * hk),
                hair,
            )
    elif actor.hair_style == "ponytail":
        # A high bun shows above the head from the front; the tail hangs down the back.
        b.add(
            head_c + hk * np.array([0.0, 0.17, -0.07]),
            ident,
            (0.075 * hk, 0.075 * hk, 0.075 * hk),
            hair,
            GROUP_HEAD,
        )
        b.add(head_c + hk * np.array([0.0, -0.02, -0.17]), ident, (0.045 * hk, 0.15 * hk, 0.045 * hk), hair)

    # Ground the lower foot (the root's y then only lifts the body, e.g. in a jump).
    drop = (
        min(
            hip_y - thigh_len * np.cos(th) - shin_len * np.cos(sh)
            for th, sh in ((p.thigh_l, p.shin_l), (p.thigh_r, p.shin_r))
        )
        - ankle_y
    )
    for side, ap, ar, fp, fr, th, sh in (
        (1.0, p.arm_pitch_l, p.arm_roll_l, p.fore_pitch_l, p.fore_roll_l, p.thigh_l, p.shin_l),
        (-1.0, p.arm_pitch_r, p.arm_roll_r, p.fore_pitch_r, p.fore_roll_r, p.thigh_r, p.shin_r),
    ):
        shoulder = np.array([side * (0.17 * ws + 0.03), shoulder_y - 0.03, 0.0])
        elbow = shoulder + upper_len * _limb_dir(ap, ar, side)
        hand = elbow + fore_len * _limb_dir(fp, fr, side)
        sleeve_end = shoulder + 0.55 * (elbow - shoulder)
        b.segment(shoulder, sleeve_end, 0.062 * ws**0.8, top)  # short sleeve
        b.segment(sleeve_end, elbow, 0.055 * ws**0.8, skin)
        b.segment(elbow, hand, 0.05 * ws**0.8, skin)
        hip = np.array([side * 0.085 * ws, hip_y, 0.0])
        knee = hip + thigh_len * _limb_dir(th, 0.0, side)
        ankle = knee + shin_len * _limb_dir(sh, 0.0, side)
        b.segment(hip, knee, 0.08 * ws**0.9, bottom)
        b.segment(knee, ankle, 0.065 * ws**0.9, bottom)
        fwd = _limb_dir(sh + np.pi / 2, 0.0, side)  # the foot points along the shin rotated forward
        b.add(ankle + 0.06 * fwd - (0, 0.035, 0), _axis_frame(fwd), (0.055, 0.115, 0.05), shoe)

    prims = b.build(owner)
    prims.centers[:, 1] -= drop
    # Body yaw and root translation.
    r = _rot_y(state.yaw)
    prims.centers = prims.centers @ r.T + np.asarray(state.position, dtype=np.float64)
    prims.rot = np.einsum("ij,kjl->kil", r, prims.rot)
    return prims


def standing_height(actor: Actor) -> float:
    """Approximate height of the top of the hair above the ground, in metres."""
    hs = HEIGHT_SCALE[actor.height]
    return 0.90 * hs + 0.50 * hs + 0.07 * hs + 0.12 * 1.35 + 0.146 * 1.35
