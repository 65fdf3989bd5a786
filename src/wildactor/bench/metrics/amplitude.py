"""MotionAmplitude as OpenS2V-Eval computes it (its `motion_fb`), offline.

Farneback flow between every pair of consecutive frames; each flow map is shrunk to 16 px wide (area
interpolation); the maps are averaged over time and the result averaged over pixels and both flow
components; the absolute value of that signed mean is the score. The leaderboard clips it at 1.

Two properties of the reference computation are kept on purpose, for comparability: the RGB frames go through
OpenCV's BGR->gray conversion (red and blue weights swapped), and the mean is signed, so motion to the left
and to the right cancel (a figure walking across the frame scores more than one turning in place). Actor-Bench's
own `motion` metric (mean flow magnitude) has neither property.
"""

from __future__ import annotations

import numpy as np

from wildactor.bench.metrics.base import MetricResult

NAME = "motion_amplitude"
BACKEND = "opencv-farneback (OpenS2V motion_fb)"


def flow_maps_16(frames: np.ndarray) -> list[np.ndarray]:
    """Consecutive-frame Farneback flow of (T, H, W, 3) frames, each resized to 16 px wide: (h16, 16, 2) each."""
    import cv2

    grays = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_BGR2GRAY) for f in frames]
    out = []
    for a, b in zip(grays, grays[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # (H, W, 2)
        h16 = int(flow.shape[0] * (16 / flow.shape[1]))
        out.append(cv2.resize(flow, (16, h16), interpolation=cv2.INTER_AREA))
    return out


def motion_amplitude_opens2v(frames: np.ndarray) -> MetricResult:
    """|mean over time, pixels and components of the 16-px flow maps| of a clip (T, H, W, 3)."""
    if len(frames) < 2:
        return MetricResult.na(NAME, BACKEND, "clip has fewer than 2 frames")
    maps = flow_maps_16(frames)
    value = abs(float(np.mean(np.mean(np.stack(maps), axis=0))))
    return MetricResult(NAME, BACKEND, value=value, unit="px/frame (16-px-wide map)")
