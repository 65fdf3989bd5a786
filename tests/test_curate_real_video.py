"""Curation on realistic footage: pans and zooms over a real photo at high resolution, Matroska and
WebM files cut short, Attr-Aug names, reproducible exports, and inputs that are not plain videos."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from wildactor.data.curate.config import CurateConfig
from wildactor.data.curate.synthetic import astronaut_camera_frames, write_video


def _item(path: Path, rel: str | None = None) -> dict:
    rel = rel or path.name
    return {"clip_id": "c0", "input_id": "c0", "path": str(path), "rel": rel}


def _run(stage_names: tuple[str, ...], item: dict, out: Path, config: CurateConfig | None = None) -> dict:
    from wildactor.data.curate.chain import make_stages

    stages = [st for st in make_stages(config or CurateConfig(), str(out)) if st.name in stage_names]
    items = [item]
    for st in stages:
        items = st(items)
    return items[0]


# ------------------------------------------------------------------------------------------ detection


@pytest.mark.parametrize("width, height", [(2560, 1440), (3840, 2160)])
def test_one_person_is_one_person_at_1440p_and_4k(width, height):
    from wildactor.data.curate.detect import DetectStage

    st = DetectStage(CurateConfig(), "/tmp")
    st.setup()
    frames = astronaut_camera_frames(6, width, height, zoom=1.2, pan=20)
    counts = [len(st.detect(f)) for f in frames]
    assert counts == [1] * 6
    people = st.detect(frames[0])
    assert people[0]["face"][2] - people[0]["face"][0] > 0.15 * height  # boxes in the 4K frame's pixels


def test_small_detections_next_to_the_subject_do_not_make_a_second_person():
    from wildactor.data.curate.detect import drop_small_others, merge_people

    face = [300.0, 80.0, 460.0, 240.0]
    speck = [660.0, 320.0, 736.0, 472.0]  # a 64x128-window HOG hit on texture, 2 % of the subject
    people = merge_people([speck], [face], 864, 486)
    assert [p["estimated"] for p in people] == [False, True]
    assert len(drop_small_others(people, 0.1)) == 1
    other = [660.0, 60.0, 820.0, 220.0]  # a second face of the same size is a second person
    assert len(drop_small_others(merge_people([], [face, other], 864, 486), 0.1)) == 2


@pytest.mark.slow
def test_a_4k_one_person_clip_is_kept(tmp_path):
    from wildactor.data.curate.pipeline import build
    from wildactor.data.schema import read_manifest

    write_video(tmp_path / "in" / "pan_4k.mp4", astronaut_camera_frames(16, 3840, 2160, zoom=1.15, pan=30))
    summary = build(tmp_path / "in", tmp_path / "out", CurateConfig(), progress=False)
    assert summary["clips_kept"] == 1, summary
    (record,) = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert (record.width, record.height) == (3840, 2160)


# ------------------------------------------------------------------------------------------- tracking


def test_a_1p6x_zoom_in_on_a_face_is_kept_by_tracking(tmp_path):
    clip = write_video(tmp_path / "zoom.mp4", astronaut_camera_frames(16, 640, 360, zoom=1.6, span=220))
    item = _run(("probe", "shots", "detect", "tracking"), _item(clip), tmp_path / "out")
    assert not item.get("reject"), item.get("reject")
    # many points left the picture as it zoomed in; they did not count as failures
    assert item["tracking"]["left_frame"] > 0.3 and item["tracking"]["ratio"] >= 0.9


def test_points_leaving_the_frame_are_not_failures_but_losing_the_subject_is():
    import cv2

    from wildactor.data.curate.synthetic import still_frames
    from wildactor.data.curate.tracking import lk_track

    frames = [
        cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in astronaut_camera_frames(12, 320, 180, zoom=1.6, span=220)
    ]
    box = [60.0, 0.0, 260.0, 180.0]
    ratio, left = lk_track(frames, [box] * 12, 64, 1.5, 0.15)
    assert left > 0.2 and ratio >= 0.9
    other = [cv2.cvtColor(cv2.resize(f, (320, 180)), cv2.COLOR_RGB2GRAY) for f in still_frames("coffee", 6)]
    ratio, _ = lk_track(frames[:6] + other, [box] * 12, 64, 1.5, 0.15)
    assert ratio < 0.6


# --------------------------------------------------------------------------------------------- probe


def _encode(path: Path, codec: str, frames: list[np.ndarray], fps: int = 8) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.parametrize("name, codec", [("clip.mkv", "libx264"), ("clip.webm", "libvpx-vp9")])
def test_a_truncated_matroska_or_webm_file_is_rejected_and_the_whole_one_kept(tmp_path, name, codec):
    from wildactor.data.curate.synthetic import astronaut_frames

    whole = _encode(tmp_path / name, codec, astronaut_frames(24, 128))
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    kept = _run(("probe",), _item(whole), tmp_path)
    assert not kept.get("reject") and kept["probe"]["duration_sec"] == pytest.approx(3.0)
    rejected = _run(("probe",), _item(cut), tmp_path)
    assert rejected["reject"]["reason"] == "truncated", rejected["reject"]
    assert "of the 3.00s the container states" in rejected["reject"]["detail"]


def test_inputs_that_are_not_plain_videos_are_listed_with_a_reason(tmp_path):
    from wildactor.data.curate.pipeline import discover_inputs
    from wildactor.data.curate.synthetic import astronaut_frames

    root, outside = tmp_path / "in", tmp_path / "elsewhere"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    write_video(outside / "private.mp4", astronaut_frames(4, 64))
    write_video(root / "sub" / "ok.mp4", astronaut_frames(4, 64))
    (root / ".hidden.mp4").write_bytes(b"x")
    (root / "folder.mp4").mkdir()
    os.mkfifo(root / "pipe.mp4")
    os.symlink(outside, root / "linked_dir")
    os.symlink(outside / "private.mp4", root / "link.mp4")
    os.symlink(root / "sub", root / "inside_link")  # stays inside: followed, its video not listed twice
    items = discover_inputs(root, CurateConfig().extensions)
    got = {it["rel"]: (it.get("reject") or {}).get("reason") for it in items}
    assert got == {
        ".hidden.mp4": "hidden_file",
        "folder.mp4": "special_file",
        "linked_dir": "outside_root",
        "link.mp4": "outside_root",
        "pipe.mp4": None,  # a FIFO is a file name like any other until the probe looks at it
        "sub/ok.mp4": None,
    }
    pipe = next(it for it in items if it["rel"] == "pipe.mp4")
    probed = _run(("probe",), pipe, tmp_path / "out")
    assert probed["reject"]["reason"] == "special_file" and "FIFO" in probed["reject"]["detail"]
    allowed = {it["rel"] for it in discover_inputs(root, CurateConfig().extensions, allow_outside_root=True)}
    assert {"link.mp4", "linked_dir/private.mp4"} <= allowed


# ------------------------------------------------------------------------------------ crops, viewpoint


def test_crop_past_the_frame_edge_is_filled_flat_not_with_edge_streaks():
    from wildactor.data.curate.images import crop

    img = np.zeros((40, 40, 3), np.uint8)
    img[:, -1] = (200, 10, 10)  # a red right edge that replication would smear
    out = crop(img, [20, 10, 60, 30])
    assert out.shape == (20, 40, 3)
    assert (out[:, 21:] == 255).all() and (out[:, 19] == (200, 10, 10)).all()


def test_crops_prefer_a_detected_body_and_mark_an_estimated_one():
    from wildactor.data.curate.crops import CropStage

    st = CropStage(CurateConfig(), "/tmp")

    def sample(frame, person, estimated):
        return {
            "frame": frame,
            "time": frame / 8,
            "person": person,
            "person_estimated": estimated,
            "face": None,
        }

    item = {
        "probe": {"width": 200, "height": 200},
        "detect": {"samples": [sample(0, [50, 20, 150, 190], True)]},
    }
    assert [c["estimated"] for c in st.candidates(item, "body")] == [True]
    item["detect"]["samples"].append(sample(1, [60, 30, 140, 180], False))
    assert [c["estimated"] for c in st.candidates(item, "body")] == [False]


def test_view_bins_do_not_flip_frame_to_frame_near_45_degrees():
    from wildactor.data.curate.viewpoint import hold_bins, view_name

    wavering = [40.0, 47.0, 43.0, 48.0, 44.0, 49.0, 70.0, 50.0, 42.0, 20.0]
    assert [view_name(a) for a in wavering][:6] == ["front", "right"] * 3  # what raw bins do
    held = [view_name(a) for a in hold_bins(wavering, 10.0)]
    assert held == ["front"] * 6 + ["right", "right", "right", "front"]


# ------------------------------------------------------------------------------------------- augment


class _TintEditor:
    """A real pixel edit per attribute value (a colour cast), standing in for an image editor."""

    name = "tint"

    def edit(self, image, request, item):
        h = int(hashlib.sha1(request.value.encode()).hexdigest(), 16)
        tint = np.array([h % 97, (h // 97) % 97, (h // 9409) % 97], dtype=np.int16)
        return np.clip(image.astype(np.int16) // 2 + tint, 0, 255).astype(np.uint8)


def test_two_attr_aug_edits_of_one_kind_are_kept_as_two_files(tmp_path):
    from wildactor.data.curate.augment import AugmentStage, _load_yaml, pick_attributes
    from wildactor.data.curate.config import AugmentConfig
    from wildactor.data.curate.images import write_png
    from wildactor.data.curate.synthetic import astronaut_frames

    lists = _load_yaml("configs/curate/attributes.yaml")
    clip_id = next(
        f"clip{i}" for i in range(1000) if len({k for k, _ in pick_attributes(f"clip{i}", lists, 2)}) == 1
    )
    (kind, v1), (kind2, v2) = pick_attributes(clip_id, lists, 2)
    assert kind == kind2 and v1 != v2
    cfg = CurateConfig(augment=AugmentConfig(editor="world", views=(), three_view=False, attr_per_clip=2))
    st = AugmentStage(cfg, str(tmp_path))
    st.editor, st.lists, st._ready = _TintEditor(), lists, True
    write_png(astronaut_frames(1, 96)[0], tmp_path / "refs" / clip_id / "self_body_0.png")
    src = {"path": f"refs/{clip_id}/self_body_0.png", "region": "body", "view": "front", "angle": 0.0}
    (item,) = st([{"clip_id": clip_id, "refs": [dict(src, source_frame=0)]}])
    made = item["augmented"]
    assert [r["metadata"]["requested"] for r in made] == [f"attribute:{kind}={v1}", f"attribute:{kind}={v2}"]
    paths = [tmp_path / r["path"] for r in made]
    assert len(set(paths)) == 2 and all(p.is_file() for p in paths)
    assert paths[0].read_bytes() != paths[1].read_bytes()  # each file holds its own edit


def test_augmented_reference_names_never_collide_over_many_clips():
    from wildactor.data.curate.augment import EditRequest, _load_yaml, pick_attributes, reference_name

    lists = _load_yaml("configs/curate/attributes.yaml")
    for i in range(2000):
        pairs = pick_attributes(f"{i:016x}", lists, 3)
        names = [reference_name("attr_aug", EditRequest("attribute", "body", v, k)) for k, v in pairs]
        assert len(set(names)) == len(names) == 3


# -------------------------------------------------------------------------------------------- export


def test_two_encodes_of_one_clip_are_byte_identical(tmp_path):
    import subprocess
    import sys

    from wildactor.data.curate.export import cut_clip

    src = write_video(tmp_path / "src.mp4", astronaut_camera_frames(24, 320, 180, zoom=1.3))
    code = "import sys; from wildactor.data.curate.export import cut_clip; cut_clip(sys.argv[1], sys.argv[2], 2, 22, 8.0)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    # one encode in a second process at the same time, competing for the cores
    other = subprocess.Popen([sys.executable, "-c", code, str(src), str(tmp_path / "b.mp4")], env=env)
    cut_clip(str(src), str(tmp_path / "a.mp4"), 2, 22, 8.0)
    assert other.wait(timeout=120) == 0
    a, b = (tmp_path / "a.mp4").read_bytes(), (tmp_path / "b.mp4").read_bytes()
    assert a == b
    assert b"threads=1 lookahead_threads=1" in a  # single-threaded x264, as the store's promise needs
