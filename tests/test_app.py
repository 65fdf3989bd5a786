"""`wildactor app`: the page's logic on a tiny random model folder + LoRA, and the page itself in a real Chromium
(Debian's /usr/bin/chromium driven by Playwright) on the embedded default model."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _ports import free_port
from wildactor.app import (
    MAX_REFERENCES,
    MAX_SHOTS,
    AppServer,
    check_upload,
    frame_choices,
    parse_story,
    size_choices,
)
from wildactor.default_model import DEFAULT_MODEL_DIR, build_tiny_pipeline
from wildactor.errors import WildActorError
from wildactor.generate import load_model
from wildactor.media import read_mp4

CHROMIUM = Path("/usr/bin/chromium")
# FACTS.md: without the background-networking flags Chromium's connections are refused by the closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A saved tiny random pipeline and a reference LoRA file of other weights."""
    import torch

    folder = tmp_path_factory.mktemp("app-model")
    pipe = build_tiny_pipeline(0)
    pipe.save_pretrained(folder / "model")
    with torch.no_grad():
        for p in pipe.transformer.reference_lora_parameters():
            p.normal_(0.0, 0.3)
    lora = pipe.transformer.save_reference_lora(folder / "reference_lora.safetensors")
    loaded = load_model(folder / "model", lora, "cpu")
    loaded.defaults = {**loaded.defaults, "steps": 2, "size": (64, 64), "frames": 5, "fps": 8}
    return loaded


