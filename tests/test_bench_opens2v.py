"""OpenS2V-Eval in Actor-Bench: import of an OpenS2V-format JSON (real astronaut photo + two cases WildActor
cannot generate), scoring `<case_id>.mp4` with tiny random back-ends of the real classes, the leaderboard CSV,
TotalScore n/a when a weighted metric is missing and exact when all are there, and each protocol's arithmetic."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _qwen import make_tiny_qwen
from wildactor.bench.opens2v import RANGES, WEIGHTS, total_score
from wildactor.cli import main as cli

skimage_data = pytest.importorskip("skimage.data")

HUMAN_CASES = ("singleface_1", "singlehuman_1")


def _astronaut() -> np.ndarray:
    return skimage_data.astronaut()  # (512, 512, 3), a real frontal face


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> Path:
    """An OpenS2V-Eval-shaped folder: Images/... and Human-Domain_Eval.json with 2 human + 2 other cases."""
    root = tmp_path_factory.mktemp("opens2v")
    a = _astronaut()
    files = {
        "Images/singleface/crop_woman/1.png": a[20:260, 120:340],
        "Images/singlehuman/crop_woman/1.png": a,
        "Images/singleobject/cup/1.jpg": skimage_data.coffee(),
        "Images/multihuman/crop_man/1.png": skimage_data.camera()[..., None].repeat(3, axis=2),
    }
    for rel, img in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / rel)
    cases = {
        "singleface_1": {"img_paths": ["Images/singleface/crop_woman/1.png"], "class_label": ["Woman"],
                         "prompt": "A woman in a space suit smiles at the camera.", "synthesis_flag": "Wrong"},
        "singlehuman_1": {"img_paths": ["Images/singlehuman/crop_woman/1.png"], "class_label": ["Woman"],
                          "prompt": "An astronaut stands in front of a flag.", "synthesis_flag": "wrong"},
        "singleobj_1": {"img_paths": ["Images/singleobject/cup/1.jpg"], "class_label": ["Cup"],
                        "prompt": "A cup of coffee on a table.", "synthesis_flag": "wrong"},
        "multihuman_1": {"img_paths": ["Images/multihuman/crop_man/1.png", "Images/singlehuman/crop_woman/1.png"],
                         "class_label": ["Man", "Woman"], "prompt": "Two people talk.", "synthesis_flag": "wrong"},
    }  # fmt: skip
    (root / "Human-Domain_Eval.json").write_text(json.dumps(cases, indent=1))
    return root


@pytest.fixture(scope="module")
def videos(eval_dir) -> Path:
    """`<case_id>.mp4` of each human case: a slow pan over the astronaut photo (the face stays in view)."""
    from wildactor.media import write_mp4

    big = np.asarray(Image.fromarray(_astronaut()).resize((240, 240)))
    out = eval_dir / "videos"
    for k, cid in enumerate(HUMAN_CASES):
        frames = np.stack(
            [big[6 * t : 6 * t + 192, 40 - 4 * k - 4 * t : 232 - 4 * k - 4 * t] for t in range(8)]
        )
        write_mp4(out / f"{cid}.mp4", frames, fps=8)
    return out


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory) -> Path:
    """A tiny random Qwen2-VL checkpoint folder (model, tokenizer, image processor) for GME and the judge."""
    return make_tiny_qwen(
        tmp_path_factory.mktemp("tiny_qwen2vl"), ["excellent", "good", "fair", "poor", "bad"]
    )


@pytest.fixture(scope="module")
def tiny_aes(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny random CLIPVisionModelWithProjection (768-D projection, as ViT-L/14) and a random LAION MLP."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from wildactor.bench.metrics.aesthetics import laion_mlp

    folder = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(1)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=768)  # fmt: skip
    CLIPVisionModelWithProjection(cfg).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    mlp = folder / "aesthetic-model.pth"
    torch.save({f"layers.{k}": v for k, v in laion_mlp().state_dict().items()}, mlp)
    return folder, mlp


@pytest.fixture(scope="module")
def tiny_cur(tmp_path_factory) -> Path:
    """A tiny random IR network (the real class, 4 stages of 1 unit) saved as a CurricularFace state dict."""
    from wildactor.bench.metrics.curricularface import IRBackbone

    torch.manual_seed(2)
    net = IRBackbone(units=(1, 1, 1, 1), channels=(8, 16, 24, 32), embed_dim=64).eval()
    path = tmp_path_factory.mktemp("tiny_cur") / "glint360k_curricular_face_r101_backbone.bin"
    torch.save(net.state_dict(), path)
    return path


def _import(eval_dir: Path, tmp_path: Path, capsys) -> Path:
    suite = tmp_path / "suite" / "opens2v_human.yaml"
    args = ["bench", "import-opens2v", str(eval_dir / "Human-Domain_Eval.json"), "--images", str(eval_dir),
            "-o", str(suite)]  # fmt: skip
    assert cli(args) == 0
    return suite


def test_import_keeps_case_ids_and_lists_the_cases_it_cannot_generate(eval_dir, tmp_path, capsys):
    suite_path = _import(eval_dir, tmp_path, capsys)
    out = capsys.readouterr().out
    assert "wrote" in out and "2 cases" in out
    assert "singleobj_1: subject is an object (Cup), not a person" in out
    assert "multihuman_1: 2 reference subjects" in out
    assert "#   singleobj_1: subject is an object (Cup)" in suite_path.read_text()

    from wildactor.bench.spec import load_suite

    suite = load_suite(suite_path)
    assert suite.name == "opens2v-human"
    items = {it.item_id: it for it in suite.items()}
    assert sorted(items) == sorted(HUMAN_CASES)
    assert items["singleface_1"].references[0].region == "face"
    assert items["singlehuman_1"].references[0].region == "body"
    assert items["singlehuman_1"].prompt.text == "An astronaut stands in front of a flag."
    # References are copies of the OpenS2V images inside the suite's folder (suites never reach outside it).
    ref = suite.root / items["singleface_1"].references[0].path
    assert ref.resolve().is_relative_to(suite.root.resolve())
    assert ref.read_bytes() == (eval_dir / "Images/singleface/crop_woman/1.png").read_bytes()

    assert cli(["bench", "validate", str(suite_path), "--list"]) == 0
    listed = capsys.readouterr().out
    assert "  singleface_1.mp4" in listed and "  singlehuman_1.mp4" in listed


def test_import_rejects_bad_input_with_one_line_errors(eval_dir, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"singleface_1": {"img_paths": [], "prompt": ""}}))
    assert (
        cli(["bench", "import-opens2v", str(bad), "--images", str(eval_dir), "-o", str(tmp_path / "s.yaml")])
        != 0
    )
    err = capsys.readouterr().err
    assert err.startswith("error:") and "img_paths" in err and "prompt" in err
    assert cli(["bench", "import-opens2v", str(eval_dir / "Human-Domain_Eval.json"), "--images",
                str(tmp_path / "nowhere"), "-o", str(tmp_path / "s.yaml")]) != 0  # fmt: skip
    assert "image folder not found" in capsys.readouterr().err


def test_explicit_item_ids_must_be_unique(tmp_path):
    from wildactor.bench.spec import suite_from_dict
    from wildactor.errors import WildActorError

    Image.fromarray(_astronaut()).save(tmp_path / "a.png")
    subj = {"references": {"in_the_wild": [{"path": "a.png"}]}, "contextual": [{"text": "x", "id": "case_1"}]}
    data = {"name": "s", "subjects": [{"id": "a", **subj}, {"id": "b", **subj}]}
    with pytest.raises(WildActorError, match="item id 'case_1' is also used"):
        suite_from_dict(data, tmp_path)


def _per_case(run: Path) -> dict[str, dict[str, float]]:
    out = {}
    for p in sorted((run / "items").glob("*.json")):
        rec = json.loads(p.read_text())
        out[p.stem] = {k: m["value"] for k, m in rec["metrics"].items() if m["value"] is not None}
    return out


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_scoring_case_videos_and_the_leaderboard_csv(
    eval_dir, videos, tiny_qwen, tiny_aes, tiny_cur, tmp_path, capsys
):
    suite = _import(eval_dir, tmp_path, capsys)
    clip_dir, mlp = tiny_aes
    full = tmp_path / "full"
    args = ["bench", "run", "--suite", str(suite), "--videos", str(videos), "-o", str(full), "--method", "tiny",
            "--no-progress", "--limit", "1", "--face-detector", "dlib", "--curricularface", str(tiny_cur), "--aes-clip",
            str(clip_dir), "--aes-mlp", str(mlp), "--gme", str(tiny_qwen), "--judge", str(tiny_qwen)]  # fmt: skip
    assert cli(args) == 0
    assert "scored 1, skipped (already done) 0, rejected 0" in capsys.readouterr().out  # one case: CPU time
    per_case = _per_case(full)
    assert sorted(per_case) == ["singleface_1"]
    weighted = set(WEIGHTS["human"])
    for cid, vals in per_case.items():
        assert weighted <= set(vals), f"{cid}: missing {weighted - set(vals)}"
        assert (
            vals["facesim_cur_keep0"] <= vals["facesim_cur"] + 1e-12
        )  # dropping zero frames can only raise it
    items = json.loads((full / "items" / "singleface_1.json").read_text())["metrics"]
    # The judged scores follow from the rater outputs recorded next to them, recomputed here by hand.
    probs = items["natural_score"]["extra"]["grade_probs"]
    assert len(probs) == 5 and abs(sum(probs) - 1.0) < 1e-4
    assert items["natural_score"]["value"] == pytest.approx(
        sum((g + 1) * p for g, p in enumerate(probs)), abs=1e-5
    )
    ratings = items["motion_smoothness"]["per_frame"]
    assert len(ratings) == 8  # one window per decoded frame
    flagged = set()
    for i in range(len(ratings) - 1):
        if abs(ratings[i + 1] - ratings[i]) > 0.025:
            flagged |= {i, i + 1}
    assert items["motion_smoothness"]["extra"]["artifact_frames"] == sorted(flagged)
    assert items["motion_smoothness"]["value"] == pytest.approx(1 - len(flagged) / len(ratings))
    assert items["facesim_arc"]["na_reason"] == "the face back-end gives no ArcFace embedding"
    assert (
        items["facesim_cur"]["extra"]["frames_with_face"] > 0
    )  # the astronaut's face is found in the frames
    assert "not GPT-4o" in items["natural_score"]["extra"]["note"]
    assert items["nexus_score"]["value"] is None

    # The same videos with no model given: only MotionAmplitude (offline) is a number.
    bare = tmp_path / "bare"
    assert cli(["bench", "run", "--suite", str(suite), "--videos", str(videos), "-o", str(bare), "--method",
                "bare", "--no-progress"]) == 0  # fmt: skip
    assert "scored 2, skipped (already done) 0, rejected 0" in capsys.readouterr().out
    assert sorted(_per_case(bare)) == sorted(HUMAN_CASES)

    report = tmp_path / "report"
    assert cli(["bench", "report", "--format", "opens2v", str(full), str(bare), "-o", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "bare: TotalScore n/a (missing aes_score" in printed
    rows = {r["Model"]: r for r in _read_csv(report / "results_Human-Domain.csv")}
    with open(report / "results_Human-Domain.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[:10] == ["Model", "Venue", "Evaluated by", "TotalScore↑", "Aesthetics↑", "MotionSmoothness↑",
                           "MotionAmplitude↑", "FaceSim↑", "GmeScore↑", "NaturalScore↑"]  # fmt: skip
    assert "NexusScore↑" not in header  # Human-Domain has no NexusScore
    assert rows["bare"]["TotalScore↑"] == "n/a" and rows["bare"]["MotionAmplitude↑"] != "n/a"
    assert "natural_score: no local VLM folder given" in rows["bare"]["Missing for TotalScore"]
    assert "facesim_cur: no CurricularFace IR-101 weights given" in rows["bare"]["Missing for TotalScore"]

    # TotalScore when every weighted metric is present: the weights applied exactly to the normalised means.
    expected = 0.0
    for key, w in WEIGHTS["human"].items():
        lo, hi = RANGES[key]
        vals = [min(abs(v[key]) if "motion" in key else v[key], hi) for v in per_case.values()]
        vals = [max(v, lo) if key in ("aes_score", "natural_score") else v for v in vals]
        expected += w * (np.mean(vals) - lo) / (hi - lo)
    merged = json.loads((report / "tiny_Human-Domain.json").read_text())
    assert merged["total_score"] == pytest.approx(expected, abs=1e-12)
    assert rows["tiny"]["TotalScore↑"] == f"{100 * expected:.2f}%"
    assert rows["tiny"]["FaceSim-Arc (OpenS2V as coded: zero frames kept)"] == "n/a"
    assert "NaturalScore" in rows["tiny"]["Not comparable"]

    # Per-metric files in OpenS2V's own layout.
    fs = json.loads((report / "tiny" / "facesim.json").read_text())
    assert set(fs) == {"singleface_1"}
    assert fs["singleface_1"]["cur_score"] == per_case["singleface_1"]["facesim_cur"]
    amp = json.loads((report / "tiny" / "motion_amplitude.json").read_text())
    assert amp["singleface_1"]["motion_fb"] == per_case["singleface_1"]["motion_amplitude"]
    nat = json.loads((report / "tiny" / "naturalscore_1.json").read_text())
    assert nat["singleface_1"] == per_case["singleface_1"]["natural_score"]

    # OpenS2V's own result files fill what this machine could not run, and then the weights apply exactly.
    ext = tmp_path / "opens2v_results"
    ext.mkdir()
    (ext / "naturalscore_1.json").write_text(json.dumps({"singleface_1": "4", "singlehuman_1": "error"}))
    (ext / "naturalscore_2.json").write_text(json.dumps({"singleface_1": "5", "singlehuman_1": "3"}))
    for name, key, vals in (("motion_smoothness.json", "motion_smoothness", (0.9, 0.8)),
                            ("aesthetic_score.json", "aes_score", (5.5, 3.0)),
                            ("gmescore.json", "gme_score", (0.3, 0.4)),
                            ("facesim.json", "cur_score", (0.6, 0.2))):  # fmt: skip
        (ext / name).write_text(json.dumps({c: {key: v} for c, v in zip(HUMAN_CASES, vals)}))
    board = tmp_path / "results_Human-Domain.csv"  # a published row, in the leaderboard's own layout
    board.write_text(",".join(header[:10]) + "\nStand-In,Open-Source,OpenS2V Team,62.08%,51.25%,97.90%,5.03%,"
                     "47.99%,69.91%,71.39%\n")  # fmt: skip
    report2 = tmp_path / "report2"
    assert cli(["bench", "report", "--format", "opens2v", str(bare), "--opens2v-json", str(ext), "-o",
                str(report2), "--leaderboard", str(board)]) == 0  # fmt: skip
    rows2 = _read_csv(report2 / "results_Human-Domain.csv")
    assert [r["Model"] for r in rows2] == ["bare", "Stand-In"] and rows2[1]["TotalScore↑"] == "62.08%"
    merged2 = json.loads((report2 / "bare_Human-Domain.json").read_text())
    amp = np.mean([min(abs(_per_case(bare)[c]["motion_amplitude"]), 1.0) for c in HUMAN_CASES])
    natural = ((4.5 + 3.0) / 2 - 1.0) / 4.0  # "error" is skipped; runs averaged per case, then over cases
    aes = ((5.5 + 4.0) / 2 - 4.0) / 3.0  # 3.0 clipped up to 4
    expected2 = 0.18 * aes + 0.09 * 0.85 + 0.03 * amp + 0.25 * 0.4 + 0.15 * 0.35 + 0.30 * natural
    assert merged2["total_score"] == pytest.approx(expected2, abs=1e-12)
    assert merged2["from_opens2v_json"] == ["aes_score", "facesim_cur", "gme_score", "motion_smoothness",
                                            "natural_score"]  # fmt: skip


def test_total_score_arithmetic_matches_opens2v():
    per_case = {
        "a": {"aes_score": 8.0, "motion_smoothness": 0.9, "motion_amplitude": -0.2, "facesim_cur": 0.5,
              "gme_score": 0.3, "natural_score": 0.5, "nexus_score": 0.0},
        "b": {"aes_score": 5.0, "motion_smoothness": 0.7, "motion_amplitude": 1.5, "facesim_cur": 0.3,
              "gme_score": 0.4, "natural_score": 4.0, "nexus_score": 0.08},
    }  # fmt: skip
    norm, total, missing = total_score(per_case, "open")
    assert missing == []
    assert norm["aes_score"] == pytest.approx(((7.0 + 5.0) / 2 - 4.0) / 3.0)  # clipped to [4, 7]
    assert norm["motion_amplitude"] == pytest.approx((0.2 + 1.0) / 2)  # |.|, capped at 1
    assert norm["natural_score"] == pytest.approx(((1.0 + 4.0) / 2 - 1.0) / 4.0)  # clipped to [1, 5]
    assert norm["nexus_score"] == pytest.approx(1.0)  # zero cases skipped, 0.08 capped at 0.05, / 0.05
    expected = (0.16 * norm["aes_score"] + 0.06 * 0.8 + 0.02 * 0.6 + 0.20 * 0.4 + 0.12 * 0.35 + 0.20 * 1.0
                + 0.24 * norm["natural_score"])  # fmt: skip
    assert total == pytest.approx(expected, abs=1e-12)
    assert sum(WEIGHTS["human"].values()) == pytest.approx(1.0) and sum(
        WEIGHTS["open"].values()
    ) == pytest.approx(1.0)
    del per_case["b"]["gme_score"], per_case["a"]["gme_score"]
    _, total, missing = total_score(per_case, "human")
    assert total is None and missing == ["gme_score"]


def test_motion_smoothness_windows_and_artifacts_follow_opens2v():
    from wildactor.bench.metrics.smoothness import artifact_frames, sliding_windows, smoothness_from_ratings

    # OpenS2V pads a short window at its start unless it begins at frame 0: the last window is [2, 2, 3].
    assert sliding_windows(4, 3) == [[0, 0, 0], [0, 1, 2], [1, 2, 3], [2, 2, 3]]
    scores = [0.50, 0.51, 0.60, 0.60, 0.60, 0.55]  # jumps after frames 1 and 4
    assert artifact_frames(scores) == [1, 2, 4, 5]
    assert smoothness_from_ratings(scores) == pytest.approx(1 - 4 / 6)


def test_opens2v_frame_sampling_and_amplitude_sign():
    from wildactor.bench.metrics.amplitude import motion_amplitude_opens2v
    from wildactor.bench.metrics.opens2v_common import opens2v_indices, stride_indices

    assert opens2v_indices(49, 32) == [int(i) for i in np.linspace(0, 48, 32, dtype=int)]
    assert opens2v_indices(16, 32)[:4] == [0, 0, 0, 1]  # short clips repeat frames, as OpenS2V's reader does
    assert stride_indices(49, 16) == [3 * i for i in range(16)]
    rng = np.random.default_rng(0)
    tex = np.asarray(Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).resize((160, 160)))
    still = np.stack([tex[:, :128]] * 6)
    moving = np.stack([tex[:, 4 * t : 4 * t + 128] for t in range(6)])
    assert motion_amplitude_opens2v(still).value == pytest.approx(0.0, abs=1e-3)
    assert motion_amplitude_opens2v(moving).value > 0.5  # a 4-px shift per frame


def test_face_alignment_recovers_a_known_similarity():
    from wildactor.bench.metrics.facesim_opens2v import ARCFACE_TEMPLATE, similarity_transform

    ang, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    src = ARCFACE_TEMPLATE
    dst = scale * src @ rot.T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], scale * rot) and np.allclose(m[:, 2], shift)


def test_ir101_has_the_curricularface_checkpoint_layout(tiny_cur):
    from wildactor.bench.metrics.curricularface import IRBackbone, load_ir101

    sd = IRBackbone().state_dict()
    assert sum(k.endswith("res_layer.1.weight") for k in sd) == 49  # 3 + 13 + 30 + 3 units
    assert tuple(sd["output_layer.3.weight"].shape) == (512, 512 * 7 * 7)
    assert "output_layer.4.weight" not in sd and "output_layer.4.running_mean" in sd  # BN1d without affine
    assert tuple(sd["body.3.shortcut_layer.0.weight"].shape) == (128, 64, 1, 1)
    tiny = load_ir101(str(tiny_cur))
    assert tiny(torch.zeros(2, 3, 112, 112)).shape == (2, 64)


def test_gme_embeddings_pool_the_last_real_token_and_score_is_the_mean_dot(tiny_qwen):
    from wildactor.bench.metrics.gme import GmeEmbedder, gme_score

    gme = GmeEmbedder(tiny_qwen, min_image_tokens=4, max_image_tokens=16)
    alone = gme.text_embeddings(["A woman"])
    batch = gme.text_embeddings(["A woman", "A woman astronaut woman astronaut"])  # right-padded batch
    assert np.allclose(alone[0], batch[0], atol=1e-5)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 56, 56, 3), dtype=np.uint8)
    img = gme.image_embeddings(list(frames))
    assert not np.allclose(img[0], img[1])  # the picture reaches the embedding
    r = gme_score(frames, "A woman", gme)
    idx = [int(i) for i in np.linspace(0, 2, 32, dtype=int)]
    assert r.value == pytest.approx(float(np.mean(img[idx] @ alone[0])), abs=1e-5)


def test_back_ends_without_weights_report_na(tmp_path):
    from wildactor.bench.metrics.aesthetics import build_aesthetic_backend
    from wildactor.bench.metrics.facesim_opens2v import build_facesim_backend
    from wildactor.bench.metrics.gme import build_gme_backend
    from wildactor.bench.metrics.vlm_rater import build_rater_backend
    from wildactor.bench.opens2v_scorer import OpenS2VConfig, OpenS2VScorer

    assert "no GME folder" in build_gme_backend(None).reason
    assert "config.json missing" in build_gme_backend(str(tmp_path)).reason
    assert "no local VLM folder" in build_rater_backend(None).reason
    assert "aesthetic-model.pth" in build_aesthetic_backend(None, None).reason
    assert "no *.onnx" in build_facesim_backend(f"insightface:{tmp_path}", None).reason
    fs = build_facesim_backend("dlib", str(tmp_path / "missing.bin"))
    assert fs.cur is None and "not found" in fs.cur_reason
    desc = OpenS2VScorer(OpenS2VConfig()).describe()
    assert "n/a" in desc["opens2v_gme"] and "n/a" in desc["opens2v_judge"]


@pytest.mark.slow  # ~40 s on a loaded 2-core machine; the --model path itself is in test_bench_runner
def test_imported_human_cases_generate_with_the_model_from_their_reference_images(eval_dir, tmp_path, capsys):
    suite = _import(eval_dir, tmp_path, capsys)
    out = tmp_path / "gen"
    args = ["bench", "run", "--suite", str(suite), "--model", "default", "-o", str(out), "--limit", "1",
            "--frames", "5", "--steps", "2", "--size", "64", "--no-progress"]  # fmt: skip
    assert cli(args) == 0
    assert "scored 1, skipped (already done) 0, rejected 0" in capsys.readouterr().out
    assert (out / "videos" / "singleface_1.mp4").is_file()  # the case id names the generated video
    rec = json.loads((out / "items" / "singleface_1.json").read_text())
    assert rec["item"]["setting"] == "in_the_wild" and rec["num_frames"] == 5
    assert rec["metrics"]["motion_amplitude"]["value"] is not None  # OpenS2V metrics are on for this suite


def test_total_score_reproduces_a_published_leaderboard_row():
    # Hailuo(20250503), Human-Domain, as published: TotalScore 65.26% from its normalised columns.
    published = {"aes_score": 0.5275, "motion_smoothness": 0.991, "motion_amplitude": 0.318, "facesim_cur": 0.5769,
                 "gme_score": 0.7142, "natural_score": 0.692}  # fmt: skip
    raw = {k: RANGES[k][0] + v * (RANGES[k][1] - RANGES[k][0]) for k, v in published.items()}  # one case
    _, total, missing = total_score({"case": raw}, "human")
    assert missing == [] and f"{100 * total:.2f}" == "65.26"
