"""NaturalScore with a LOCAL VLM judge (1-5, how real the clip looks).

OpenS2V-Eval asks GPT-4o (gpt-4o-2024-11-20) to grade 16 frames (every `T // 16`-th frame, long side resized
to 512) from 1 (definitely AI-generated) to 5 (definitely real), three times, and averages. Here a local
Qwen2-VL-family model is shown the same frames and a prompt with the same scale (`prompts/natural_score.txt`),
and the score is the expected grade under its first-token distribution over "1".."5" (one deterministic pass
instead of three samples). This is NOT GPT-4o: the numbers are not comparable with the leaderboard's
NaturalScore column, and the report says so next to them.
"""

from __future__ import annotations

import numpy as np

from wildactor.bench.metrics.base import MetricResult
from wildactor.bench.metrics.face import BackendUnavailable
from wildactor.bench.metrics.opens2v_common import stride_indices

NAME = "natural_score"
GRADES = ["1", "2", "3", "4", "5"]
NOT_COMPARABLE = "local VLM judge, not GPT-4o: not comparable with the leaderboard's NaturalScore"


def resize_long_side(image: np.ndarray, target: int = 512) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    scale = target / max(h, w)
    return cv2.resize(image, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)


def natural_score(frames: np.ndarray, rater: object, num_frames: int = 16) -> MetricResult:
    """Expected 1-5 realism grade of a clip (T, H, W, 3) from a local judge."""
    from wildactor.bench.metrics.vlm import load_prompt

    if isinstance(rater, BackendUnavailable):
        return MetricResult.na(NAME, rater.name, rater.reason)
    images = [resize_long_side(frames[i]) for i in stride_indices(len(frames), num_frames)]
    probs = rater.option_probs(images, load_prompt("natural_score"), GRADES)
    value = float(np.dot(probs, np.arange(1, 6)))
    extra = {"grade_probs": [round(float(p), 6) for p in probs], "note": NOT_COMPARABLE}
    return MetricResult(NAME, rater.name, value=value, unit="grade 1-5", extra=extra)
