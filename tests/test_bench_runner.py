"""Actor-Bench end to end: runner (model / videos / baselines), resumability, rejects, report files,
n/a in every output format, and the baselines ranked sensibly by the metrics."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wildactor.bench.plots import PALETTE
from wildactor.bench.report import bootstrap_ci
from wildactor.cli import main as cli

REPORT_FILES = (
    "report.md",
    "table2.csv",
    "table3.csv",
    "report.json",
    "body_by_view.png",
    "per_subject_copy_paste.png",
)


def _items(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "items").glob("*.json"))}


def test_tiny_model_run_writes_every_report_file_and_a_rerun_skips_finished_items(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    args = ["bench", "run", "--suite", "template", "--model", "default", "-o", str(out), "--limit", "4",
            "--frames", "5", "--steps", "2", "--no-progress"]  # fmt: skip
    assert cli(args) == 0
    stdout = capsys.readouterr().out
    assert "scored 4, skipped (already done) 0, rejected 0" in stdout
    assert (
        "template: 4 items selected (a subset of the suite's" in stdout
        and "4 to generate and score" in stdout
    )
    assert "estimate: " in stdout and " s an item here, about " in stdout  # measured on the first storyline
    videos = sorted(p.name for p in (out / "videos").glob("*.mp4"))
    assert videos == sorted(f"{k}.mp4" for k in _items(out))
    assert len(videos) == 4  # one 3-shot storyline + one contextual prompt

    # Rerun: nothing is generated again (generation would fail here) and nothing is rescored.
    from wildactor.bench import runner

    def no_generation(*a, **k):
        raise AssertionError("finished items must not be generated again")

    monkeypatch.setattr(runner.VideoMaker, "make", no_generation)
    assert cli(args) == 0
    assert "scored 0, skipped (already done) 4" in capsys.readouterr().out
    # An item whose score is missing but whose video exists is scored without generating.
    first = sorted(_items(out))[0]
    (out / "items" / f"{first}.json").unlink()
    assert cli(args) == 0
    assert "scored 1, skipped (already done) 3" in capsys.readouterr().out

    assert cli(["bench", "report", str(out)]) == 0
    for name in REPORT_FILES:
        assert (out / "report" / name).is_file(), name
    md = (out / "report" / "report.md").read_text()
    assert "Sequential Narrative" in md and "Contextual Generalization" in md and "| default |" in md
    # A --limit run is flagged as partial, and Table 3's last column is named for what it is.
    rep = json.loads((out / "report" / "report.json").read_text())["runs"][0]
    assert rep["partial"] is True and rep["n_items"] == 4 and rep["suite_items"] > 4
    assert f"**Partial run: default** scored 4 of the suite's {rep['suite_items']} items" in md
    assert "| Method | Front | Side | Back | All frames |" in md and "Avg" not in md
    assert set(rep["table3"]) == {"front", "side", "back", "all"}


def test_videos_folder_scores_other_systems_and_bad_files_become_rejects(tmp_path, capsys):
    base = tmp_path / "pasted"
    assert cli(["bench", "run", "--suite", "template", "--baseline", "pasted", "-o", str(base), "--limit", "5",
                "--no-progress"]) == 0  # fmt: skip
    vids = tmp_path / "other_system"
    vids.mkdir()
    names = sorted(p.name for p in (base / "videos").glob("*.mp4"))
    for n in names[:3]:
        shutil.copy(base / "videos" / n, vids / n)
    (vids / names[3]).write_text("not a video")  # corrupt; names[4] is missing
    out = tmp_path / "scored"
    assert cli(["bench", "run", "--suite", "template", "--videos", str(vids), "-o", str(out), "--limit", "5",
                "--method", "OtherSystem", "--no-progress"]) == 0  # fmt: skip
    assert "scored 3" in capsys.readouterr().out
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    reasons = {r["item_id"]: r["reason"] for r in rejects}
    assert "cannot decode" in reasons[Path(names[3]).stem]
    assert "video not found" in reasons[Path(names[4]).stem]
    # The same video scores the same whichever way it arrived.
    a, b = _items(base), _items(out)
    for k in b:
        assert b[k]["metrics"]["copy_paste"]["value"] == pytest.approx(a[k]["metrics"]["copy_paste"]["value"])


def test_missing_backends_are_na_with_the_reason_in_every_output_format(tmp_path):
    out = tmp_path / "run"
    missing = tmp_path / "no_clip_here"
    assert cli(["bench", "run", "--suite", "template", "--baseline", "pasted", "-o", str(out), "--limit", "4",
                "--clip", str(missing), "--no-progress"]) == 0  # fmt: skip
    rep_dir = tmp_path / "rep"
    assert cli(["bench", "report", str(out), "-o", str(rep_dir)]) == 0
    why = "config.json missing"
    rep = json.loads((rep_dir / "report.json").read_text())
    cell = rep["runs"][0]["table2"]["all"]["all"]["semantic"]
    assert cell["value"] is None and why in cell["na_reason"] and cell["display"].startswith("n/a: ")
    rows = list(csv.DictReader(open(rep_dir / "table2.csv")))
    sem = [r for r in rows if r["metric"] == "semantic"]
    assert sem and all(
        r["value"] == "n/a" and r["display"].startswith("n/a: ") and why in r["display"] for r in sem
    )
    assert all(r["value"] != "n/a" for r in rows if r["metric"] == "copy_paste")
    md = (rep_dir / "report.md").read_text()
    assert "n/a" in md and why in md
    # Plots: the n/a run draws no point (its colour is absent) where a computed metric does draw.
    colour = np.array(PALETTE[0])

    def has_colour(png: str) -> bool:
        return bool((np.asarray(Image.open(rep_dir / png).convert("RGB")) == colour).all(-1).any())

    assert has_colour("per_subject_copy_paste.png")
    assert not has_colour("per_subject_semantic.png")
    # Per-item JSON says it too.
    item = next(iter(_items(out).values()))
    assert item["metrics"]["semantic"]["value"] is None and why in item["metrics"]["semantic"]["display"]


def test_baselines_are_ranked_sensibly_on_actorworld(tmp_path):
    pytest.importorskip("wildactor.world")
    runs = {}
    for name in ("pasted", "no-reference", "oracle"):
        out = tmp_path / name
        assert (
            cli(["bench", "run", "--baseline", name, "-o", str(out), "--subjects", "1", "--no-progress"]) == 0
        )
        runs[name] = out
    rep_dir = tmp_path / "rep"
    assert cli(["bench", "report", *map(str, runs.values()), "-o", str(rep_dir)]) == 0
    rep = json.loads((rep_dir / "report.json").read_text())
    cells = {r["method"]: r["table2"]["all"]["all"] for r in rep["runs"]}
    assert cells["pasted"]["copy_paste"]["value"] > 0.9
    assert cells["oracle"]["copy_paste"]["value"] < cells["pasted"]["copy_paste"]["value"] - 0.3
    assert cells["pasted"]["motion"]["value"] < 1e-4 < cells["oracle"]["motion"]["value"]
    if cells["oracle"]["body"]["value"] is not None:  # exact metrics need the shipped probes
        assert cells["oracle"]["body"]["value"] > cells["no-reference"]["body"]["value"] + 0.3
        assert cells["oracle"]["semantic"]["value"] > cells["pasted"]["semantic"]["value"]
    else:
        assert "probe" in cells["oracle"]["body"]["na_reason"]


def test_bootstrap_ci_over_subjects():
    assert bootstrap_ci([]) is None
    assert bootstrap_ci([0.4]) == (0.4, 0.4)
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)
    vals = np.random.default_rng(0).normal(0.6, 0.1, 75)
    lo, hi = bootstrap_ci(vals)
    assert lo < vals.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * vals.std(ddof=1) / np.sqrt(75), rel=0.25)
    assert bootstrap_ci(vals, seed=0) == bootstrap_ci(vals, seed=0)


def test_two_runs_with_one_name_are_refused_and_run_folders_are_not_mixed(tmp_path, capsys):
    a = tmp_path / "a"
    assert cli(["bench", "run", "--suite", "template", "--baseline", "pasted", "-o", str(a), "--limit", "1",
                "--no-progress"]) == 0  # fmt: skip
    assert (
        cli(["bench", "run", "--suite", "template", "--baseline", "oracle", "-o", str(a), "--limit", "1"])
        == 2
    )
    assert "different run" in capsys.readouterr().err
    assert cli(["bench", "run", "--suite", "template", "--baseline", "pasted", "-o", str(a), "--limit", "1",
                "--clip", str(tmp_path / "clip")]) == 2  # fmt: skip
    assert "other metric back-ends" in capsys.readouterr().err
    assert cli(["bench", "report", str(a), str(a)]) == 2
    assert cli(["bench", "run", "--suite", "template", "--baseline", "oracle", "-o", str(tmp_path / "o"), "--limit", "1",
                "--no-progress"]) == 0  # fmt: skip
    rejects = (tmp_path / "o" / "rejects.jsonl").read_text()
    assert "ActorWorld" in rejects  # the oracle needs ActorWorld actors: a reject row, not a crash


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--baseline", "pasted", "--lora", "x.safetensors"], "--lora needs --model"),
        (["--baseline", "pasted", "--no-references"], "--no-references needs --model"),
        (["--videos", "no/such/folder"], "videos folder not found"),
        (["--baseline", "pasted", "--face", "facenet"], "face back-end must be"),
        (["--model", "no/such/model"], "model folder not found"),
        (["--model", "default", "--lora", "no/such.safetensors"], "reference LoRA file not found"),
    ],
)
def test_cli_user_errors_are_one_line_and_exit_2(tmp_path, capsys, extra, message):
    code = cli(
        [
            "bench",
            "run",
            "--suite",
            "template",
            "-o",
            str(tmp_path / "o"),
            "--limit",
            "1",
            "--no-progress",
            *extra,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_real_face_videos_scored_from_a_folder_rank_identity_correctly(tmp_path):
    """Your-own-subjects path with real faces: the astronaut photo as reference; one video of the same photo
    shifted/scaled, one of a different real face (LFW): the report ranks them and names the back-end."""
    skimage_data = pytest.importorskip("skimage.data")
    from wildactor.bench.metrics.face import BackendUnavailable, build_face_backend
    from wildactor.media import write_mp4

    if isinstance(build_face_backend("dlib"), BackendUnavailable):
        pytest.skip("dlib back-end unavailable")
    astro = skimage_data.astronaut()
    Image.fromarray(astro).save(tmp_path / "astronaut.png")
    suite = {
        "name": "real-faces",
        "subjects": [
            {"id": "eileen", "references": {"in_the_wild": [{"path": "astronaut.png", "region": "face"}]},
             "contextual": ["An astronaut smiles at the camera.", "An astronaut looks around."]}
        ],
    }  # fmt: skip
    (tmp_path / "suite.yaml").write_text(json.dumps(suite))
    vids = tmp_path / "videos"
    same = [
        np.asarray(Image.fromarray(astro).crop((x, y, x + 400, y + 400)).resize((256, 256)))
        for x, y in [(0, 0), (40, 20), (80, 40), (100, 60)]
    ]
    write_mp4(vids / "eileen__in_the_wild__ctx0.mp4", np.stack(same), fps=8)
    lfw = (skimage_data.lfw_subset()[0] * 255).astype(np.uint8)
    other = np.asarray(Image.fromarray(lfw).resize((256, 256), Image.BICUBIC).convert("RGB"))
    write_mp4(vids / "eileen__in_the_wild__ctx1.mp4", np.stack([other] * 4), fps=8)
    out = tmp_path / "run"
    assert (
        cli(
            [
                "bench",
                "run",
                "--suite",
                str(tmp_path / "suite.yaml"),
                "--videos",
                str(vids),
                "-o",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    items = _items(out)
    f_same = items["eileen__in_the_wild__ctx0"]["metrics"]["face"]
    f_other = items["eileen__in_the_wild__ctx1"]["metrics"]["face"]
    assert f_same["backend"] == "dlib-resnet"
    assert f_same["value"] > 0.8 and f_same["value"] > f_other["value"] + 0.5
    assert cli(["bench", "report", str(out)]) == 0
    assert "face=dlib-resnet" in (out / "report" / "report.md").read_text()


def test_a_backend_that_appears_between_runs_is_not_mixed_into_old_scores(tmp_path, capsys, monkeypatch):
    from wildactor.bench import runner

    out = tmp_path / "o"
    args = ["bench", "run", "--suite", "template", "--baseline", "pasted", "-o", str(out), "--no-progress"]
    assert cli([*args, "--limit", "1"]) == 0
    # Same command and flags, but a back-end now loads (e.g. probe weights installed since the first run).
    describe = runner.Scorer.describe
    monkeypatch.setattr(runner.Scorer, "describe", lambda self: {**describe(self), "probes": "now available"})
    assert cli([*args, "--limit", "4"]) == 2
    assert "other metric back-ends" in capsys.readouterr().err
