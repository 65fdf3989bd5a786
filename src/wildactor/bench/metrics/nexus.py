"""NexusScore (OpenS2V-Eval, Open- and Single-Domain only): is the reference object in the video?

OpenS2V detects each reference in 32 frames with YOLO-World v2-L prompted by the reference image (an
mmyolo/mmdetection model and its CLIP image-prompt adapter), crops the boxes, and scores crop-reference GME
similarity for boxes with detector confidence > 0.6 and crop-label GME similarity > 0.30, divided by the number
of frames with a detection. YOLO-World's image-prompt model needs mmyolo/mmcv, which are not installable here
(no wheels for this torch) and have no transformers port, so this metric is n/a here. Human-Domain's TotalScore
does not use it. A NexusScore computed elsewhere by OpenS2V's own script can be merged into the report
(`wildactor bench report --format opens2v --opens2v-json DIR`).
"""

from __future__ import annotations

from wildactor.bench.metrics.base import MetricResult

NAME = "nexus_score"
REASON = (
    "YOLO-World image-prompt detector (mmyolo) is not available here; merge OpenS2V's nexusscore.json instead"
)


def nexus_score() -> MetricResult:
    return MetricResult.na(NAME, "yolo-world+gme", REASON)
