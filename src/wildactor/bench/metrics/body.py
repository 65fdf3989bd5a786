"""Body consistency: does the whole person (hair, clothes, build), not only the face, match the references?

Back-ends
- `vlm`: a VLM judge from a local folder, asked per sampled frame whether the person matches the reference
  images (prompt: `prompts/body_consistency.txt`); score = mean P(yes).
- `actorworld` (exact): the probes read every identity attribute back from each frame; the frame's score is
  the share of attributes equal to the actor's true ones (the front-only top print is not judged in frames
  the probe sees from the back); the clip's score is the mean over frames, also broken down by the
  viewpoint the probe reads (front / side / back: the Table 3 layout).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wildactor.bench.metrics.base import MetricResult, RefImage, sample_indices
from wildactor.bench.metrics.face import BackendUnavailable
from wildactor.data.schema import VIEW_BINS

NAME = "body"
VIEWS = VIEW_BINS  # the Table 3 columns


def body_consistency_actorworld(
    frames: np.ndarray, true_attributes: dict[str, str], probes: Any, num_samples: int = 32
) -> MetricResult:
    """Exact ActorWorld body consistency of a clip (T, H, W, 3) against the actor's true attributes."""
    backend = "actorworld-probes"
    if isinstance(probes, BackendUnavailable):
        return MetricResult.na(NAME, backend, probes.reason)
    idx = sample_indices(len(frames), num_samples)
    sampled = frames[idx]
    attrs = probes.predict_attributes(sampled)
    views = probes.predict_view(sampled)
    per_frame: list[float] = []
    per_view: dict[str, list[float]] = {v: [] for v in VIEWS}
    wrong: dict[str, int] = {}
    for pred, view in zip(attrs, views):
        judged = [k for k in true_attributes if k != "top_graphic" or probes.trust_graphic(view["view"])]
        hits = [pred[k] == true_attributes[k] for k in judged]
        for k, ok in zip(judged, hits):
            if not ok:
                wrong[k] = wrong.get(k, 0) + 1
        score = float(np.mean(hits))
        per_frame.append(score)
        per_view.setdefault(view["view"], []).append(score)
    by_view = {v: (float(np.mean(s)) if s else None) for v, s in per_view.items()}
    extra = {
        "frames_per_view": {v: len(s) for v, s in per_view.items()},
        "frame_views": [view["view"] for view in views],
        "wrong_attribute_counts": wrong,
    }
    return MetricResult(
        NAME, backend, value=float(np.mean(per_frame)), per_frame=per_frame, by_view=by_view, extra=extra
    )


def body_consistency_vlm(
    frames: np.ndarray, references: list[RefImage], judge: Any, num_samples: int = 8, max_refs: int = 3
) -> MetricResult:
    """VLM-judged body consistency: mean over sampled frames of P(same person | references, frame)."""
    from wildactor.bench.metrics.vlm import load_prompt

    if isinstance(judge, BackendUnavailable):
        return MetricResult.na(NAME, judge.name, judge.reason)
    refs = [r for r in references if r.region != "face"] or list(references)
    refs = refs[:max_refs]
    if not refs:
        return MetricResult.na(NAME, judge.name, "item has no reference image")
    question = load_prompt("body_consistency").format(num_refs=len(refs))
    per_frame = [
        judge.yes_probability([r.image for r in refs] + [frames[i]], question)
        for i in sample_indices(len(frames), num_samples)
    ]
    return MetricResult(NAME, judge.name, value=float(np.mean(per_frame)), per_frame=per_frame)
