"""Curation stages one by one, on real faces that ship with scikit-image and on small synthetic videos."""

from __future__ import annotations

import numpy as np
import pytest

from wildactor.data.curate.config import CurateConfig, DetectConfig, TrackConfig, load_config
from wildactor.data.curate.synthetic import astronaut_frames, still_frames, write_video
from wildactor.errors import WildActorError


def test_config_rejects_bad_values_with_the_field_name():
    with pytest.raises(ValueError, match="detect.backend"):
        DetectConfig(backend="magic")
    with pytest.raises(ValueError, match="min_ratio"):
        TrackConfig(min_ratio=1.5)


def test_yaml_maps_one_to_one_and_unknown_keys_fail(tmp_path):
    assert load_config("configs/curate/default.yaml") == CurateConfig()
    world = load_config("configs/curate/actorworld.yaml")
    assert world.detect.backend == "silhouette" and world.augment.editor == "world"
    bad = tmp_path / "bad.yaml"
    bad.write_text("detect: {backnd: hog}\n")
    with pytest.raises(WildActorError, match="backnd"):
        load_config(bad)
    assert load_config(None, {"tracking.min_ratio": 0.7}).tracking.min_ratio == 0.7


def test_shot_splitter_finds_the_cut_between_two_scenes(tmp_path):
    from wildactor.data.curate.shots import content_scores, split_points

    path = write_video(tmp_path / "two_shots.mp4", astronaut_frames(12) + still_frames("coffee", 10), fps=8)
    scores, n = content_scores(str(path), 96)
    assert n == 22
    assert split_points(scores, 27.0, 8) == [(0, 12), (12, 22)]
    # a single continuous shot stays whole
    path = write_video(tmp_path / "one_shot.mp4", astronaut_frames(20), fps=8)
    scores, _ = content_scores(str(path), 96)
    assert split_points(scores, 27.0, 8) == [(0, 20)]


def test_split_points_respects_minimum_shot_length():
    from wildactor.data.curate.shots import split_points

    scores = np.zeros(30)
    scores[[3, 10, 25]] = 80.0
    assert split_points(scores, 27.0, 5) == [(0, 10), (10, 25), (25, 30)]


def test_lk_track_ratio_high_for_one_moving_subject_low_after_a_swap():
    import cv2

    from wildactor.data.curate.tracking import lk_track_ratio

    frames = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in astronaut_frames(12)]
    box = [40.0, 10.0, 150.0, 190.0]
    assert lk_track_ratio(frames, [box] * 12, 64, 1.5, 0.15) >= 0.8
    other = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in still_frames("coffee", 6)]
    assert lk_track_ratio(frames[:6] + other, [box] * 12, 64, 1.5, 0.15) < 0.6


def test_dlib_embedding_same_person_above_threshold_other_person_below():
    from skimage import data

    from wildactor.data.curate.calibrate import lfw_faces
    from wildactor.data.curate.detect import FaceDetector
    from wildactor.data.curate.faces import DEFAULT_THRESHOLDS, DlibEmbedder

    det, emb = FaceDetector(0.3), DlibEmbedder()
    img = data.astronaut()

    def vec(im):
        found = [b for b, _ in det(im)]
        return emb.embed(im, max(found, key=lambda b: b[2] - b[0]), None) if found else None

    a = vec(img)
    b = vec(np.ascontiguousarray(astronaut_frames(1, size=256)[0]))  # rescaled, cropped
    others = [v for v in (vec(f) for f in lfw_faces()[:20]) if v is not None]
    thr = DEFAULT_THRESHOLDS["dlib"]
    assert len(others) >= 5
    assert float(a @ b) >= thr
    assert all(float(a @ o) < thr for o in others)


def _projected_landmarks(yaw_deg: float, size: int = 400) -> np.ndarray:
    """68 landmarks (only the ones head pose uses) of the generic head turned by `yaw_deg`
    (positive = facing screen right), seen by a pinhole camera 600 mm away."""
    from wildactor.data.curate.viewpoint import _MODEL_3D, _MODEL_IDX

    t = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    pts = _MODEL_3D @ rot.T  # (6, 3), y up, z towards the camera
    f, d = size, 600.0
    uv = np.stack([size / 2 + f * pts[:, 0] / (d - pts[:, 2]), size / 2 - f * pts[:, 1] / (d - pts[:, 2])], 1)
    lm = np.zeros((68, 2))
    lm[_MODEL_IDX] = uv
    lm[36:42] = uv[2]  # eye on image left
    lm[42:48] = uv[3]  # eye on image right
    return lm


@pytest.mark.parametrize("yaw", [-60.0, -30.0, -10.0, 10.0, 30.0, 60.0])
def test_head_pose_from_landmarks_recovers_yaw_and_its_sign(yaw):
    from wildactor.data.curate.viewpoint import yaw_from_landmarks

    est = yaw_from_landmarks(_projected_landmarks(yaw), (400, 400))
    assert abs(est - yaw) < 8.0


