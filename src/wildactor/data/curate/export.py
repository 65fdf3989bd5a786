"""Stage 9 — export: one clip file and one manifest record per kept clip (the stage), then the
run's manifest (JSONL + Parquet), rejects table (Parquet + CSV) and Table 1 statistics (`finalize`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from wildactor.data.curate.stage import Item, Stage, reject


def cut_clip(src: str, dst: str, start_frame: int, end_frame: int, fps: float) -> tuple[int, int, int]:
    """Re-encode frames [start_frame, end_frame) of `src` to H.264 `dst` atomically, byte-identically
    on every run (single-threaded x264). Returns (w, h, n)."""
    from fractions import Fraction

    import av

    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{Path(dst).parent}/.{Path(dst).name}.tmp-{os.getpid()}.mp4"
    n = 0
    try:
        with av.open(src) as cin, av.open(tmp, "w") as cout:
            stream_in = cin.streams.video[0]
            rate = Fraction(fps).limit_denominator(1001)
            out = None
            for i, frame in enumerate(cin.decode(stream_in)):
                if i < start_frame:
                    continue
                if i >= end_frame:
                    break
                if out is None:
                    out = cout.add_stream("libx264", rate=rate)
                    out.width, out.height = frame.width // 2 * 2, frame.height // 2 * 2
                    out.pix_fmt = "yuv420p"
                    # one x264 thread: its output depends on the thread count and, with frame
                    # threads, on timing, so a rerun would not rewrite the same bytes
                    out.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
                    out.codec_context.thread_count = 1
                rgb = frame.to_ndarray(format="rgb24")[: out.height, : out.width]
                for packet in out.encode(
                    av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                ):
                    cout.mux(packet)
                n += 1
            if out is not None:
                for packet in out.encode():
                    cout.mux(packet)
                w, h = out.width, out.height
        if n == 0:
            raise ValueError("no frame in range")
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return w, h, n


class ExportStage(Stage):
    name = "export"
    batch_size = 2

    def process(self, items: list[Item]) -> list[Item]:
        return [self._one(it) for it in items]

    def _one(self, item: Item) -> Item:
        cfg = self.config.export
        shot, probe = item["shot"], item["probe"]
        side = item.get("sidecar") or {}
        if cfg.cut_clips:
            rel = f"clips/{item['clip_id']}.mp4"
            try:
                w, h, n = cut_clip(
                    item["path"],
                    f"{self.out_dir}/{rel}",
                    shot["start_frame"],
                    shot["end_frame"],
                    probe["fps"],
                )
            except Exception as exc:  # a stream that decoded before must not fail here, but if it does:
                return reject(item, self.name, "export_failed", str(exc)[:200])
            duration = n / probe["fps"]
        else:
            rel = os.path.relpath(item["path"], self.out_dir)
            w, h, duration = probe["width"], probe["height"], shot["end_sec"] - shot["start_sec"]
        prompt = side.get("prompt") or side.get("caption")
        item["record"] = {
            "video": rel,
            "prompt": prompt if isinstance(prompt, str) and prompt.strip() else cfg.default_prompt,
            "actor_id": str(side.get("actor_id") or f"clip_{item['input_id']}"),
            "source": cfg.source_name,
            "width": int(w),
            "height": int(h),
            "duration_sec": round(float(duration), 4),
            "refs": item["refs"],
            "clip_id": item["clip_id"],
            "source_video": item["rel"],
            "start_sec": shot["start_sec"],
            "end_sec": shot["end_sec"],
            "prompt_source": "sidecar" if isinstance(prompt, str) and prompt.strip() else "placeholder",
            "curation": {
                "detect": item["detect"]["backend"],
                "identity": {k: v for k, v in item.get("identity", {}).items() if k != "medoid"},
                "track_ratio": item.get("tracking", {}).get("ratio"),
                "viewpoint": item.get("viewpoint", {}).get("backend"),
                "editor": item.get("augment", {}).get("editor"),
            },
        }
        return item
