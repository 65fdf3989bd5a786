"""Scenes: a painted backdrop plus the light that falls on the actor.

A `Scene` is a frozen value (kind, lighting, layout variant, light direction and strength), so the same
scene renders the same pixels, and `sample_scene` draws the lighting variation of a kind from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

SCENE_KINDS: tuple[str, ...] = ("studio", "beach", "forest", "city_street", "snow", "night")
LIGHTINGS: dict[str, tuple[str, ...]] = {
    "studio": ("softbox", "spotlight"),
    "beach": ("daylight", "overcast", "sunset"),
    "forest": ("daylight", "overcast", "sunset"),
    "city_street": ("daylight", "overcast", "sunset"),
    "snow": ("daylight", "overcast", "sunset"),
    "night": ("lamplight", "moonlight"),
}
# (key light rgb, ambient rgb) per lighting, before the per-scene intensity jitter.
_LIGHT_RGB: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # Key + ambient add up to about the same brightness everywhere and tints stay mild: the scene sets the
    # mood, but an actor's colours (skin, hair, clothes) must stay readable in every scene.
    "softbox": ((0.70, 0.70, 0.70), (0.46, 0.46, 0.47)),
    "spotlight": ((0.84, 0.82, 0.79), (0.33, 0.33, 0.35)),
    "daylight": ((0.78, 0.77, 0.73), (0.39, 0.40, 0.44)),
    "overcast": ((0.55, 0.56, 0.58), (0.58, 0.59, 0.61)),
    "sunset": ((0.84, 0.74, 0.62), (0.38, 0.37, 0.41)),
    "lamplight": ((0.80, 0.72, 0.60), (0.34, 0.36, 0.42)),
    "moonlight": ((0.64, 0.68, 0.80), (0.38, 0.40, 0.47)),
}


@dataclass(frozen=True)
class Scene:
    """kind: one of SCENE_KINDS; lighting: one of LIGHTINGS[kind]; variant: seed of the backdrop layout;
    light_azimuth/elevation: direction the key light comes from (degrees, 0 = from the camera side);
    intensity: multiplies key and ambient light."""

    kind: str = "studio"
    lighting: str = "softbox"
    variant: int = 0
    light_azimuth: float = 30.0
    light_elevation: float = 45.0
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in SCENE_KINDS:
            raise ValueError(f"scene kind must be one of {SCENE_KINDS}, got {self.kind!r}")
        if self.lighting not in LIGHTINGS[self.kind]:
            raise ValueError(
                f"lighting for {self.kind} must be one of {LIGHTINGS[self.kind]}, got {self.lighting!r}"
            )
        if not 0.2 <= self.intensity <= 2.0:
            raise ValueError(f"scene intensity must be in [0.2, 2.0], got {self.intensity}")

    def light(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(direction towards the key light (3,), key rgb (3,), ambient rgb (3,)) in world space."""
        a, e = np.deg2rad(self.light_azimuth), np.deg2rad(self.light_elevation)
        direction = np.array([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])
        key, amb = _LIGHT_RGB[self.lighting]
        return direction, np.asarray(key) * self.intensity, np.asarray(amb) * self.intensity

    def with_lighting(self, lighting: str) -> Scene:
        return replace(self, lighting=lighting)


def sample_scene(kind: str, rng: np.random.Generator, lighting: str | None = None) -> Scene:
    """A random scene of one kind: lighting, layout and light direction drawn from `rng`."""
    if kind not in SCENE_KINDS:
        raise ValueError(f"scene kind must be one of {SCENE_KINDS}, got {kind!r}")
    options = LIGHTINGS[kind]
    if lighting is None:
        lighting = options[int(rng.integers(len(options)))]
    return Scene(
        kind=kind,
        lighting=lighting,
        variant=int(rng.integers(1 << 30)),
        light_azimuth=float(rng.uniform(-45, 45)),
        light_elevation=float(rng.uniform(30, 60)),
        intensity=float(rng.uniform(0.94, 1.06)),
    )


def horizon_fraction(elevation: float) -> float:
    """Row of the horizon as a fraction of the image height (0 = top): a camera looking down sees more
    ground, one looking up more sky."""
    return float(np.clip(0.56 - elevation / 75.0, -0.3, 1.3))


