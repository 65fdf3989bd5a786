"""The whole curation pipeline: a bad-input corpus, resumability under SIGKILL, shot tracing, and
the same manifest from every executor."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wildactor.data.curate.config import CurateConfig
from wildactor.data.curate.pipeline import build, discover_inputs
from wildactor.data.curate.synthetic import astronaut_frames, bad_corpus, still_frames, write_video
from wildactor.data.schema import read_manifest, validate_records

EXPECTED_REASONS = {
    "corrupt_container": "corrupt_container",
    "corrupt_stream": "corrupt_stream",
    "truncated": "truncated",
    "empty_file": "empty_file",
    "text_as_mp4": "not_a_video",
    "image_as_mp4": "still_image",
    "no_person": "no_person",
    "two_people": "multi_person",
    "grayscale": "grayscale",
    "huge_resolution": "too_large",
    "non_utf8_name": "bad_filename",
    "too_short": "too_short",
}


def _rows(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out / "rejects.parquet").to_pylist()


def _manifest_key(out: Path) -> list[str]:
    """Manifest records as sorted canonical JSON (order aside)."""
    return sorted(json.dumps(r.to_dict(), sort_keys=True) for r in read_manifest(out / "manifest.jsonl"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("corpus")
    kinds = bad_corpus(folder)
    write_video(folder / "good_astronaut.mp4", astronaut_frames(16))
    return folder, kinds


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("built")
    summary = build(corpus[0], out, CurateConfig(), progress=False)
    return out, summary


def test_bad_input_corpus_lands_in_rejects_with_distinct_reasons(corpus, built):
    folder, kinds = corpus
    out, summary = built
    assert len(kinds) >= 10
    rows = {r["path"]: r for r in _rows(out) if r["kind"] == "clip"}
    got = {}
    for kind, name in kinds.items():
        shown = os.fsencode(name).decode("utf-8", errors="backslashreplace")
        assert shown in rows, f"{kind} ({name}) missing from rejects"
        got[kind] = rows[shown]["reason"]
    assert got == EXPECTED_REASONS
    assert len(set(got.values())) == len(got)  # every kind has its own reason
    assert summary["clips_kept"] == 1 and summary["inputs_done"] == summary["inputs"] == len(kinds) + 1


def test_manifest_is_valid_schema_and_files_exist(built):
    out, _ = built
    records = read_manifest(out / "manifest.jsonl")
    assert len(records) == 1
    assert validate_records(records, root=out) == []
    rec = records[0]
    assert (
        rec.source_video
        if hasattr(rec, "source_video")
        else rec.extra["source_video"] == "good_astronaut.mp4"
    )
    regions = {r.region for r in rec.refs}
    assert regions == {"face", "body"}
    assert all(r.source == "self_crop" and r.visibility >= 0.45 for r in rec.refs)
    assert _manifest_key(out) == sorted(
        json.dumps(r.to_dict(), sort_keys=True) for r in read_manifest(out / "manifest.parquet")
    )
    csv = (out / "rejects.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0] == '"kind","path","clip_id","stage","reason","detail"' and len(csv) == len(_rows(out)) + 1
    assert (out / "table1.md").is_file() and (out / "table1.png").is_file()


def test_rerun_is_idempotent_and_does_no_work(corpus, built):
    out, summary = built
    before = {p: p.stat().st_mtime_ns for p in (out / "state").rglob("*.json")}
    again = build(corpus[0], out, CurateConfig(), progress=False)
    assert again == summary
    after = {p: p.stat().st_mtime_ns for p in (out / "state").rglob("*.json")}
    assert {p: t for p, t in after.items() if p.name != "config.json"} == {
        p: t for p, t in before.items() if p.name != "config.json"
    }


def test_cli_stats_and_rejects(built, capsys):
    from wildactor.cli import main

    out, _ = built
    assert main(["data", "stats", str(out)]) == 0
    assert "| body | self_crop |" in capsys.readouterr().out
    assert main(["data", "rejects", str(out), "--reason", "multi_person"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "1 row(s)" and "two_people.mp4" in lines[0]


def test_a_long_video_becomes_shots_traced_to_their_source(tmp_path):
    src = tmp_path / "in"
    write_video(
        src / "long.mp4", astronaut_frames(16) + still_frames("coffee", 12) + astronaut_frames(16, seed=5)
    )
    out = tmp_path / "out"
    build(src, out, CurateConfig(), progress=False)
    kept = read_manifest(out / "manifest.jsonl")
    rejected = [r for r in _rows(out) if r["kind"] == "clip"]
    spans = sorted((r.extra["start_sec"], r.extra["end_sec"]) for r in kept)
    assert spans == [(0.0, 2.0), (3.5, 5.5)]
    assert all(r.extra["source_video"] == "long.mp4" for r in kept)
    assert [(r["reason"], r["clip_id"].endswith("-s001")) for r in rejected] == [("no_person", True)]
    for r in kept:  # each clip file holds exactly its shot
        import av

        with av.open(str(out / r.video)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 16


KILL_SCRIPT = """
import sys
from wildactor.data.curate.config import CurateConfig
from wildactor.data.curate.pipeline import build
build(sys.argv[1], sys.argv[2], CurateConfig(), progress=False)
"""


def test_sigkill_at_random_points_then_rerun_loses_and_duplicates_nothing(tmp_path):
    src = tmp_path / "in"
    for i in range(4):
        write_video(src / f"astro_{i}.mp4", astronaut_frames(12, seed=i, drift=1.0 + i / 2))
    (src / "empty.mp4").write_bytes(b"")
    (src / "notes.mp4").write_text("not a video\n" * 10)
    write_video(src / "coffee.mp4", still_frames("coffee", 12))
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(7)
    inputs_dir = out / "state" / "inputs"

    def done() -> int:
        return len(list(inputs_dir.glob("*.json"))) if inputs_dir.is_dir() else 0

    kills, partial = 0, 0
    for target in (1, 3, 5, 6):  # kill once this many inputs are finished, plus a random delay
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(src), str(out)], env=env)
        deadline = time.time() + 60
        while done() < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        partial += 0 < done() < 7
    assert kills >= 3 and partial >= 1  # killed mid-run, with some inputs finished and some not
    summary = build(src, out, CurateConfig(), progress=False)
    inputs = {it["rel"] for it in discover_inputs(src, CurateConfig().extensions)}
    kept = [r.extra["source_video"] for r in read_manifest(out / "manifest.jsonl")]
    rejected = [r["path"] for r in _rows(out) if r["kind"] == "clip"]
    assert sorted(kept + rejected) == sorted(inputs)  # every input exactly once (one shot each)
    assert summary["clips_kept"] == 4 and summary["clips_rejected"] == 3
    assert not list(out.rglob(".*.tmp-*")) or all(p.parent.name != "state" for p in out.rglob(".*.tmp-*"))


def test_process_pool_gives_the_same_manifest(corpus, built, tmp_path):
    out, _ = built
    pooled = tmp_path / "pool"
    build(corpus[0], pooled, CurateConfig(), workers=2, progress=False)
    assert _manifest_key(pooled) == _manifest_key(out)
    key = lambda rows: sorted((r["path"], r["reason"]) for r in rows)  # noqa: E731
    assert key(_rows(pooled)) == key(_rows(out))


@pytest.mark.slow
def test_ray_executor_gives_the_same_manifest_as_local(corpus, built, tmp_path):
    pytest.importorskip("ray")
    out, _ = built
    via_ray = tmp_path / "ray"
    build(corpus[0], via_ray, CurateConfig(), executor="ray", workers=2, progress=False)
    assert _manifest_key(via_ray) == _manifest_key(out)
    key = lambda rows: sorted((r["path"], r["reason"]) for r in rows)  # noqa: E731
    assert key(_rows(via_ray)) == key(_rows(out))
