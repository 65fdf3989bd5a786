"""Frame access with PyAV: sample a time range at a given rate, optionally downscaled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DecodeError(RuntimeError):
    """The stream could not be decoded (corrupt or truncated data)."""


@dataclass(frozen=True)
class SampledFrame:
    time: float  # seconds from the start of the video
    index: int  # frame number in the source video (time x fps, rounded)
    rgb: np.ndarray  # (H, W, 3) uint8


def sample_times(start: float, end: float, fps: float, max_frames: int) -> list[float]:
    """Sample instants in [start, end) at `fps`, at most `max_frames`, spread over the whole range."""
    if end <= start:
        return [start]
    n = max(1, min(max_frames, int(np.floor((end - start) * fps + 1e-6))))
    step = (end - start) / n
    return [start + (i + 0.5) * step for i in range(n)]


def read_frames(
    path: str,
    times: list[float],
    fps: float,
    width: int | None = None,
) -> list[SampledFrame]:
    """Decode the frames nearest to each time in `times` (sorted). `fps` is the source rate (for the
    frame index). `width` downscales (keeping the aspect ratio). Raises DecodeError on bad data."""
    import av

    if not times:
        return []
    out: list[SampledFrame] = []
    targets = sorted(times)
    k = 0
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if targets[0] > 2.0 and stream.time_base is not None:
                container.seek(int((targets[0] - 1.0) / stream.time_base), stream=stream, backward=True)
            prev = None
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else 0.0
                while k < len(targets) and t >= targets[k] - 0.5 / fps:
                    pick = frame
                    if prev is not None and abs(prev[0] - targets[k]) < abs(t - targets[k]):
                        pick = prev[1]
                    out.append(_to_sample(pick, fps, width))
                    k += 1
                if k >= len(targets):
                    break
                prev = (t, frame)
            if k < len(targets) and prev is not None:  # times past the last frame: use the last one
                last = _to_sample(prev[1], fps, width)
                out.extend([last] * (len(targets) - k))
    except av.error.FFmpegError as exc:
        raise DecodeError(f"decode failed after {len(out)} sampled frame(s): {exc}") from None
    if not out:
        raise DecodeError("no frame could be decoded")
    return out


def _to_sample(frame, fps: float, width: int | None) -> SampledFrame:
    if width is not None and frame.width > width:
        h = max(2, int(round(frame.height * width / frame.width / 2)) * 2)
        rgb = frame.to_ndarray(format="rgb24", width=width, height=h)
    else:
        rgb = frame.to_ndarray(format="rgb24")
    t = float(frame.time) if frame.time is not None else 0.0
    return SampledFrame(time=t, index=int(round(t * fps)), rgb=rgb)
