"""MotionSmoothness with OpenS2V-Eval's protocol and a local VLM quality rater.

OpenS2V rates every frame's 3-frame window (the frame and its neighbours; the first frame's window is that frame
three times; the last frame's window repeats its own first frame) with Q-Align ("How would you rate the quality of this
video?" -> softmax over excellent/good/fair/poor/bad weighted 1, 0.75, 0.5, 0.25, 0); two consecutive windows
whose ratings differ by more than 0.025 mark both frames as artifacts; the score is 1 - artifacts / frames.

Q-Align (mPLUG-Owl2) has no transformers implementation and is not on PyPI, so the rater here is a local
Qwen2-VL-family model asked the same question with the same answer scale. The protocol is exact; the rater is
not Q-Align, so the numbers are NOT comparable with the leaderboard's MotionSmoothness column.
"""

from __future__ import annotations

import numpy as np

from wildactor.bench.metrics.base import MetricResult
from wildactor.bench.metrics.face import BackendUnavailable

NAME = "motion_smoothness"
LEVELS = [" excellent", " good", " fair", " poor", " bad"]
LEVEL_WEIGHTS = np.array([1.0, 0.75, 0.5, 0.25, 0.0])
QUESTION = "How would you rate the quality of this video?"
ANSWER_PREFIX = "The quality of the video is"
NOT_COMPARABLE = "local VLM rater, not Q-Align: not comparable with the leaderboard's MotionSmoothness"


def sliding_windows(num_frames: int, window: int = 3) -> list[list[int]]:
    """OpenS2V's frame windows, one per frame."""
    left = (window - 1) // 2
    right = window - 1 - left
    out = []
    for c in range(num_frames):
        start, end = max(0, c - left), min(num_frames, c + right + 1)
        idx = list(range(start, end))
        while len(idx) < window:
            if start == 0:
                idx.append(idx[-1])
            else:
                idx.insert(0, idx[0])
        out.append([idx[0]] * window if c < left else idx)
    return out


def artifact_frames(scores: list[float], threshold: float = 0.025) -> list[int]:
    """Frames on either side of a jump in rating larger than `threshold`."""
    jumps = np.where(np.abs(np.diff(scores)) > threshold)[0]
    return sorted({int(i) for i in np.concatenate([jumps, jumps + 1])})


def smoothness_from_ratings(scores: list[float], threshold: float = 0.025) -> float:
    """1 - (artifact frames / frames)."""
    return 1.0 - len(artifact_frames(scores, threshold)) / len(scores)


def motion_smoothness(frames: np.ndarray, rater: object, window: int = 3) -> MetricResult:
    """OpenS2V MotionSmoothness of a clip (T, H, W, 3) with a local rater (one rating per frame window)."""
    if isinstance(rater, BackendUnavailable):
        return MetricResult.na(NAME, rater.name, rater.reason)
    ratings = [
        float(rater.option_probs([frames[i] for i in w], QUESTION, LEVELS, ANSWER_PREFIX) @ LEVEL_WEIGHTS)
        for w in sliding_windows(len(frames), window)
    ]
    value = smoothness_from_ratings(ratings)
    extra = {"artifact_frames": artifact_frames(ratings), "note": NOT_COMPARABLE}
    return MetricResult(NAME, rater.name, value=value, per_frame=ratings, extra=extra)