def _image(path: Path, size=(40, 60), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_uploads_over_the_limits_or_not_images_are_refused(tmp_path, monkeypatch):
    import wildactor.app

    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(WildActorError, match="notes.png: not an image file"):
        check_upload(text)
    big = _image(tmp_path / "big.png", size=(300, 200))
    check_upload(big)
    monkeypatch.setattr(wildactor.app, "MAX_UPLOAD_PIXELS", 300 * 200 - 1)
    with pytest.raises(WildActorError, match="300x200 pixels is over"):
        check_upload(big)
    monkeypatch.setattr(wildactor.app, "MAX_UPLOAD_BYTES", big.stat().st_size - 1)
    with pytest.raises(WildActorError, match="MB is over"):
        check_upload(big)


def test_story_and_choices_offer_only_valid_values():
    assert parse_story(" one \n\n two\n") == ["one", "two"]
    with pytest.raises(WildActorError, match="story is empty"):
        parse_story(" \n ")
    with pytest.raises(WildActorError, match=f"at most {MAX_SHOTS}"):
        parse_story("\n".join(["shot"] * (MAX_SHOTS + 1)))
    sizes = size_choices((1280, 704), 32)
    assert sizes[0] == "1280x704" and "704x1280" in sizes and len(sizes) == len(set(sizes))
    assert all(int(v) % 32 == 0 for s in sizes for v in s.split("x"))
    assert frame_choices(121, 4) == [4 * k + 1 for k in range(61)]
    assert frame_choices(5, 1) == list(range(1, 11))


def test_page_logic_generates_with_a_model_folder_and_lora_and_compares_without_references(
    tiny_model, tmp_path
):
    server = AppServer(tiny_model, root=tmp_path / "app")
    session = server.new_session()
    face = _image(tmp_path / "face.png", seed=1)
    body = _image(tmp_path / "body.png", seed=2)
    result = server.handle_generate(
        session, [[str(face)], [str(body)], None], "", "she walks in\nshe sits down", 3, None, None, None,
        "64x64", 5, True,
    )  # fmt: skip
    assert result.status.startswith("done."), result.status
    assert [Path(v).name for v in result.videos] == ["shot_01.mp4", "shot_02.mp4"]
    assert [Path(v).name for v in result.bare_videos] == ["shot_01.mp4", "shot_02.mp4"]
    for path in result.videos + result.bare_videos:
        assert read_mp4(path).shape == (5, 64, 64, 3)
        assert Path(path).is_relative_to(session.folder)
    settings = json.loads(Path(result.settings).read_text())["generation"]
    assert settings["lora"]["path"] == str(Path(tiny_model.lora).resolve())
    assert [r["region"] for r in settings["references"]] == ["face", "body"] and settings["seed"] == 3
    bare = json.loads((Path(result.bare_videos[0]).parent / "settings.json").read_text())["generation"]
    assert bare["references"] == [] and bare["shot_seeds"] == settings["shot_seeds"]
    # Same story, same seeds: with references the picture differs from without.
    assert (
        np.abs(read_mp4(result.videos[0]).astype(int) - read_mp4(result.bare_videos[0]).astype(int)).mean()
        > 1
    )
    session.close()
    assert not session.folder.exists()


def test_bad_page_input_gives_a_message_not_a_server_error(tiny_model, tmp_path):
    server = AppServer(tiny_model, root=tmp_path / "app")
    session = server.new_session()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    ok = _image(tmp_path / "ok.png")
    many = [str(_image(tmp_path / f"r{i}.png", seed=i)) for i in range(MAX_REFERENCES + 1)]
    cases = {
        "text file": ([[str(text)], None, None], "x", "notes.txt: not an image file"),
        "too many": ([None, many, None], "x", f"at most {MAX_REFERENCES}"),
        "empty story": ([[str(ok)], None, None], "  ", "story is empty"),
        "too many shots": ([[str(ok)], None, None], "a\nb\nc\nd\ne\nf", "at most 5"),
    }
    for name, (uploads, story, message) in cases.items():
        result = server.handle_generate(session, uploads, "", story, 0, None, None, None, None, None, False)
        assert result.status.startswith("error: ") and message in result.status, (name, result.status)
        assert result.videos == []
    bad_size = server.handle_generate(
        session, [[str(ok)], None, None], "", "x", 0, None, None, None, "50x50", 5, False
    )
    assert "nearest valid size: 64x64" in bad_size.status
    preview = server.handle_references(session, [[str(text)], None, None], "")
    assert preview.status == "error: notes.txt: not an image file"


def test_generation_requests_run_one_at_a_time(tiny_model, tmp_path, monkeypatch):
    server = AppServer(tiny_model, root=tmp_path / "app")
    pipe = tiny_model.pipeline
    running, overlaps = [0], []
    real_call = type(pipe).__call__

    def counting_call(self, *args, **kwargs):
        running[0] += 1
        overlaps.append(running[0])
        try:
            return real_call(self, *args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(type(pipe), "__call__", counting_call)
    results = []

    def one(seed):
        session = server.new_session()
        results.append(
            server.handle_generate(session, [None] * 3, "", "walk", seed, 1, None, None, None, None, False)
        )

    threads = [threading.Thread(target=one, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 3 and all(r.status.startswith("done.") for r in results)
    assert overlaps == [1, 1, 1]


def _status_code(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_page_in_chromium_generates_two_shots_and_survives_a_text_upload(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not (DEFAULT_MODEL_DIR / "model_index.json").is_file():
        pytest.skip("no shipped default model")
    loaded = load_model(None, None, "cpu")
    screenshot = os.environ.get("WILDACTOR_APP_SCREENSHOT")  # the README's picture: the model's own settings
    if not screenshot:
        loaded.defaults = {
            **loaded.defaults,
            "steps": 2,
        }  # the page offers the model's defaults: keep it quick
    frames = int(loaded.defaults["frames"])
    server = AppServer(loaded)
    url = server.launch("127.0.0.1", free_port())
    example = DEFAULT_MODEL_DIR / "example_actor"
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    try:
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                tempfile.mkdtemp(dir=tmp_path),  # a fresh --user-data-dir
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1280, "height": 1000},
            )
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            page.locator("#refs-face input[type=file]").set_input_files(str(example / "face_front.png"))
            page.locator("#refs-body input[type=file]").set_input_files(
                [str(example / "body_front.png"), str(example / "body_back.png")]
            )
            page.wait_for_function("document.querySelectorAll('#ref-preview img').length === 3")
            page.locator("#story textarea").fill("a person walks in the forest\na person jumps on the beach")
            page.locator("#compare input[type=checkbox]").check()
            page.locator("#generate").click()
            page.wait_for_selector("#bare-shot-2 video[src]", timeout=180_000)
            assert page.locator("#status").inner_text().startswith("done.")
            for slot in ("shot-1", "shot-2", "bare-shot-1", "bare-shot-2"):
                source = page.locator(f"#{slot} video").get_attribute("src")
                video = tmp_path / f"{slot}.mp4"
                video.write_bytes(page.request.get(source).body())
                assert read_mp4(video).shape[0] == frames, slot
            assert page.locator("#shot-3").is_hidden() and page.locator("#bare-shot-3").is_hidden()
            page.screenshot(path=tmp_path / "app.png", full_page=True)
            if screenshot:
                shutil.copy(tmp_path / "app.png", screenshot)

            # Nothing outside the app's own folders is served.
            base = url.rstrip("/")
            readme = Path(__file__).resolve().parents[1] / "README.md"
            for outside in (readme, Path("/etc/passwd")):
                assert _status_code(f"{base}/gradio_api/file={outside}") >= 400

            # A text file as a reference: a message on the page, and the server keeps serving.
            page.locator("#refs-three_view input[type=file]").set_input_files(str(text_file))
            page.wait_for_function(
                "document.querySelector('#status').innerText.includes('not an image file')", timeout=30_000
            )
            assert page.locator("#status").inner_text() == "error: notes.txt: not an image file"
            assert _status_code(url) == 200
            page.reload()
            page.wait_for_selector("#generate")
            context.close()

        # The closed tab ends the session: its folder goes (bounded wait for Gradio's disconnect handling).
        deadline = time.time() + 60
        while any(server.sessions.iterdir()) and time.time() < deadline:
            time.sleep(0.5)
        assert not any(server.sessions.iterdir())
    finally:
        server.close()
    assert not server.root.exists()


def test_an_actorworld_actor_id_renders_its_references_into_the_session(tiny_model, tmp_path):
    pytest.importorskip("wildactor.world")
    server = AppServer(tiny_model, root=tmp_path / "app")
    session = server.new_session()
    preview = server.handle_references(session, [None, None, None], "actor_000042")
    assert preview.status == "3 references"
    assert [caption.split(":")[0] for _, caption in preview.references] == ["face", "body", "body"]
    for path, _ in preview.references:
        assert Path(path).is_relative_to(session.folder) and Image.open(path).size == (64, 64)
    assert server.handle_references(session, [None, None, None], "42").status == "3 references"


def test_app_command_errors_are_one_line(tmp_path, capsys):
    from wildactor.cli import main

    assert main(["app", "--model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model folder not found") and err.count("\n") == 1
    assert main(["app", "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err


def test_the_app_command_serves_until_sigterm_and_removes_its_folder(tmp_path):
    import re
    import signal
    import subprocess
    import sys

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wildactor.cli", "app", "--port", str(port), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = []
        deadline = time.time() + 240
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("serving on"):
                break
        text = "".join(lines)
        assert f"serving on http://127.0.0.1:{port}" in text, text
        root = Path(re.search(r"uploads and outputs: (\S+)", text).group(1))
        assert root.is_dir() and _status_code(f"http://127.0.0.1:{port}/") == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not root.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
