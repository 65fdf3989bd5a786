"""The ActorWorld camera: weak perspective (orthographic rays, scale from distance)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=256)
def _basis(elevation: float, azimuth: float) -> np.ndarray:
    e, a = np.deg2rad(elevation), np.deg2rad(azimuth)
    back = np.array([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])
    right = np.array([np.cos(a), 0.0, -np.sin(a)])
    up = np.cross(back, right)
    return np.stack([right, up, back])


@dataclass(frozen=True)
class Camera:
    """Looks at `target` (metres, world) from `elevation` degrees above the horizon (negative = from
    below) and `azimuth` degrees around the vertical axis. The visible frame height in metres is
    `distance * 0.8`, so a larger distance shows the actor smaller."""

    elevation: float = 8.0
    azimuth: float = 0.0
    distance: float = 3.0
    target: tuple[float, float, float] = (0.0, 1.05, 0.0)

    def __post_init__(self) -> None:
        if not -89.0 <= self.elevation <= 89.0:
            raise ValueError(f"camera elevation must be in [-89, 89] degrees, got {self.elevation}")
        if not self.distance > 0:
            raise ValueError(f"camera distance must be > 0, got {self.distance}")

    @property
    def view_height(self) -> float:
        """Metres of world covered by the image height."""
        return self.distance * 0.8

    def basis(self) -> np.ndarray:
        """Rows: camera right, up and back (towards the viewer) in world coordinates, (3, 3)."""
        return _basis(float(self.elevation), float(self.azimuth)).copy()

    def project(self, points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """World points (..., 3) -> pixel coordinates (..., 2) as (x, y), y down."""
        h, w = size
        ppm = h / self.view_height
        cam = (np.asarray(points, dtype=np.float64) - np.asarray(self.target)) @ self.basis().T
        x = cam[..., 0] * ppm + w / 2
        y = h / 2 - cam[..., 1] * ppm
        return np.stack([x, y], axis=-1)
