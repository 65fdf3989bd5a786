"""Stage 1b — shot splitting: a long raw video becomes single-shot clips, each traced to its source.

Content detector (the method PySceneDetect's ContentDetector made common): each frame is downscaled,
converted to HSV, and the mean absolute change of H, S and V against the previous frame is averaged;
a score above `threshold` starts a new shot, unless the current shot is shorter than `min_shot_sec`.
It is implemented here (a few lines of OpenCV) rather than imported, because PySceneDetect's package
pulls the non-headless `opencv-python`, which replaces the headless build this project pins.
"""

from __future__ import annotations

import numpy as np

from wildactor.data.curate.stage import Item, Stage, reject


def content_scores(path: str, width: int) -> tuple[np.ndarray, int]:
    """Per-frame content change (frame 0 scores 0) of every decodable frame. Returns (scores (N,),
    frames decoded). Raises av's FFmpegError on damaged data."""
    import av
    import cv2

    scores: list[float] = []
    prev = None
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            h = max(2, int(round(frame.height * width / max(frame.width, 1))))
            rgb = frame.to_ndarray(format="rgb24", width=width, height=h)
            hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
            if prev is None:
                scores.append(0.0)
            else:
                # hue wraps at 180 in OpenCV's 8-bit HSV
                dh = np.abs(hsv[..., 0] - prev[..., 0])
                dh = np.minimum(dh, 180.0 - dh)
                ds = np.abs(hsv[..., 1] - prev[..., 1])
                dv = np.abs(hsv[..., 2] - prev[..., 2])
                scores.append(float((dh.mean() + ds.mean() + dv.mean()) / 3.0))
            prev = hsv
    return np.asarray(scores, dtype=np.float64), len(scores)


def split_points(scores: np.ndarray, threshold: float, min_len: int) -> list[tuple[int, int]]:
    """Shots as [start, end) frame ranges: cut where the score passes `threshold` and the running
    shot already has `min_len` frames."""
    cuts = [0]
    for i in range(1, len(scores)):
        if scores[i] > threshold and i - cuts[-1] >= min_len:
            cuts.append(i)
    cuts.append(len(scores))
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


class ShotSplitStage(Stage):
    name = "shots"
    batch_size = 2

    def process(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for item in items:
            out.extend(self._split(item))
        return out

    def _split(self, item: Item) -> list[Item]:
        import av

        cfg = self.config.shots
        fps = item["probe"]["fps"]
        try:
            scores, n = content_scores(item["path"], cfg.analysis_width)
        except av.error.FFmpegError as exc:
            return [reject(item, self.name, "corrupt_stream", f"decode error: {exc}")]
        expected = item["probe"]["num_frames"]
        if n == 0:
            return [reject(item, self.name, "corrupt_stream", "no frame decoded")]
        if n < 0.9 * expected:
            return [reject(item, self.name, "corrupt_stream", f"decoded {n} of {expected} frames")]
        min_len = max(1, int(round(cfg.min_shot_sec * fps)))
        shots = split_points(scores, cfg.threshold, min_len)
        out = []
        for k, (a, b) in enumerate(shots):
            clip = {key: value for key, value in item.items()}
            clip["clip_id"] = f"{item['input_id']}-s{k:03d}"
            clip["shot"] = {
                "index": k,
                "count": len(shots),
                "start_frame": a,
                "end_frame": b,
                "start_sec": round(a / fps, 4),
                "end_sec": round(b / fps, 4),
            }
            if (b - a) / fps < cfg.min_shot_sec:
                reject(clip, self.name, "shot_too_short", f"{(b - a) / fps:.2f}s < {cfg.min_shot_sec}s")
            out.append(clip)
        return out
