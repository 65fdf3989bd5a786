"""Viewpoint-adaptive Monte Carlo reference sampling (training), and the baselines for the ablation.

For each training clip the actor has many reference images, most of them frontal. Drawing them
uniformly gives the model mostly frontal references, so it learns to copy one view. The paper draws
references one at a time, without replacement, with probability proportional to a weight; after each
draw x*, every remaining candidate x_j whose yaw is within delta of x*'s (on the circle) has its
weight multiplied by gamma < 1, so later draws favour complementary viewpoints. Released setting:
delta = 25 deg, gamma = 0.25, 3 face + 3 body references per sample.

Face references are drawn from ``region == "face"``; body references from ``"body"`` and
``"three_view"`` (the model treats a three-view sheet as a body reference).

Missing angles: a reference with no ``angle`` falls back to the nominal yaw of its ``view`` label
(front 0, right 90, back 180, left 270, as ActorWorld and the curation label them; "side" is 90);
without either it is never down-weighted and drawing it down-weights nothing.

All samplers take an explicit ``numpy.random.Generator``: the caller owns the randomness (the dataset
derives one per (seed, stream position)), so draws are reproducible and resumable without hidden state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wildactor.data.schema import ReferenceRecord, angular_distance

SAMPLERS: tuple[str, ...] = ("adaptive", "random", "self_crop_only")

# Nominal yaw of a view label, used only when a reference has no angle.
VIEW_ANGLES: dict[str, float] = {"front": 0.0, "right": 90.0, "side": 90.0, "back": 180.0, "left": 270.0}


def reference_angle(ref: ReferenceRecord) -> float | None:
    """The yaw used for sampling: the angle, else the view label's nominal yaw, else None."""
    if ref.angle is not None:
        return float(ref.angle)
    if ref.view is not None:
        return VIEW_ANGLES.get(ref.view)
    return None


def downweight_neighbours(
    weights: np.ndarray, angles: Sequence[float | None], drawn: int, delta_deg: float, gamma: float
) -> np.ndarray:
    """New weights after drawing ``drawn``: candidates within ``delta_deg`` of it (on the circle) times gamma.

    The drawn candidate itself is left to the caller (it is removed, not down-weighted).
    """
    out = weights.copy()
    a = angles[drawn]
    if a is None:
        return out
    for j, b in enumerate(angles):
        if j != drawn and b is not None and angular_distance(a, b) < delta_deg:
            out[j] *= gamma
    return out


def _draw_one(weights: np.ndarray, available: np.ndarray, rng: np.random.Generator) -> int:
    w = np.where(available, weights, 0.0)
    total = w.sum()
    if total <= 0.0:  # every remaining weight underflowed: fall back to uniform over what is left
        w = available.astype(np.float64)
        total = w.sum()
    cdf = np.cumsum(w)
    i = int(np.searchsorted(cdf, rng.random() * total, side="right"))
    i = min(i, len(w) - 1)
    while not available[i]:  # guards against a zero-width bin at the boundary
        i -= 1
    return i


@dataclass(frozen=True)
class ViewpointAdaptiveSampler:
    """Weighted draws without replacement; each draw multiplies neighbours' weights by gamma."""

    delta_deg: float = 25.0
    gamma: float = 0.25
    num_face: int = 3
    num_body: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.delta_deg <= 180.0:
            raise ValueError(f"delta_deg must be in [0, 180], got {self.delta_deg}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.num_face < 0 or self.num_body < 0 or self.num_face + self.num_body == 0:
            raise ValueError(
                f"need num_face, num_body >= 0 and not both 0, got {self.num_face}, {self.num_body}"
            )

    def draw(
        self,
        angles: Sequence[float | None],
        k: int,
        rng: np.random.Generator,
        weights: Sequence[float] | None = None,
    ) -> list[int]:
        """Indices of min(k, len(angles)) distinct candidates, in draw order."""
        n = len(angles)
        w = np.ones(n, dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64).copy()
        if w.shape != (n,) or (w < 0).any():
            raise ValueError("weights must be one non-negative number per candidate")
        available = np.ones(n, dtype=bool)
        picked: list[int] = []
        for _ in range(min(k, n)):
            i = _draw_one(w, available, rng)
            picked.append(i)
            available[i] = False
            if self.gamma != 1.0:
                w = downweight_neighbours(w, angles, i, self.delta_deg, self.gamma)
        return picked

    def candidates(self, refs: Sequence[ReferenceRecord]) -> tuple[list[int], list[int]]:
        """Indices of the face candidates and of the body candidates (body + three_view)."""
        face = [i for i, r in enumerate(refs) if r.region == "face"]
        body = [i for i, r in enumerate(refs) if r.region in ("body", "three_view")]
        return face, body

    def select(
        self, refs: Sequence[ReferenceRecord], rng: np.random.Generator
    ) -> tuple[list[int], list[int]]:
        """Indices into ``refs``: up to ``num_face`` face references, then up to ``num_body`` body ones."""
        face, body = self.candidates(refs)
        out = []
        for pool, k in ((face, self.num_face), (body, self.num_body)):
            angles = [reference_angle(refs[i]) for i in pool]
            out.append([pool[j] for j in self.draw(angles, k, rng)])
        return out[0], out[1]


@dataclass(frozen=True)
class RandomSampler(ViewpointAdaptiveSampler):
    """Ablation baseline: uniform draws without replacement (viewpoints ignored)."""

    gamma: float = 1.0

    def __post_init__(self) -> None:
        if self.gamma != 1.0:
            raise ValueError("RandomSampler ignores viewpoints: gamma must be 1")
        super().__post_init__()


@dataclass(frozen=True)
class SelfCropOnlySampler(RandomSampler):
    """Ablation baseline ("raw crop"): uniform draws among the self-cropped references only."""

    def candidates(self, refs: Sequence[ReferenceRecord]) -> tuple[list[int], list[int]]:
        face, body = super().candidates(refs)
        own = {i for i, r in enumerate(refs) if r.source == "self_crop"}
        return [i for i in face if i in own], [i for i in body if i in own]


def build_sampler(
    kind: str, delta_deg: float = 25.0, gamma: float = 0.25, num_face: int = 3, num_body: int = 3
) -> ViewpointAdaptiveSampler:
    """The sampler named ``kind`` (adaptive | random | self_crop_only)."""
    if kind == "adaptive":
        return ViewpointAdaptiveSampler(
            delta_deg=delta_deg, gamma=gamma, num_face=num_face, num_body=num_body
        )
    if kind == "random":
        return RandomSampler(delta_deg=delta_deg, num_face=num_face, num_body=num_body)
    if kind == "self_crop_only":
        return SelfCropOnlySampler(delta_deg=delta_deg, num_face=num_face, num_body=num_body)
    raise ValueError(f"unknown sampler {kind!r} (expected one of {', '.join(SAMPLERS)})")
