"""What every metric returns, the reference-image record, and uniform frame sampling."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

REGIONS = ("face", "body", "three_view")


@dataclass(frozen=True)
class RefImage:
    """One conditioning image: RGB uint8 (H, W, 3), its region and (if known) its viewpoint."""

    image: np.ndarray
    region: str = "body"
    view: str = "unknown"

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(
                f"reference image must be uint8 (H, W, 3), got {self.image.dtype} {self.image.shape}"
            )


@dataclass
class MetricResult:
    """A score in [0, 1] (or a physical unit, see `unit`), or "n/a" with the reason.

    `per_frame` holds the per-frame values that were averaged; `by_view` an optional
    front/side/back breakdown (Table 3); `extra` anything a back-end wants to record.
    """

    name: str
    backend: str
    value: float | None = None
    na_reason: str | None = None
    unit: str = "score"
    per_frame: list[float] = field(default_factory=list)
    by_view: dict[str, float | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.value is None) == (self.na_reason is None):
            raise ValueError("a MetricResult has exactly one of value and na_reason")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"{self.name}: non-finite value {self.value}")

    @classmethod
    def na(cls, name: str, backend: str, why: str, **kw: Any) -> MetricResult:
        return cls(name=name, backend=backend, value=None, na_reason=why, **kw)

    @property
    def is_na(self) -> bool:
        return self.value is None

    def format(self, digits: int = 3) -> str:
        return f"n/a: {self.na_reason}" if self.value is None else f"{self.value:.{digits}f}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "backend": self.backend,
            "unit": self.unit,
            "value": self.value,
            "display": self.format(),
        }
        if self.na_reason is not None:
            out["na_reason"] = self.na_reason
        if self.per_frame:
            out["per_frame"] = [round(float(v), 6) for v in self.per_frame]
        if self.by_view:
            out["by_view"] = self.by_view
        if self.extra:
            out["extra"] = self.extra
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MetricResult:
        return cls(
            name=d["name"],
            backend=d["backend"],
            value=d.get("value"),
            na_reason=d.get("na_reason"),
            unit=d.get("unit", "score"),
            per_frame=list(d.get("per_frame", [])),
            by_view=dict(d.get("by_view", {})),
            extra=dict(d.get("extra", {})),
        )


def sample_indices(num_frames: int, k: int = 32) -> list[int]:
    """`k` frame indices spread uniformly over the clip (all frames when the clip is shorter)."""
    if num_frames <= 0:
        return []
    if num_frames <= k:
        return list(range(num_frames))
    return [int(round(x)) for x in np.linspace(0, num_frames - 1, k)]


def mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None
