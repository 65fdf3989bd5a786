"""`wildactor generate` end to end on a tiny random model: outputs decode back; bad inputs fail in one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from wildactor.cli import main as cli_main
from wildactor.default_model import EXAMPLE_PROMPTS, TINY_RANDOM_LABEL, build_tiny_pipeline
from wildactor.media import read_mp4

FAST = ["--steps", "2", "--size", "96x64", "--frames", "5", "--fps", "8"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny"
    build_tiny_pipeline(0).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def ref_files(tmp_path_factory):
    """A face in RGBA, a body in 8-bit grey and a three-view sheet in 16-bit grey: all must be accepted."""
    folder = tmp_path_factory.mktemp("refs")
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (40, 30, 4), dtype=np.uint8)
    face[..., 3] = 128
    Image.fromarray(face, "RGBA").save(folder / "face.png")
    Image.fromarray(rng.integers(0, 256, (80, 30), dtype=np.uint8), "L").save(folder / "body.png")
    Image.fromarray(rng.integers(0, 65535, (30, 90), dtype=np.uint16)).save(folder / "sheet.png")
    return folder


def run(argv, capsys):
    code = cli_main(["generate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generate_writes_decodable_mp4s_sheet_and_settings(model_dir, ref_files, tmp_path, capsys):
    out = tmp_path / "out"
    refs = [
        f"{ref_files / 'face.png'}:face",
        str(ref_files / "body.png"),
        f"{ref_files / 'sheet.png'}:three_view",
    ]
    argv = [
        "--model",
        str(model_dir),
        "-o",
        str(out),
        "--prompt",
        "she walks in",
        "--prompt",
        "she sits down",
    ]
    for r in refs:
        argv += ["--ref", r]
    code, stdout, _ = run(argv + FAST, capsys)
    assert code == 0
    for name in ("shot_01.mp4", "shot_02.mp4"):
        frames = read_mp4(out / name)
        assert frames.shape == (5, 64, 96, 3)
        assert frames.std() > 1.0
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.height >= 3 * 64  # a reference row and one row per shot
    settings = json.loads((out / "settings.json").read_text())
    assert settings["status"] == "done"
    gen = settings["generation"]
    assert gen["prompts"] == ["she walks in", "she sits down"]
    assert [r["region"] for r in gen["references"]] == ["face", "body", "three_view"]
    assert all(len(r["sha256"]) == 64 for r in gen["references"])
    assert (gen["width"], gen["height"], gen["frames"], gen["steps"], gen["shot_seeds"]) == (
        96,
        64,
        5,
        2,
        [0, 1],
    )
    assert gen["model"]["random_weights"] is False and gen["max_sequence_length"] == 512
    assert settings["outputs"]["videos"] == ["shot_01.mp4", "shot_02.mp4"]
    assert "wrote" in stdout


def test_without_a_shipped_model_the_bare_command_uses_the_labelled_tiny_default(
    tmp_path, capsys, monkeypatch
):
    import wildactor.default_model

    monkeypatch.setattr(wildactor.default_model, "DEFAULT_MODEL_DIR", tmp_path / "not-shipped")
    out = tmp_path / "out"
    code, stdout, _ = run(["-o", str(out), *FAST], capsys)
    assert code == 0
    assert TINY_RANDOM_LABEL in stdout and "example actor" in stdout and "example narrative" in stdout
    settings = json.loads((out / "settings.json").read_text())
    assert settings["generation"]["model"] == {
        "path": None,
        "description": TINY_RANDOM_LABEL,
        "random_weights": True,
    }
    assert len(settings["generation"]["references"]) == 2
    assert settings["generation"]["prompts"] == list(EXAMPLE_PROMPTS)
    for i in range(len(EXAMPLE_PROMPTS)):
        assert read_mp4(out / f"shot_{i + 1:02d}.mp4").shape == (5, 64, 96, 3)


def test_rerun_with_same_settings_regenerates_only_missing_shots(
    model_dir, ref_files, tmp_path, capsys, monkeypatch
):
    import wildactor.media

    written = []  # (file name, frames) handed to the MP4 writer; H.264 bitstreams are not bit-reproducible
    real_write = wildactor.media.write_mp4

    def recording_write(path, frames, **kwargs):
        written.append((path.name, frames))
        return real_write(path, frames, **kwargs)

    monkeypatch.setattr(wildactor.media, "write_mp4", recording_write)
    out = tmp_path / "out"
    argv = ["--model", str(model_dir), "-o", str(out), "--ref", str(ref_files / "body.png")]
    argv += ["--prompt", "one", "--prompt", "two", *FAST]
    assert run(argv, capsys)[0] == 0
    first_mtime = (out / "shot_01.mp4").stat().st_mtime_ns
    (out / "shot_02.mp4").unlink()
    code, stdout, _ = run(argv, capsys)
    assert code == 0 and "resuming: 1 of 2" in stdout
    assert (out / "shot_01.mp4").stat().st_mtime_ns == first_mtime
    assert [name for name, _ in written] == ["shot_01.mp4", "shot_02.mp4", "shot_02.mp4"]
    np.testing.assert_array_equal(written[2][1], written[1][1])  # the regenerated shot is the same video
    assert (out / "shot_02.mp4").is_file() and (out / "contact_sheet.png").is_file()
    # Same path, different picture: nothing is reused.
    shutil.copy(ref_files / "face.png", tmp_path / "body_copy.png")
    argv[argv.index(str(ref_files / "body.png"))] = str(tmp_path / "body_copy.png")
    assert run(argv, capsys)[0] == 0
    shutil.copy(ref_files / "sheet.png", tmp_path / "body_copy.png")
    code, stdout, _ = run(argv, capsys)
    assert code == 0 and "resuming" not in stdout
    assert len(written) == 3 + 2 + 2


def _bad_inputs(model_dir, ref_files, tmp_path):
    text_file = tmp_path / "notes.png"
    text_file.write_text("not an image")
    float_image = tmp_path / "float.tiff"
    Image.fromarray(np.zeros((8, 8), dtype=np.float32), "F").save(float_image)
    broken_model = tmp_path / "broken"
    shutil.copytree(model_dir, broken_model)
    shutil.rmtree(broken_model / "vae")
    ok_ref = ["--ref", str(ref_files / "body.png")]
    model = ["--model", str(model_dir)]
    return {
        "missing reference": (
            ["--ref", str(tmp_path / "nope.png"), "--prompt", "x"],
            "reference image not found",
        ),
        "unreadable reference": (["--ref", str(text_file), "--prompt", "x"], "not an image file"),
        "unsupported mode": (["--ref", str(float_image), "--prompt", "x"], "unsupported image mode 'F'"),
        "unknown region": (
            ["--ref", f"{ref_files / 'body.png'}:hand", "--prompt", "x"],
            "unknown region 'hand'",
        ),
        "bad size": ([*model, *ok_ref, "--prompt", "x", "--size", "100x70"], "nearest valid size: 96x64"),
        "bad size format": ([*ok_ref, "--prompt", "x", "--size", "big"], "expected WIDTHxHEIGHT"),
        "bad reference size": (
            [*model, *ok_ref, "--prompt", "x", "--ref-size", "50x32"],
            "nearest valid size: 64x32",
        ),
        "bad frame count": ([*model, *ok_ref, "--prompt", "x", "--frames", "8"], "nearest valid count: 9"),
        "no prompt": ([*model, *ok_ref], "no prompt given"),
        "empty prompt": ([*model, *ok_ref, "--prompt", " "], "is empty"),
        "missing component": (
            ["--model", str(broken_model), *ok_ref, "--prompt", "x"],
            "missing the 'vae' component",
        ),
        "missing model": (
            ["--model", str(tmp_path / "none"), *ok_ref, "--prompt", "x"],
            "model folder not found",
        ),
        "missing lora": (
            [*model, *ok_ref, "--prompt", "x", "--lora", str(tmp_path / "l.st")],
            "LoRA file not found",
        ),
    }


def test_every_bad_input_gives_one_line_error_and_exit_code_2(model_dir, ref_files, tmp_path, capsys):
    for name, (argv, message) in _bad_inputs(model_dir, ref_files, tmp_path).items():
        code, stdout, stderr = run([*argv, "-o", str(tmp_path / "out")], capsys)
        assert code == 2, name
        assert stderr.startswith("error: ") and stderr.count("\n") == 1, (name, stderr)
        assert message in stderr, (name, stderr)
    assert not (tmp_path / "out" / "shot_01.mp4").exists()


def test_a_shipped_default_model_folder_is_loaded_with_its_example_actor_and_settings(
    model_dir, ref_files, tmp_path, capsys, monkeypatch
):
    import wildactor.default_model

    shipped = tmp_path / "default_model"
    shutil.copytree(model_dir, shipped)
    (shipped / "example_actor").mkdir()
    shutil.copy(ref_files / "face.png", shipped / "example_actor" / "face.png")
    refs = {"references": [{"path": "face.png", "region": "face"}]}
    (shipped / "example_actor" / "references.json").write_text(json.dumps(refs))
    defaults = {"steps": 2, "size": [64, 32], "frames": 5, "fps": 6, "guidance_scale": 3.0}
    defaults["reference_guidance_scale"] = 1.5
    (shipped / "generate_defaults.json").write_text(json.dumps(defaults))
    monkeypatch.setattr(wildactor.default_model, "DEFAULT_MODEL_DIR", shipped)
    out = tmp_path / "out"
    code, stdout, _ = run(["-o", str(out), "--prompt", "a walk"], capsys)
    assert code == 0 and "tiny random" not in stdout
    gen = json.loads((out / "settings.json").read_text())["generation"]
    assert gen["model"]["random_weights"] is False and str(shipped) in gen["model"]["description"]
    assert [(r["path"], r["region"]) for r in gen["references"]] == [
        (str((shipped / "example_actor" / "face.png").resolve()), "face")
    ]
    assert (gen["width"], gen["height"], gen["frames"], gen["steps"], gen["fps"], gen["guidance_scale"]) == (
        64, 32, 5, 2, 6, 3.0,
    )  # fmt: skip
    assert gen["reference_guidance_scale"] == 1.5
    assert read_mp4(out / "shot_01.mp4").shape == (5, 32, 64, 3)


def test_output_and_size_mistakes_fail_in_one_line_before_any_model_loads(
    model_dir, ref_files, tmp_path, capsys, monkeypatch
):
    import wildactor.default_model
    from wildactor.pipeline import WildActorPipeline

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(WildActorPipeline, "from_pretrained", no_loading)
    monkeypatch.setattr(wildactor.default_model, "load_default_model", no_loading)
    a_file = tmp_path / "taken.txt"
    a_file.write_text("x")
    ok = ["--model", str(model_dir), "--ref", str(ref_files / "body.png"), "--prompt", "x"]
    cases = {
        "output is a file": ([*ok, "-o", str(a_file)], "exists and is not a folder"),
        "output under a file": ([*ok, "-o", str(a_file / "sub")], "cannot write to the output folder"),
        "output not writable": ([*ok, "-o", "/proc/wildactor-out"], "cannot write to the output folder"),
        "huge size": (
            [*ok, "-o", str(tmp_path / "o"), "--size", "100000x100000"],
            "GiB of memory is available",
        ),
        "huge size, default model": (["-o", str(tmp_path / "o"), "--size", "100000x100000"], "GiB"),
    }
    for name, (argv, message) in cases.items():
        if name == "huge size, default model":
            monkeypatch.undo()  # the embedded default is small: it loads before the size check
        code, _, stderr = run(argv, capsys)
        assert code == 2, name
        assert stderr.startswith("error: ") and stderr.count("\n") == 1, (name, stderr)
        assert message in stderr, (name, stderr)
    assert not (tmp_path / "o").exists()  # a refused run leaves no empty output folder


def test_model_folder_defaults_are_used_and_printed_and_text_only_generation_works(tmp_path, capsys):
    from wildactor.default_model import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "generate_defaults.json").is_file():
        pytest.skip("no shipped default model")
    defaults = json.loads((DEFAULT_MODEL_DIR / "generate_defaults.json").read_text())
    out = tmp_path / "out"
    code, stdout, _ = run(
        [
            "--model",
            str(DEFAULT_MODEL_DIR),
            "--prompt",
            "a person walks in the forest",
            "--steps",
            "2",
            "-o",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    width, height = defaults["size"]
    assert f"settings: {width}x{height}, {defaults['frames']} frames" in stdout
    assert "references: none" in stdout
    gen = json.loads((out / "settings.json").read_text())["generation"]
    assert (gen["width"], gen["height"], gen["frames"], gen["fps"]) == (
        width,
        height,
        defaults["frames"],
        defaults["fps"],
    )
    assert gen["guidance_scale"] == defaults["guidance_scale"]
    assert gen["reference_guidance_scale"] == defaults["reference_guidance_scale"]
    assert gen["references"] == []
    assert read_mp4(out / "shot_01.mp4").shape == (defaults["frames"], height, width, 3)


def test_default_model_without_example_references_and_with_unknown_words_warns(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "--no-example-refs",
        "--prompt",
        "an astronaut walks in the forest",
        "--steps",
        "1",
        "-o",
        str(out),
    ]
    code, stdout, _ = run(argv, capsys)
    assert code == 0
    gen = json.loads((out / "settings.json").read_text())["generation"]
    assert gen["references"] == []
    tokenizer_vocab = _default_vocabulary()
    if tokenizer_vocab is not None and "astronaut" not in tokenizer_vocab:
        assert "warning: the model does not know these prompt words, they are dropped: astronaut." in stdout
        assert "forest" in stdout.split("Words it knows", 1)[1]
        assert gen["dropped_prompt_words"] == ["astronaut"]


def _default_vocabulary():
    from wildactor.default_model import DEFAULT_MODEL_DIR

    path = DEFAULT_MODEL_DIR / "tokenizer" / "tokenizer.json"
    if not path.is_file():
        return None
    return set(json.loads(path.read_text())["model"]["vocab"])


def test_unknown_prompt_words_lists_dropped_words_and_the_vocabulary():
    from transformers import ByT5Tokenizer

    from wildactor.generate import unknown_prompt_words
    from wildactor.model.word_tokenizer import fit_word_tokenizer

    tokenizer = fit_word_tokenizer(["a person walks in the forest", "a person jumps on the beach."])
    found = unknown_prompt_words(tokenizer, ["A man walks, then an astronaut jumps", "a MAN waves"])
    assert found.words == ("man", "then", "an", "astronaut", "waves")
    assert found.known == ("a", "beach", "forest", "in", "jumps", "on", "person", "the", "walks")
    assert "dropped: man, then, an, astronaut, waves" in found.message()
    assert unknown_prompt_words(tokenizer, ["a person walks on the beach"]) is None
    assert unknown_prompt_words(ByT5Tokenizer(), ["an astronaut, ünïcode"]) is None  # bytes: nothing unknown


def test_memory_check_is_a_lower_bound_of_the_decoded_frames():
    from wildactor.errors import WildActorError
    from wildactor.generate import check_memory

    check_memory(64, 64, 5, available=64 * 64 * 5 * 15)
    with pytest.raises(WildActorError, match="needs at least"):
        check_memory(64, 64, 5, available=64 * 64 * 5 * 15 - 1)


def test_loading_a_model_prints_no_weight_loading_bar(model_dir, capsys):
    from transformers.utils import logging as hf_logging

    from wildactor.generate import load_model
    from wildactor.pipeline import WildActorPipeline

    WildActorPipeline.from_pretrained(model_dir)  # transformers' own loader shows its bar ...
    assert "Loading weights" in capsys.readouterr().err
    load_model(model_dir, device="cpu")  # ... generate, the app and bench load through the quiet one
    assert "Loading weights" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # and leave the setting as it was


def test_image_to_video_on_the_embedded_model_starts_from_the_image_and_chains(tmp_path, capsys):
    """`--image F.png --chain`: shot 1's first frame is the VAE's reconstruction of the image (measured PSNR), each
    next shot starts from the previous shot's last frame, and settings.json records both."""
    from skimage import data

    from wildactor.default_model import load_default_model
    from wildactor.media import fit_image
    from wildactor.pipeline import load_rgb

    model = load_default_model()
    width, height = model.defaults["size"]
    image = tmp_path / "first.png"
    Image.fromarray(data.astronaut()).save(image)
    out = tmp_path / "i2v"
    code = cli_main(
        ["generate", "--image", str(image), "--chain", "--prompt", model.example_prompts[0], "--prompt",
         model.example_prompts[1], "--steps", "4", "-o", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    settings = json.loads((out / "settings.json").read_text())["generation"]
    assert settings["image"]["path"] == str(image.resolve()) and settings["chain"] is True
    pipe = model.pipeline
    fitted = np.asarray(fit_image(load_rgb(str(image)), width, height, "cover"))
    decoded = pipe.decode_latents(pipe.encode_first_frame(fitted, height, width))[0, :, 0]  # (3, H, W)
    round_trip = ((decoded + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()

    def psnr(a, b):
        return 10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))

    first, second = read_mp4(out / "shot_01.mp4"), read_mp4(out / "shot_02.mp4")
    # The MP4's frame 0 is the codec's round trip of the image up to H.264 loss; frame 0 of an unrelated
    # generation is far from it.
    assert psnr(first[0], round_trip) > 30, psnr(first[0], round_trip)
    assert psnr(first[0], fitted) > 20
    assert psnr(second[0], first[-1]) > 25  # shot 2 starts where shot 1 ended
    assert psnr(second[0], round_trip) < psnr(first[0], round_trip)
