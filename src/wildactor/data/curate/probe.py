"""Stage 1a — probe/ingest with PyAV: container, codec, size, fps, duration; bad files become rejects.

Reasons (one per kind of bad input; all listed in reasons.py): special_file, unreadable_file,
bad_filename, empty_file, not_a_video, still_image, truncated, corrupt_container, no_video_stream,
too_large, too_small, too_short, too_long, grayscale. A damaged stream whose container still opens is
caught when frames are decoded (corrupt_stream). Truncation: an MP4/MOV box that runs past the end of
the file, fewer packets than the stated frame count, or (Matroska/WebM, whose headers state a
duration but no frame count) packets that end well before the stated duration.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

import numpy as np

from wildactor.data.curate.stage import Item, Stage, reject

_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")
_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"meta", b"moof", b"mfra"}


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character cut at the end of the sample is still text
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * len(text)


def _mp4_structure(path: str, size: int) -> str | None:
    """For ISO-BMFF files: 'truncated' if a top-level box runs past the end of the file, 'corrupt' if
    the box chain is unreadable, None if it looks whole (or the file is not ISO-BMFF)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 8 or head[4:8] != b"ftyp":
            return None
        pos = 0
        while pos < size:
            f.seek(pos)
            hdr = f.read(16)
            if len(hdr) < 8:
                return "truncated"
            box_size, box_type = struct.unpack(">I4s", hdr[:8])
            if box_size == 1:
                if len(hdr) < 16:
                    return "truncated"
                box_size = struct.unpack(">Q", hdr[8:16])[0]
            elif box_size == 0:  # runs to the end of the file
                box_size = size - pos
            if box_size < 8 or not box_type.isascii():
                return "corrupt"
            if pos + box_size > size:
                return "truncated"
            pos += box_size
    return None


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return f"{name}, not a regular file"
    return "not a regular file"


def _missing_tail(container, ends: dict[int, float], fps: float) -> str | None:
    """For containers whose header states a duration but no frame count (Matroska, WebM): a message
    if the packets present end well before that duration (the file was cut), else None. The last
    packet of any stream counts, so a video track shorter than its audio is not called truncated."""
    if not container.duration or not ends:
        return None
    stated = container.duration / 1e6  # AV_TIME_BASE
    present = max(ends.values()) - float(container.start_time or 0) / 1e6
    if stated - present > max(0.5, 2.0 / max(fps, 1e-6), 0.01 * stated):
        return f"packets end at {present:.2f}s of the {stated:.2f}s the container states"
    return None


def sidecar_candidates(path: str) -> list[str]:
    """`<video>.mp4.json`, `<video>.json`, and `wildactor world make`'s layout: clips/A/C.mp4 ->
    labels/A/C.json."""
    p = Path(path)
    out = [path + ".json", str(p.with_suffix(".json"))]
    parts = list(p.parts)
    if "clips" in parts:
        i = len(parts) - 1 - parts[::-1].index("clips")
        out.append(str(Path(*parts[:i], "labels", *parts[i + 1 :]).with_suffix(".json")))
    return out