def _mix(a, b, t: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return a + (b - a) * t[..., None]


def _sky_ground(
    h: int, w: int, horizon: float, sky_top, sky_low, ground_near, ground_far
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ys = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h  # (H, 1)
    ys = np.broadcast_to(ys, (h, w))
    xs = np.broadcast_to((np.arange(w, dtype=np.float32)[None, :] + 0.5) / w, (h, w))
    sky_t = np.clip(ys / max(horizon, 1e-3), 0, 1)
    ground_t = np.clip((ys - horizon) / max(1.0 - horizon, 1e-3), 0, 1)
    img = np.where(
        (ys < horizon)[..., None], _mix(sky_top, sky_low, sky_t), _mix(ground_far, ground_near, ground_t)
    )
    return img.astype(np.float32), xs, ys


@lru_cache(maxsize=64)
def _backdrop_cached(scene: Scene, elevation: float, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(scene.variant)
    hz = horizon_fraction(elevation)
    tint = {
        "sunset": np.array([1.05, 0.93, 0.85], np.float32),
        "overcast": np.array([0.92, 0.94, 0.97], np.float32),
    }.get(scene.lighting, np.ones(3, np.float32))
    k = scene.kind
    if k == "studio":
        base = (0.93, 0.93, 0.94) if scene.lighting == "softbox" else (0.55, 0.58, 0.63)
        img, xs, ys = _sky_ground(
            h, w, hz, base, np.asarray(base) * 0.97, np.asarray(base) * 0.88, np.asarray(base) * 0.95
        )
        if scene.lighting == "spotlight":
            r2 = (xs - 0.5) ** 2 + ((ys - 0.55) * 0.8) ** 2
            img = img * (0.75 + 0.45 * np.exp(-r2 / 0.06))[..., None]
    elif k == "beach":
        img, xs, ys = _sky_ground(
            h, w, hz, (0.35, 0.60, 0.92), (0.72, 0.85, 0.97), (0.93, 0.84, 0.62), (0.88, 0.80, 0.60)
        )
        sea = (ys >= hz) & (ys < hz + 0.12)
        img[sea] = (
            np.array([0.12, 0.45, 0.70], np.float32) + 0.08 * np.sin(xs[sea] * 40 + ys[sea] * 90)[:, None]
        )
        foam = (ys >= hz + 0.12) & (ys < hz + 0.14)
        img[foam] = (0.95, 0.96, 0.96)
        cx, cy = rng.uniform(0.1, 0.9), hz * rng.uniform(0.2, 0.6)
        sun = (xs - cx) ** 2 + (ys - cy) ** 2 < 0.004
        img[sun] = (1.0, 0.97, 0.80)
    elif k == "forest":
        img, xs, ys = _sky_ground(
            h, w, hz, (0.55, 0.72, 0.62), (0.78, 0.86, 0.76), (0.20, 0.42, 0.14), (0.28, 0.48, 0.20)
        )
        for _ in range(9):
            cx, width = rng.uniform(0, 1), rng.uniform(0.03, 0.06)
            top = hz - rng.uniform(0.15, 0.45)
            trunk = (np.abs(xs - cx) < width / 2) & (ys > top) & (ys < hz + 0.03)
            img[trunk] = np.array([0.33, 0.22, 0.12], np.float32) * rng.uniform(0.8, 1.1)
            crown = ((xs - cx) / (width * 3.2)) ** 2 + ((ys - top) / 0.13) ** 2 < 1
            img[crown] = np.array([0.10, 0.38, 0.12], np.float32) * rng.uniform(0.8, 1.2)
    elif k == "city_street":
        img, xs, ys = _sky_ground(
            h, w, hz, (0.55, 0.70, 0.88), (0.80, 0.86, 0.92), (0.30, 0.30, 0.32), (0.42, 0.42, 0.44)
        )
        x = 0.0
        while x < 1.0:
            bw = rng.uniform(0.12, 0.25)
            top = hz - rng.uniform(0.2, 0.55)
            grey = rng.uniform(0.45, 0.75)
            colour = np.array(
                [grey, grey * rng.uniform(0.9, 1.0), grey * rng.uniform(0.85, 1.05)], np.float32
            )
            bld = (xs >= x) & (xs < x + bw - 0.01) & (ys > top) & (ys < hz)
            img[bld] = colour
            win = bld & ((xs * w * 0.5 % 1.0) < 0.5) & ((ys * h * 0.33 % 1.0) < 0.4)
            img[win] = colour * 0.55
            x += bw
        stripe = (np.abs(ys - (hz + (1 - hz) * 0.55)) < 0.012) & ((xs * 6 % 1.0) < 0.5)
        img[stripe] = (0.92, 0.90, 0.70)
    elif k == "snow":
        img, xs, ys = _sky_ground(
            h, w, hz, (0.62, 0.70, 0.80), (0.86, 0.89, 0.93), (0.97, 0.97, 0.99), (0.90, 0.92, 0.96)
        )
        for _ in range(3):
            cx, hw, peak = rng.uniform(0, 1), rng.uniform(0.2, 0.4), rng.uniform(0.1, 0.25)
            mount = (ys < hz) & (ys > hz - peak * (1 - np.abs(xs - cx) / hw))
            img[mount] = (0.72, 0.76, 0.84)
            cap = mount & (ys < hz - peak * 0.7 * (1 - np.abs(xs - cx) / hw))
            img[cap] = (0.96, 0.97, 1.0)
        flakes = rng.random((h, w)) < 0.012
        img[flakes] = (1.0, 1.0, 1.0)
    elif k == "night":
        img, xs, ys = _sky_ground(
            h, w, hz, (0.02, 0.03, 0.10), (0.08, 0.10, 0.22), (0.10, 0.10, 0.14), (0.07, 0.07, 0.10)
        )
        stars = (rng.random((h, w)) < 0.015) & (ys < hz)
        img[stars] = (0.9, 0.9, 0.8)
        if scene.lighting == "moonlight":
            cx, cy = rng.uniform(0.15, 0.85), hz * rng.uniform(0.2, 0.5)
            moon = (xs - cx) ** 2 + (ys - cy) ** 2 < 0.003
            img[moon] = (0.95, 0.95, 0.85)
        else:
            for cx in rng.uniform(0.05, 0.95, size=2):
                pole = (np.abs(xs - cx) < 0.008) & (ys > hz - 0.35) & (ys < hz + 0.05)
                img[pole] = (0.20, 0.20, 0.22)
                glow = np.exp(-((xs - cx) ** 2 + (ys - (hz - 0.36)) ** 2) / 0.004)
                img += glow[..., None] * np.array([0.9, 0.7, 0.35], np.float32)
    else:  # pragma: no cover - guarded by Scene.__post_init__
        raise ValueError(k)
    img = np.clip(img * tint, 0, 1).astype(np.float32)
    img.setflags(write=False)
    return img


def backdrop(scene: Scene, elevation: float, size: tuple[int, int]) -> np.ndarray:
    """Background image (H, W, 3) float32 in [0, 1] for a camera elevation (read-only, cached)."""
    h, w = size
    return _backdrop_cached(scene, round(float(elevation), 3), int(h), int(w))
