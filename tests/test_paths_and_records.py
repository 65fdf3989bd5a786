"""Paths stay inside their folder (manifests, suites, `bench run --videos`), training records are all
checked before step 1, the curation reasons match their documentation, and the curation package has no
import circle."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

from wildactor.data.schema import load_manifest, read_manifest, write_manifest
from wildactor.errors import WildActorError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def toy(tmp_path):
    from wildactor.data.dataset import write_toy_dataset

    manifest = write_toy_dataset(tmp_path / "data", num_clips=3, num_frames=12)
    return manifest, read_manifest(manifest)


def test_paths_are_confined_to_their_root(tmp_path):
    from wildactor.paths import is_within, outside_root, resolve_within

    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("x")
    (root / "a" / "link").symlink_to(tmp_path / "secret.txt")
    assert outside_root(root, "a/../a/x.png") is None and is_within(root / "a", root)
    assert "leads outside" in outside_root(root, "../secret.txt")
    assert "an absolute path" in outside_root(root, "/etc/passwd")
    assert "a link" in outside_root(root, "a/link")
    assert not is_within(tmp_path / "rootx", root)  # a sibling sharing the prefix is not inside
    with pytest.raises(WildActorError, match="pass --allow-outside-root"):
        resolve_within(root, "../secret.txt")
    assert resolve_within(root, "../secret.txt", allow_outside=True) == root / "../secret.txt"


def test_an_out_of_root_manifest_path_is_refused_with_its_reason(toy, tmp_path):
    manifest, records = toy
    outside = tmp_path / "outside.mp4"
    outside.write_bytes((manifest.parent / records[0].video).read_bytes())
    rows = [r.to_dict() for r in records]
    rows[0]["video"] = "../outside.mp4"
    rows[1]["refs"][0]["path"] = "/etc/passwd"
    write_manifest(rows, manifest)
    with pytest.raises(WildActorError) as exc:
        load_manifest(manifest)
    msg = str(exc.value)
    assert "record 0: video: ../outside.mp4 leads outside" in msg and "outside the manifest's folder" in msg
    assert "record 1: refs[0].path: /etc/passwd leads outside" in msg
    rows[1]["refs"][0]["path"] = records[1].refs[0].path
    write_manifest(rows, manifest)
    assert len(load_manifest(manifest, allow_outside_root=True)) == 3  # the user means it


def test_training_checks_every_record_before_step_one_and_reports_all_at_once(toy):
    from wildactor.data.dataset import check_training_records

    manifest, records = toy
    root = manifest.parent
    video = root / records[0].video
    video.write_bytes(video.read_bytes()[:300])  # cut short: unreadable
    (root / records[2].refs[0].path).write_text("not an image")
    with pytest.raises(WildActorError) as exc:
        check_training_records(records, root)
    msg = str(exc.value)
    assert msg.startswith("2 of 3 manifest records cannot be used (set data.skip_bad_records")
    assert "record 0: video: cannot decode video" in msg
    assert "record 2: refs[0].path: cannot read reference image" in msg
    lines: list[str] = []
    kept = check_training_records(records, root, skip_bad=True, log=lines.append)
    assert kept == [records[1]]
    assert lines[0] == "skipping 2 of 3 manifest records that cannot be used:" and len(lines) == 3


def test_trainer_stops_before_loading_models_naming_every_bad_record(toy, tmp_path):
    from wildactor.train import TrainConfig, load_records

    manifest, records = toy
    for r in records[:2]:
        (manifest.parent / r.video).write_bytes(b"\x00" * 64)
    base = TrainConfig.from_yaml(REPO / "configs" / "tiny.yaml")
    cfg = dataclasses.replace(base, data=dataclasses.replace(base.data, manifest=str(manifest), toy_clips=0))
    with pytest.raises(WildActorError, match="2 of 3 manifest records"):
        load_records(cfg, tmp_path)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, skip_bad_records=True))
    _, kept = load_records(cfg, tmp_path)
    assert len(kept) == 1


def test_a_suite_reference_outside_its_folder_is_refused(tmp_path):
    from wildactor.bench.spec import suite_from_dict

    root = tmp_path / "suite"
    root.mkdir()
    (tmp_path / "face.png").write_bytes(b"x")
    data = {
        "name": "t",
        "subjects": [
            {
                "id": "s1",
                "references": {"arbitrary": [{"path": "../face.png", "region": "face"}]},
                "contextual": ["p"],
            }
        ],
    }
    with pytest.raises(WildActorError, match=r"arbitrary\[0\]\.path: \.\./face\.png leads outside"):
        suite_from_dict(data, root)
    assert suite_from_dict(data, root, allow_outside_root=True).subjects[0].id == "s1"


# ----------------------------------------------------------------------------------- curation reasons


def _documented_reasons() -> set[str]:
    text = (REPO / "docs" / "curate.md").read_text(encoding="utf-8")
    section = text.split("## Reject reasons", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))


def test_every_reason_the_code_can_emit_is_documented_and_every_documented_one_exists():
    from wildactor.data.curate.reasons import CLIP_REASONS, REFERENCE_REASONS

    assert _documented_reasons() == set(CLIP_REASONS) | set(REFERENCE_REASONS)
    # every literal reason in the stage code is a known one (reject() also refuses unknown ones at run time)
    emitted = set()
    for path in (REPO / "src" / "wildactor" / "data" / "curate").glob("*.py"):
        src = path.read_text(encoding="utf-8")
        emitted |= set(re.findall(r'reject\(\s*\w+,\s*[^,]+,\s*"([a-z_]+)"', src))
        emitted |= set(re.findall(r'drop_reference\(\s*\w+,\s*[^,]+,\s*[^,]+,\s*"([a-z_]+)"', src))
        emitted |= set(re.findall(r'\("([a-z_]+)", "[^"]*"\)', src)) & set(REFERENCE_REASONS)
    assert {"truncated", "multi_person", "stage_error", "editor_unsupported"} <= emitted
    assert emitted <= set(CLIP_REASONS) | set(REFERENCE_REASONS)


def test_reject_refuses_an_undocumented_reason():
    from wildactor.data.curate.stage import reject

    with pytest.raises(ValueError, match="undocumented clip reject reason 'oops'"):
        reject({}, "probe", "oops")


def test_the_curation_package_has_no_import_circle():
    pkg = REPO / "src" / "wildactor" / "data" / "curate"
    graph: dict[str, set[str]] = {}
    for path in pkg.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # function-level imports too
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("wildactor.data.curate.")
            ):
                deps.add(node.module.rsplit(".", 1)[1])
        graph[path.stem] = deps
    assert "chain" in graph["executors"] and "pipeline" not in graph["executors"]

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for dep in graph.get(start, ()):
            if dep == target or (dep not in seen and reaches(dep, target, seen | {dep})):
                return True
        return False

    circles = sorted(m for m in graph if reaches(m, m, set()))
    assert circles == []


# ----------------------------------------------------------------------------------- build bookkeeping


def test_stale_temporaries_go_summary_counts_this_run_and_rejects_print_one_line_per_row(tmp_path, capsys):
    from wildactor.cli import main
    from wildactor.data.curate.config import CurateConfig
    from wildactor.data.curate.pipeline import build

    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        (src / f"note{i}.mp4").write_text("a text file, not a video\n" * 3)
    (src / "tab\there\nnewline.mp4").write_text("also text\n" * 3)
    out = tmp_path / "out"
    stale = out / "state" / "clips" / ".abc.json.tmp-999999999"
    stale.parent.mkdir(parents=True)
    stale.write_text("{")
    first = build(src, out, CurateConfig(), progress=False)
    assert not stale.exists()
    assert (first["inputs"], first["inputs_done"], first["inputs_in_manifest"]) == (5, 5, 5)
    again = build(src, out, CurateConfig(), limit=3, progress=False)
    assert (again["inputs"], again["inputs_done"], again["inputs_in_manifest"]) == (3, 3, 5)
    capsys.readouterr()
    assert main(["data", "rejects", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[-1] == "5 row(s)"
    assert all(line.count("\t") == 4 for line in lines[:-1])
    assert any("tab\\there\\nnewline.mp4" in line for line in lines)
    assert json.loads((out / "summary.json").read_text())["inputs"] == 3


def test_bench_videos_that_link_out_of_their_folder_are_rejects_unless_allowed(tmp_path, capsys):
    from wildactor.cli import main as cli

    base = tmp_path / "pasted"
    assert cli(["bench", "run", "--suite", "template", "--baseline", "pasted", "-o", str(base), "--limit", "2",
                "--no-progress"]) == 0  # fmt: skip
    names = sorted(p.name for p in (base / "videos").glob("*.mp4"))
    vids = tmp_path / "linked"
    vids.mkdir()
    for n in names:
        (vids / n).symlink_to(base / "videos" / n)  # links to files elsewhere on the disk
    out = tmp_path / "scored"
    args = ["bench", "run", "--suite", "template", "--videos", str(vids), "--limit", "2", "--no-progress"]
    assert cli([*args, "-o", str(out)]) == 0
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == len(names) and all("leads outside" in r["reason"] for r in rejects)
    assert cli([*args, "-o", str(tmp_path / "allowed"), "--allow-outside-root"]) == 0
    assert f"scored {len(names)}," in capsys.readouterr().out
