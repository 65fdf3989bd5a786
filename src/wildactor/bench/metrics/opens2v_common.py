"""What OpenS2V-Eval's metric scripts share: frame sampling and the "n/a" back-end record.

OpenS2V samples `np.linspace(0, T - 1, k, dtype=int)` (floor, repeats allowed on short clips), unlike
Actor-Bench's `sample_indices` (rounded, never more frames than the clip has); its metrics use its rule.
"""

from __future__ import annotations

import numpy as np


def opens2v_indices(num_frames: int, k: int) -> list[int]:
    """OpenS2V's frame indices: `k` evenly spaced, floored (a 16-frame clip sampled at 32 repeats frames)."""
    if num_frames <= 0:
        return []
    return [int(i) for i in np.linspace(0, num_frames - 1, k, dtype=int)]


def stride_indices(num_frames: int, k: int = 16) -> list[int]:
    """NaturalScore's frames: every `max(T // k, 1)`-th frame from 0, those that exist (at most `k`)."""
    step = max(num_frames // k, 1)
    return [i * step for i in range(k) if i * step < num_frames]