def load_sidecar(path: str) -> dict | None:
    """Optional labels next to the video (caption, actor id, ActorWorld labels): see sidecar_candidates."""
    for cand in sidecar_candidates(path):
        if os.path.isfile(cand):
            try:
                data = json.loads(Path(cand).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            return data if isinstance(data, dict) else None
    return None


class ProbeStage(Stage):
    name = "probe"
    batch_size = 8

    def process(self, items: list[Item]) -> list[Item]:
        return [self._probe(it) for it in items]

    def _probe(self, item: Item) -> Item:
        import av

        cfg = self.config.probe
        path = item["path"]
        try:
            item["rel"].encode("utf-8")
        except UnicodeEncodeError:
            return reject(item, self.name, "bad_filename", "file name is not valid UTF-8")
        try:
            info = os.stat(path)
        except OSError as exc:
            return reject(item, self.name, "unreadable_file", str(exc))
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the reader; a folder has no bytes
            return reject(item, self.name, "special_file", _file_kind(info.st_mode))
        size = info.st_size
        if not os.access(path, os.R_OK):
            return reject(item, self.name, "unreadable_file", "no read permission")
        if size == 0:
            return reject(item, self.name, "empty_file", "0 bytes")
        if size > cfg.max_file_bytes:
            return reject(item, self.name, "too_large", f"{size} bytes > {cfg.max_file_bytes}")
        with open(path, "rb") as f:
            head = f.read(512)
        if head.startswith(_IMAGE_MAGIC) and not head[8:12] == b"AVI ":
            return reject(item, self.name, "still_image", "image file, not a video")
        if _looks_like_text(head):
            return reject(item, self.name, "not_a_video", "text file")
        structure = _mp4_structure(path, size)
        if structure == "truncated":
            return reject(item, self.name, "truncated", "a container box runs past the end of the file")
        try:
            container = av.open(path)
        except av.error.FFmpegError as exc:
            reason = "corrupt_container" if structure is None or structure == "corrupt" else structure
            return reject(item, self.name, reason, f"cannot open: {exc}")
        with container:
            fmt = container.format.name
            if not container.streams.video:
                return reject(item, self.name, "no_video_stream", f"format {fmt}")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if fmt.endswith("_pipe") or fmt == "image2" or codec in ("png", "mjpeg", "bmp", "gif", "tiff"):
                if (stream.frames or 0) <= 1:
                    return reject(item, self.name, "still_image", f"{fmt}/{codec}")
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            if width * height > self.config.probe.max_pixels:
                return reject(item, self.name, "too_large", f"{width}x{height} > {cfg.max_pixels} pixels")
            if min(width, height) < cfg.min_side:
                return reject(item, self.name, "too_small", f"{width}x{height}")
            expected = int(stream.frames or 0)
            packets = 0
            ends: dict[int, float] = {}  # stream index -> end time (s) of its last packet
            try:
                for packet in container.demux():
                    if not packet.size:
                        continue
                    if packet.stream.index == stream.index:
                        packets += 1
                    if packet.pts is not None and packet.time_base is not None:
                        step = packet.duration or 0
                        end = float((packet.pts + step) * packet.time_base)
                        if not step and packet.stream.index == stream.index and fps > 0:
                            end += 1.0 / fps  # Matroska leaves the last frame's duration out
                        ends[packet.stream.index] = max(ends.get(packet.stream.index, 0.0), end)
            except av.error.FFmpegError as exc:
                return reject(item, self.name, "truncated", f"demux stopped after {packets} packets: {exc}")
            if expected and packets < 0.9 * expected:
                return reject(item, self.name, "truncated", f"{packets} of {expected} frames present")
            if fps <= 0:
                return reject(item, self.name, "corrupt_container", "no frame rate")
            short = _missing_tail(container, ends, fps)
            if short is not None:
                return reject(item, self.name, "truncated", short)
            num_frames = expected or packets
            duration = num_frames / fps
            if duration < cfg.min_duration_sec:
                return reject(item, self.name, "too_short", f"{duration:.2f}s < {cfg.min_duration_sec}s")
            if duration > cfg.max_duration_sec:
                return reject(item, self.name, "too_long", f"{duration:.0f}s > {cfg.max_duration_sec}s")
        chroma = self._chroma(path)
        if chroma is None:
            return reject(item, self.name, "corrupt_stream", "no frame could be decoded")
        if chroma < cfg.grayscale_chroma:
            return reject(item, self.name, "grayscale", f"mean chroma {chroma:.2f}")
        item["probe"] = {
            "format": fmt,
            "codec": codec,
            "width": int(width),
            "height": int(height),
            "fps": fps,
            "num_frames": int(num_frames),
            "duration_sec": round(duration, 4),
            "bytes": size,
        }
        sidecar = load_sidecar(path)
        if sidecar is not None:
            item["sidecar"] = sidecar
        return item

    @staticmethod
    def _chroma(path: str, n: int = 4) -> float | None:
        """Mean chroma distance from grey over the first `n` decodable frames."""
        import av
        import cv2

        values = []
        try:
            with av.open(path) as container:
                for frame in container.decode(video=0):
                    rgb = frame.to_ndarray(format="rgb24", width=min(frame.width, 160))
                    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
                    values.append(float(np.abs(ycc[..., 1:] - 128.0).mean() * 2))
                    if len(values) >= n:
                        break
        except av.error.FFmpegError:
            pass
        return float(np.mean(values)) if values else None
