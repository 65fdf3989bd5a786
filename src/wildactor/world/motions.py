"""Motions: parameterised functions of normalised clip time t in [0, 1] -> `BodyState`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildactor.world.body import BodyState, Pose

MOTION_KINDS: tuple[str, ...] = ("idle", "walk_in_place", "walk_across", "turn_around", "wave", "jump")


@dataclass(frozen=True)
class Motion:
    """kind: one of MOTION_KINDS; yaw: body yaw at t = 0 (degrees); cycles: gait / wave / jump cycles over
    the clip; sweep: yaw change over the clip (turn_around only, degrees, sign = direction);
    distance: metres travelled along the facing direction (walk_across only); start_x: root x at t = 0;
    arm: which arm waves ('left' | 'right')."""

    kind: str = "idle"
    yaw: float = 0.0
    cycles: float = 1.0
    sweep: float = 180.0
    distance: float = 1.2
    start_x: float = 0.0
    arm: str = "right"

    def __post_init__(self) -> None:
        if self.kind not in MOTION_KINDS:
            raise ValueError(f"motion kind must be one of {MOTION_KINDS}, got {self.kind!r}")
        if not 0.0 <= self.cycles <= 8.0:
            raise ValueError(f"motion cycles must be in [0, 8], got {self.cycles}")
        if self.arm not in ("left", "right"):
            raise ValueError(f"waving arm must be 'left' or 'right', got {self.arm!r}")

    def yaw_at(self, t: float) -> float:
        if self.kind == "turn_around":
            return float((self.yaw + self.sweep * _ease(t)) % 360.0)
        if self.kind == "idle":
            return float((self.yaw + 4.0 * np.sin(2 * np.pi * t)) % 360.0)
        return float(self.yaw % 360.0)

    def state(self, t: float) -> BodyState:
        """Body state at normalised time t in [0, 1]."""
        t = float(np.clip(t, 0.0, 1.0))
        phase = 2 * np.pi * self.cycles * t
        yaw = self.yaw_at(t)
        x, y, z = self.start_x, 0.0, 0.0
        if self.kind in ("walk_in_place", "walk_across"):
            pose = _walk_pose(phase, 1.0)
            if self.kind == "walk_across":
                fwd = np.deg2rad(yaw)
                x += self.distance * (t - 0.5) * np.sin(fwd)
                z += self.distance * (t - 0.5) * np.cos(fwd)
        elif self.kind == "turn_around":
            pose = _walk_pose(2 * np.pi * 2.0 * t, 0.35)  # small steps while turning
        elif self.kind == "wave":
            pose = _wave_pose(phase, self.arm)
        elif self.kind == "jump":
            hop = np.sin(phase / 2) ** 2  # 0 on the ground, 1 at the top, once per cycle
            crouch = np.clip(np.cos(phase / 2) ** 2 - 0.6, 0, None) / 0.4  # knees bend around take-off
            y = 0.30 * hop
            pose = _jump_pose(crouch, hop)
        else:
            breath = np.sin(phase)
            pose = Pose(arm_pitch_l=0.05 * breath, arm_pitch_r=-0.05 * breath)
        return BodyState(yaw=yaw, position=(float(x), float(y), float(z)), pose=pose)

    def states(self, num_frames: int) -> list[BodyState]:
        """States at num_frames evenly spaced times covering [0, 1]."""
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        ts = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
        return [self.state(float(t)) for t in ts]


def _ease(t: float) -> float:
    return float(0.5 - 0.5 * np.cos(np.pi * t))


def _walk_pose(phase: float, amp: float) -> Pose:
    s = np.sin(phase)
    knee_l = 0.7 * amp * max(0.0, np.sin(phase + 1.2))
    knee_r = 0.7 * amp * max(0.0, np.sin(phase + 1.2 + np.pi))
    thigh_l, thigh_r = 0.45 * amp * s, -0.45 * amp * s
    arm_l, arm_r = -0.45 * amp * s, 0.45 * amp * s
    return Pose(
        arm_pitch_l=arm_l,
        fore_pitch_l=arm_l + 0.35,
        arm_pitch_r=arm_r,
        fore_pitch_r=arm_r + 0.35,
        thigh_l=thigh_l,
        shin_l=thigh_l - knee_l,
        thigh_r=thigh_r,
        shin_r=thigh_r - knee_r,
    )


def _wave_pose(phase: float, arm: str) -> Pose:
    swing = 0.4 * np.sin(phase)
    raised = dict(arm_pitch=0.35, arm_roll=2.3, fore_pitch=0.3, fore_roll=2.8 + swing)
    if arm == "left":
        return Pose(
            arm_pitch_l=raised["arm_pitch"],
            arm_roll_l=raised["arm_roll"],
            fore_pitch_l=raised["fore_pitch"],
            fore_roll_l=raised["fore_roll"],
        )
    return Pose(
        arm_pitch_r=raised["arm_pitch"],
        arm_roll_r=raised["arm_roll"],
        fore_pitch_r=raised["fore_pitch"],
        fore_roll_r=raised["fore_roll"],
    )


def _jump_pose(crouch: float, hop: float) -> Pose:
    thigh = 0.9 * crouch + 0.15 * hop
    arms = -0.6 * crouch + 1.2 * hop
    return Pose(
        arm_pitch_l=arms,
        arm_pitch_r=arms,
        fore_pitch_l=arms + 0.3,
        fore_pitch_r=arms + 0.3,
        arm_roll_l=0.12 + 0.3 * hop,
        arm_roll_r=0.12 + 0.3 * hop,
        thigh_l=thigh,
        thigh_r=thigh,
        shin_l=thigh - 1.5 * crouch - 0.2 * hop,
        shin_r=thigh - 1.5 * crouch - 0.2 * hop,
    )


def sample_motion(kind: str, rng: np.random.Generator, yaw: float | None = None) -> Motion:
    """A random motion of one kind. `yaw` fixes the body yaw at t = 0 (else drawn uniformly; a walk
    across draws a sideways heading)."""
    if kind not in MOTION_KINDS:
        raise ValueError(f"motion kind must be one of {MOTION_KINDS}, got {kind!r}")
    if yaw is None:
        if kind == "walk_across":
            yaw = float(rng.choice([1, -1]) * rng.uniform(60, 120)) % 360.0
        else:
            yaw = float(rng.uniform(0, 360))
    cycles = {
        "idle": 1.0,
        "walk_in_place": 1.0,
        "walk_across": 1.0,
        "turn_around": 1.0,
        "wave": 2.0,
        "jump": 1.0,
    }[kind]
    cycles *= float(rng.uniform(0.85, 1.15)) if kind not in ("jump", "turn_around") else 1.0
    sweep = float(rng.choice([1, -1]) * rng.uniform(150, 210))
    return Motion(
        kind=kind,
        yaw=float(yaw),
        cycles=cycles,
        sweep=sweep,
        distance=float(rng.uniform(1.0, 1.6)),
        start_x=float(rng.uniform(-0.15, 0.15)),
        arm=str(rng.choice(["left", "right"])),
    )