def test_real_frontal_face_is_labelled_front():
    from skimage import data

    from wildactor.data.curate.detect import FaceDetector
    from wildactor.data.curate.viewpoint import LandmarkViews, view_name

    img = data.astronaut()
    face = max((b for b, _ in FaceDetector(0.3)(img)), key=lambda b: b[2] - b[0])
    views = LandmarkViews(45.0)
    angle, how = views(img, None, face)
    assert how == "landmarks" and view_name(angle) == "front"
    assert views(img, [0, 0, 100, 200], None) == (180.0, "body:no_face")  # a person with no face: back
    assert [view_name(a) for a in (0, 90, 180, 270, 330)] == ["front", "right", "back", "left", "front"]


def test_hog_detector_finds_one_person_in_a_single_clip_and_two_side_by_side():
    from wildactor.data.curate.detect import DetectStage
    from wildactor.data.curate.synthetic import two_people_frames

    st = DetectStage(CurateConfig(), "/tmp")
    st.setup()
    assert len(st.detect(astronaut_frames(1)[0])) == 1
    assert len(st.detect(two_people_frames(1)[0])) == 2
    assert len(st.detect(still_frames("coffee", 1)[0])) == 0


def test_identity_stage_rejects_a_face_swap_and_keeps_one_person(tmp_path):
    import cv2

    from wildactor.data.curate.calibrate import lfw_faces
    from wildactor.data.curate.identity import IdentityStage

    swap = [cv2.resize(f, (192, 192)) for f in lfw_faces()[:1]] * 8
    swap = [np.ascontiguousarray(np.stack([f[..., 0], f[..., 1], f[..., 2]], -1)) for f in swap]
    same = write_video(tmp_path / "same.mp4", astronaut_frames(24), fps=8)
    swapped = write_video(tmp_path / "swap.mp4", astronaut_frames(16) + swap, fps=8)
    st = IdentityStage(CurateConfig(), str(tmp_path))

    def item(path):
        return {
            "clip_id": path.stem,
            "path": str(path),
            "probe": {"fps": 8.0},
            "shot": {"start_sec": 0.0, "end_sec": 3.0},
            "detect": {"samples": [{"time": 0.0, "person": None}]},
        }

    kept, rejected = st([item(same), item(swapped)])
    assert not kept.get("reject") and kept["identity"]["checked"] and kept["identity"]["num_faces"] == 3
    assert rejected["reject"]["reason"] == "identity_inconsistent"


def test_spread_pick_spreads_over_viewpoints():
    from wildactor.data.curate.crops import spread_pick

    cands = [
        {"angle": a, "visibility": 1.0, "size": 100.0, "frame": i}
        for i, a in enumerate([0, 5, 10, 90, 95, 180])
    ]
    picked = spread_pick(cands, 3)
    assert sorted(p["angle"] for p in picked) == [0, 90, 180]


def test_table1_counts_and_percentages(tmp_path):
    from wildactor.data.curate.stats import table1, write_stats
    from wildactor.data.schema import ManifestRecord

    def ref(angle, source, region="body"):
        return {"path": "x.png", "region": region, "angle": angle, "metadata": {"source": source}}

    rec = ManifestRecord.from_dict(
        {
            "refs": [
                ref(0, "self_crop"),
                ref(10, "self_crop"),
                ref(90, "self_crop"),
                ref(180, "view_aug"),
                ref(270, "view_aug"),
            ]
        }
    )
    rows = {(r["region"], r["source"]): r for r in table1([rec])}
    assert rows[("body", "self_crop")]["count"] == 3
    assert rows[("body", "self_crop")]["front"] == pytest.approx(66.7)
    assert rows[("body", "view_aug")]["back"] == 50.0 and rows[("body", "all")]["count"] == 5
    write_stats([rec], tmp_path)
    assert (tmp_path / "table1.png").stat().st_size > 0
    assert "| body | view_aug | 2 | 0.0 | 50.0 | 50.0 |" in (tmp_path / "table1.md").read_text()


@pytest.mark.parametrize(
    "overrides, missing",
    [
        ({"detect.backend": "yolo", "detect.yolo_path": "/nowhere/yolov8n.onnx"}, "/nowhere/yolov8n.onnx"),
        (
            {"identity.backend": "arcface", "identity.arcface_path": "/nowhere/buffalo_l"},
            "/nowhere/buffalo_l",
        ),
        (
            {"tracking.backend": "cotracker", "tracking.cotracker_path": "/nowhere/co-tracker"},
            "/nowhere/co-tracker",
        ),
        ({"viewpoint.backend": "vlm", "viewpoint.vlm_path": "/nowhere/qwen-vl"}, "/nowhere/qwen-vl"),
        (
            {"augment.editor": "qwen", "augment.editor_path": "/nowhere/Qwen-Image-Edit-2509"},
            "/nowhere/Qwen-Image-Edit-2509",
        ),
        ({"detect.backend": "yolo"}, "detect.yolo_path"),
        (
            {"viewpoint.backend": "world_probe", "viewpoint.world_probe_path": "/nowhere/probes"},
            "/nowhere/probes",
        ),
    ],
)
def test_real_model_backends_name_the_missing_path(overrides, missing):
    from wildactor.data.curate.pipeline import check_stages, make_stages

    with pytest.raises(WildActorError, match=missing.replace(".", r"\.")):
        check_stages(make_stages(load_config(None, overrides), "/tmp"))


