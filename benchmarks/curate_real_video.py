"""Curation quality on realistic footage (camera moves over scikit-image's real astronaut photo):

- the single-person filter across resolutions (400p to 4K): share of sampled frames that show exactly one
  person, with the default working resolution and with detection at full resolution (``work_size: 0``,
  ``min_other_share: 0``, the behaviour before the working resolution existed);
- the track ratio of zoom-ins and zoom-outs (points leaving the frame are not counted as failures), and
  the share of points that left;
- reproducible exports: distinct SHA-1s over repeated encodes of one clip;
- Attr-Aug file names: clips (of 10,000 hashed ids) where two edits would share one file, with names
  by attribute kind only (the old scheme) and by kind + value (now).

    python benchmarks/curate_real_video.py --out benchmarks/results/curate_real_video.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from common import machine_info

SIZES = [(720, 400), (1280, 720), (1920, 1080), (2560, 1440), (3840, 2160)]


def single_person_share(frames_per_size: int) -> dict:
    from wildactor.data.curate.config import CurateConfig, DetectConfig
    from wildactor.data.curate.detect import DetectStage
    from wildactor.data.curate.synthetic import astronaut_camera_frames

    out = {}
    for label, cfg in (
        ("work_size_480", DetectConfig()),
        ("full_resolution", DetectConfig(work_size=0, min_other_share=0.0)),
    ):
        st = DetectStage(CurateConfig(detect=cfg), "/tmp")
        st.setup()
        rows = {}
        for w, h in SIZES:
            frames = astronaut_camera_frames(frames_per_size, w, h, zoom=1.2, pan=20)
            t0 = time.perf_counter()
            counts = [len(st.detect(f)) for f in frames]
            rows[f"{w}x{h}"] = {
                "people_per_frame": counts,
                "one_person_share": round(sum(c == 1 for c in counts) / len(counts), 3),
                "seconds_per_frame": round((time.perf_counter() - t0) / len(counts), 3),
            }
        out[label] = rows
    return out


def zoom_ratios() -> dict:
    import cv2

    from wildactor.data.curate.config import CurateConfig
    from wildactor.data.curate.detect import DetectStage
    from wildactor.data.curate.synthetic import astronaut_camera_frames
    from wildactor.data.curate.tracking import lk_track

    st = DetectStage(CurateConfig(), "/tmp")
    st.setup()
    out = {}
    for zoom in (0.625, 1.0, 1.3, 1.6, 2.0):
        frames = astronaut_camera_frames(16, 640, 360, zoom=zoom, span=220)
        found = [st.detect(f) for f in frames]
        boxes = [people[0]["person"] if people else None for people in found]
        # as the tracking stage does: frames without a detection take the nearest detected box
        have = [i for i, b in enumerate(boxes) if b is not None]
        boxes = [boxes[min(have, key=lambda j: abs(j - i))] for i in range(len(boxes))]
        grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        ratio, left = lk_track(grays, boxes, 64, 1.5, 0.15)
        out[str(zoom)] = {
            "track_ratio": round(ratio, 3),
            "left_frame": round(left, 3),
            "frames_with_person": f"{len(have)}/{len(frames)}",
        }
    return out


def encode_hashes(n: int) -> dict:
    from wildactor.data.curate.export import cut_clip
    from wildactor.data.curate.synthetic import astronaut_camera_frames, write_video

    with tempfile.TemporaryDirectory() as tmp:
        src = write_video(Path(tmp) / "src.mp4", astronaut_camera_frames(48, 1280, 720, zoom=1.3))
        hashes = []
        for i in range(n):
            dst = Path(tmp) / f"out{i}.mp4"
            cut_clip(str(src), str(dst), 0, 48, 8.0)
            hashes.append(hashlib.sha1(dst.read_bytes()).hexdigest())
    return {"encodes": n, "distinct_sha1": len(set(hashes)), "clip": "48 frames, 1280x720"}


def attr_name_collisions(num_ids: int) -> dict:
    from wildactor.data.curate.augment import EditRequest, _load_yaml, pick_attributes, reference_name

    lists = _load_yaml("configs/curate/attributes.yaml")
    old = new = 0
    for i in range(num_ids):
        pairs = pick_attributes(hashlib.sha1(str(i).encode()).hexdigest()[:16], lists, 2)
        old += len({k for k, _ in pairs}) < len(pairs)
        names = {reference_name("attr_aug", EditRequest("attribute", "body", v, k)) for k, v in pairs}
        new += len(names) < len(pairs)
    return {
        "clip_ids": num_ids,
        "attr_per_clip": 2,
        "shared_file_kind_only": old,
        "shared_file_kind_value": new,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--frames", type=int, default=8, help="frames per resolution for the person filter")
    args = ap.parse_args()
    result = {
        "machine": machine_info(),
        "command": f"python benchmarks/curate_real_video.py --out {args.out} --frames {args.frames}",
        "single_person_filter": single_person_share(args.frames),
        "tracking_zoom_640x360": zoom_ratios(),
        "export_reproducibility": encode_hashes(6),
        "attr_aug_names": attr_name_collisions(10_000),
    }
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
