"""Manifest schema: round trips, validation naming record and field, view bins."""

from __future__ import annotations

import json

import pytest

from wildactor.data.schema import (
    ManifestRecord,
    ReferenceRecord,
    ValidationProblem,
    angular_distance,
    load_manifest,
    read_manifest,
    resolve_path,
    validate_records,
    view_bin,
    write_manifest,
)
from wildactor.errors import WildActorError


def _record(i: int = 0, **overrides) -> dict:
    data = {
        "video": f"videos/clip{i}.mp4",
        "prompt": "a woman in a red coat walks through a market",
        "actor_id": f"actor{i}",
        "source": "youtube",
        "width": 832,
        "height": 480,
        "duration_sec": 5.0,
        "refs": [
            {
                "path": f"refs/{i}_face0.png",
                "region": "face",
                "view": "front",
                "angle": 5.0,
                "visibility": 0.9,
                "source_frame": 12,
                "metadata": {"source": "self_crop"},
            },
            {
                "path": f"refs/{i}_body0.png",
                "region": "body",
                "view": "back",
                "angle": 180.0,
                "visibility": None,
                "source_frame": None,
                "metadata": {"source": "view_aug", "editor": "qwen-image-edit"},
            },
            {
                "path": f"refs/{i}_sheet.png",
                "region": "three_view",
                "view": "canonical",
                "angle": None,
                "visibility": None,
                "source_frame": None,
                "metadata": {"source": "canonical"},
            },
        ],
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_manifest_round_trips_with_extra_fields(tmp_path, suffix):
    rows = [_record(0, split="train"), _record(1, split="val")]
    rows[1]["refs"][0]["crop_box"] = [1, 2, 3, 4]
    records = [ManifestRecord.from_dict(r) for r in rows]
    path = write_manifest(records, tmp_path / f"manifest{suffix}")
    back = read_manifest(path)
    assert [r.to_dict() for r in back] == rows
    assert back[0].extra == {"split": "train"}
    assert back[1].refs[0].extra == {"crop_box": [1, 2, 3, 4]}
    assert back[1].refs[1].source == "view_aug"
    assert isinstance(back[0].refs[0], ReferenceRecord)


def test_valid_records_have_no_problems():
    assert validate_records([_record(0), ManifestRecord.from_dict(_record(1))]) == []


def test_every_problem_names_record_and_field():
    bad_ref = _record(1)
    bad_ref["refs"][0]["angle"] = "left-ish"
    bad_ref["refs"][1]["region"] = "hand"
    bad_ref["refs"][2]["metadata"] = {"source": "diffusion"}
    rows = [_record(0), bad_ref, _record(2, refs=[]), _record(3, width=-4, angle_unit="deg")]
    del rows[3]["prompt"]
    problems = validate_records(rows)
    found = {(p.index, p.field) for p in problems}
    assert found == {
        (1, "refs[0].angle"),
        (1, "refs[1].region"),
        (1, "refs[2].metadata.source"),
        (2, "refs"),
        (3, "width"),
        (3, "prompt"),
    }
    assert all(isinstance(p, ValidationProblem) for p in problems)
    assert "record 1: refs[1].region" in str(next(p for p in problems if p.field == "refs[1].region"))


@pytest.mark.parametrize("angle", [float("nan"), float("inf"), 720.0, True])
def test_bad_angles_are_rejected(angle):
    row = _record(0)
    row["refs"][0]["angle"] = angle
    assert [(p.index, p.field) for p in validate_records([row])] == [(0, "refs[0].angle")]


def test_missing_files_are_found_relative_to_the_manifest(tmp_path):
    row = _record(0)
    (tmp_path / "videos").mkdir()
    (tmp_path / "refs").mkdir()
    (tmp_path / "videos" / "clip0.mp4").write_bytes(b"x")
    for ref in row["refs"][:2]:
        (tmp_path / ref["path"]).write_bytes(b"x")
    problems = validate_records([row], root=tmp_path)
    assert [(p.index, p.field) for p in problems] == [(0, "refs[2].path")]
    assert resolve_path(tmp_path, "refs/a.png") == tmp_path / "refs" / "a.png"
    assert resolve_path(tmp_path, "/abs/a.png").as_posix() == "/abs/a.png"


def test_load_manifest_stops_with_record_and_field(tmp_path):
    path = tmp_path / "m.jsonl"
    rows = [_record(0), _record(1, refs=[])]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(WildActorError, match=r"record 1: refs: empty"):
        load_manifest(path, check_files=False)
    with pytest.raises(WildActorError, match=r"record 0: video: file not found"):
        load_manifest(path, check_files=True)


def test_unreadable_manifests_raise_user_errors(tmp_path):
    with pytest.raises(WildActorError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(_record(0)) + "\n{not json\n")
    with pytest.raises(WildActorError, match="line 2"):
        read_manifest(broken)
    with pytest.raises(WildActorError, match="format"):
        write_manifest([], tmp_path / "m.csv")


@pytest.mark.parametrize(
    "angle, expected",
    [
        (0, "front"),
        (45, "front"),
        (-45, "front"),
        (315, "front"),
        (46, "side"),
        (90, "side"),
        (-90, "side"),
        (134, "side"),
        (135, "back"),
        (180, "back"),
        (-170, "back"),
        (225, "back"),
        (226, "side"),
        (360, "front"),
        (405, "front"),
    ],
)
def test_view_bin(angle, expected):
    assert view_bin(angle) == expected


def test_angular_distance_wraps():
    assert angular_distance(350, 10) == pytest.approx(20)
    assert angular_distance(-170, 170) == pytest.approx(20)
    assert angular_distance(0, 180) == pytest.approx(180)
