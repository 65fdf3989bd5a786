"""Realism: Fréchet distance between generated and real ActorWorld clips in the probes' feature space.

An FID with the world's own feature extractor: frames sampled from each clip go through the ActorWorld frame
probe up to its penultimate layer (the 256 features every attribute / view / scene head reads); each set of
features is summarised by a Gaussian (mean, covariance) and

    FD = |mu_g - mu_r|^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2)).

0 means the two sets have the same first and second moments. Like every FID it is biased upward for small
sets, so compare numbers measured on sets of the same size, and read them against the floor: the distance
between two independent sets of real clips of that size (`benchmarks/default_model_eval.py` reports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from wildactor.bench.metrics.base import MetricResult, sample_indices
from wildactor.bench.metrics.face import BackendUnavailable

NAME = "frechet_distance"
BACKEND = "actorworld-probe-penultimate"


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, N >= 2."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need (N >= 2, D) features, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Tr((S1 S2)^(1/2)) is computed as Tr((A S2 A)^(1/2)) with A = S1^(1/2): the same eigenvalues, but of a
    symmetric PSD matrix, so no complex round-off (which `scipy.linalg.sqrtm(S1 @ S2)` can produce).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: {mu1.shape} {sigma1.shape} vs {mu2.shape} {sigma2.shape}")
    a = _psd_sqrt(sigma1)
    cross = np.linalg.eigvalsh((a @ sigma2 @ a + (a @ sigma2 @ a).T) / 2)
    tr_cross = float(np.sqrt(np.clip(cross, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_cross)
    return max(value, 0.0)  # round-off can leave -1e-12 for identical sets


def clip_features(clips: Sequence[np.ndarray], probes: Any, frames_per_clip: int = 8) -> np.ndarray:
    """Probe features of `frames_per_clip` evenly spaced frames of each (T, H, W, 3) uint8 clip: (sum, 256)."""
    frames = [np.asarray(c)[sample_indices(len(c), frames_per_clip)] for c in clips]
    return probes.frame_features(np.concatenate(frames))


def frechet_actorworld(
    generated: Sequence[np.ndarray], real: Sequence[np.ndarray], probes: Any, frames_per_clip: int = 8
) -> MetricResult:
    """Fréchet distance between a set of generated clips and a set of real ActorWorld clips (lower = closer
    to the world's appearance statistics); `extra` records the set sizes."""
    if isinstance(probes, BackendUnavailable):
        return MetricResult.na(NAME, BACKEND, probes.reason, unit="distance")
    if len(generated) < 2 or len(real) < 2:
        return MetricResult.na(NAME, BACKEND, "needs at least 2 generated and 2 real clips", unit="distance")
    fg = clip_features(generated, probes, frames_per_clip)
    fr = clip_features(real, probes, frames_per_clip)
    value = frechet_distance(*gaussian_statistics(fg), *gaussian_statistics(fr))
    extra = {
        "generated_clips": len(generated),
        "real_clips": len(real),
        "frames_per_clip": frames_per_clip,
        "feature_dim": int(fg.shape[1]),
    }
    return MetricResult(NAME, BACKEND, value=value, unit="distance", extra=extra)
