"""Motion amplitude: mean Farneback optical-flow magnitude between consecutive sampled frames.

Reported as a fraction of the frame diagonal per frame step (resolution independent), so a frozen or pasted
video scores ~0 and cannot look good on identity alone.
"""

from __future__ import annotations

import numpy as np

from wildactor.bench.metrics.base import MetricResult, sample_indices

NAME = "motion"
BACKEND = "opencv-farneback"


def _gray(frame: np.ndarray, short_side: int) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    scale = short_side / min(h, w)
    if scale < 1.0:
        frame = cv2.resize(
            frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def motion_amplitude(frames: np.ndarray, num_samples: int = 32, short_side: int = 128) -> MetricResult:
    """Mean optical-flow magnitude / frame diagonal over the clip (T, H, W, 3)."""
    import cv2

    idx = sample_indices(len(frames), num_samples)
    if len(idx) < 2:
        return MetricResult.na(NAME, BACKEND, "clip has fewer than 2 frames")
    grays = [_gray(frames[i], short_side) for i in idx]
    h, w = grays[0].shape
    diag = float(np.hypot(h, w))
    per_step: list[float] = []
    for (ia, a), (ib, b) in zip(zip(idx, grays), zip(idx[1:], grays[1:])):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # (h, w, 2)
        mag = float(np.linalg.norm(flow, axis=2).mean())
        per_step.append(mag / diag / max(1, ib - ia))  # per original frame step
    return MetricResult(NAME, BACKEND, value=float(np.mean(per_step)), unit="diag/frame", per_frame=per_step)