def test_cli_prints_one_line_and_exits_2_for_a_missing_model(tmp_path, capsys):
    from wildactor.cli import main

    (tmp_path / "in").mkdir()
    rc = main(
        [
            "data",
            "build",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "out"),
            "--set",
            "identity.backend=arcface",
            "--set",
            "identity.arcface_path=/nowhere/arcface",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "/nowhere/arcface" in err[0]


def test_gpu_backends_ask_ray_for_a_gpu_cpu_defaults_do_not():
    from wildactor.data.curate.pipeline import make_stages

    cpu = {st.name: st.resources()["num_gpus"] for st in make_stages(CurateConfig(), "/tmp")}
    assert set(cpu.values()) == {0.0}
    cfg = load_config(None, {"augment.editor": "qwen", "tracking.backend": "cotracker"})
    gpu = {st.name: st.resources()["num_gpus"] for st in make_stages(cfg, "/tmp")}
    assert gpu["augment"] == 1.0 and gpu["tracking"] == 1.0 and gpu["detect"] == 0.0


def test_identity_check_keeps_the_same_face_and_drops_others_with_reasons(tmp_path):
    import cv2
    from skimage import data

    from wildactor.data.curate.calibrate import lfw_faces
    from wildactor.data.curate.idcheck import IdCheckStage
    from wildactor.data.curate.images import write_png

    st = IdCheckStage(CurateConfig(), str(tmp_path))
    st.setup()
    medoid = st.embed_image(data.astronaut())
    same = cv2.resize(data.astronaut()[40:300, 100:360], (200, 200))  # another framing of her face
    other = next(f for f in lfw_faces()[:20] if st.embed_image(f) is not None)
    nobody = still_frames("coffee", 1)[0]
    images = {
        "same": (same, "front"),
        "other": (other, "front"),
        "back": (nobody, "back"),
        "noface": (nobody, "left"),
    }
    augmented = []
    for name, (img, view) in images.items():
        write_png(np.ascontiguousarray(img), tmp_path / f"{name}.png")
        augmented.append(
            {
                "path": f"{name}.png",
                "region": "face",
                "view": view,
                "angle": 0.0,
                "metadata": {"source": "view_aug"},
            }
        )
    item = {
        "clip_id": "c",
        "identity": {"checked": True, "medoid": medoid.tolist()},
        "refs": [],
        "augmented": augmented,
        "dropped_refs": [],
    }
    (out,) = st([item])
    assert [r["path"] for r in out["refs"]] == ["same.png", "back.png"]
    assert out["refs"][1]["metadata"]["id_check"] == "no_face_back_view"
    assert {d["path"]: d["reason"] for d in out["dropped_refs"]} == {
        "other.png": "identity_mismatch",
        "noface.png": "no_face_found",
    }


def test_sidecar_found_next_to_the_video_or_in_world_make_labels_tree(tmp_path):
    import json

    from wildactor.data.curate.probe import load_sidecar

    (tmp_path / "clips" / "a1").mkdir(parents=True)
    (tmp_path / "labels" / "a1").mkdir(parents=True)
    (tmp_path / "labels" / "a1" / "c0.json").write_text(json.dumps({"actor_id": "actor_000001"}))
    assert load_sidecar(str(tmp_path / "clips" / "a1" / "c0.mp4")) == {"actor_id": "actor_000001"}
    (tmp_path / "v.mp4.json").write_text(json.dumps({"prompt": "a person waves"}))
    assert load_sidecar(str(tmp_path / "v.mp4")) == {"prompt": "a person waves"}
    assert load_sidecar(str(tmp_path / "none.mp4")) is None


def test_angle_smoothing_wraps_at_360_and_snap_respects_the_bin():
    from wildactor.data.curate.viewpoint import smooth_angles, snap_to_bin

    out = smooth_angles([350.0, 10.0, None, 30.0, 40.0], 1)
    assert min(out[0], 360.0 - out[0]) < 1e-6 and min(out[1], 360.0 - out[1]) < 1e-6  # not 180
    assert out[2] is None and out[3] == pytest.approx(35.0) and out[4] == pytest.approx(35.0)
    assert snap_to_bin(60.0, "front") == 44.0 and snap_to_bin(300.0, "back") == 224.0
    assert snap_to_bin(100.0, "side") == 100.0
