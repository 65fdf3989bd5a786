"""`wildactor app`: a Gradio page over `wildactor.generate.run_generation` (the same code as the CLI).

References come from uploads (face / body / three-view) or from an ActorWorld actor id (its references are
rendered); a story of 1-5 shots is generated with a progress bar and shown as playable videos, the contact sheet
and settings.json; "compare without references" renders the same story without them, side by side.

The page binds 127.0.0.1 by default and keeps everything in one temporary folder of its own: Gradio's upload cache
(GRADIO_TEMP_DIR) and one folder per browser session, deleted when the session ends; the whole folder is removed
when the server stops. Requests run one at a time (a queue).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError

MAX_SHOTS = 5
MAX_REFERENCES = 8
MAX_UPLOAD_BYTES = 10 * 2**20
MAX_UPLOAD_PIXELS = 4096 * 4096
VIDEO_HEIGHT = 240  # pixels on the page, whatever the video's size
UPLOAD_KINDS: tuple[tuple[str, str], ...] = (("face", "face"), ("body", "body"), ("three_view", "three-view"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="DIR",
        help="local diffusers folder (Wan2.2-TI2V-5B or a saved WildActorPipeline); default: the embedded model",
    )
    parser.add_argument("--lora", metavar="FILE", help="reference LoRA (.safetensors) written by training")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")


def main(args: argparse.Namespace) -> int:
    from wildactor.generate import load_model

    try:
        import gradio  # noqa: F401
    except ImportError:
        raise WildActorError(
            "wildactor app needs gradio: pip install 'wildactor[app]' (or gradio>=6)"
        ) from None
    if not 0 < args.port < 65536:
        raise WildActorError(f"--port must be in 1..65535, got {args.port}")
    loaded = load_model(args.model, args.lora, args.device)
    server = AppServer(loaded)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a plain kill still runs the cleanup below
    try:
        url = server.launch(args.host, args.port)
        print(f"model: {loaded.info['description']}")
        print(f"uploads and outputs: {server.root} (deleted when the server stops)")
        print(f"serving on {url} (Ctrl+C to stop)", flush=True)
        server.demo.block_thread()
    finally:
        server.close()
    return 0


# ------------------------------------------------------------------------------------------ input checks


def check_upload(path: str | os.PathLike[str]) -> None:
    """An uploaded reference must be an image file under the byte and pixel limits (`WildActorError` if not)."""
    from PIL import Image, UnidentifiedImageError

    from wildactor.media import load_image

    path = Path(path)
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise WildActorError(
            f"{path.name}: {size / 2**20:.1f} MB is over the {MAX_UPLOAD_BYTES // 2**20} MB limit"
        )
    try:
        with Image.open(path) as im:  # reads the header only: a huge image is refused before it is decoded
            width, height = im.size
    except (UnidentifiedImageError, OSError):
        raise WildActorError(f"{path.name}: not an image file") from None
    if width * height > MAX_UPLOAD_PIXELS:
        raise WildActorError(
            f"{path.name}: {width}x{height} pixels is over the {MAX_UPLOAD_PIXELS:,}-pixel limit"
        )
    try:
        load_image(path)
    except WildActorError as exc:
        raise WildActorError(f"{path.name}: {str(exc).split(': ', 1)[-1]}") from None


def parse_story(text: str | None) -> list[str]:
    """One shot per non-empty line; 1 to `MAX_SHOTS` shots."""
    prompts = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not prompts:
        raise WildActorError("the story is empty: write one prompt per line")
    if len(prompts) > MAX_SHOTS:
        raise WildActorError(f"{len(prompts)} shots: at most {MAX_SHOTS} (one prompt per line)")
    return prompts


def size_choices(default: tuple[int, int], multiple: int) -> list[str]:
    """Valid ``WxH`` sizes around the model's default (both orientations), default first."""
    from wildactor.pipeline import nearest_multiple

    width, height = default
    sizes = [(width, height)]
    for factor in (0.5, 0.75, 1.0, 1.5, 2.0):
        w, h = (
            nearest_multiple(round(width * factor), multiple),
            nearest_multiple(round(height * factor), multiple),
        )
        sizes += [(w, h), (h, w)]
    unique = list(dict.fromkeys(sizes))
    return [f"{w}x{h}" for w, h in unique[:1] + sorted(unique[1:], key=lambda s: (s[0] * s[1], s))]


def frame_choices(default: int, temporal: int) -> list[int]:
    """Valid frame counts (temporal * k + 1) up to twice the model's default."""
    top = max(default * 2, temporal + 1)
    return [temporal * k + 1 for k in range(top // temporal + 1) if temporal * k + 1 <= top]


def model_notice(loaded: Any) -> str:
    """What the page says about the model, in Markdown."""
    width, height = loaded.defaults["size"]
    if loaded.is_default:
        text = (
            f"**Model: the embedded default.** It is a {width}-px model of the "
            "synthetic ActorWorld: it was trained on rendered actors only, so it carries an actor's colours "
            "(hair, clothes, shoes) from the references into each shot and scene; faces are not resolved and "
            "real photos are outside what it has seen."
        )
        if loaded.info.get("random_weights"):
            text += " **Its weights are random** (no trained model ships in this install)."
    else:
        text = f"**Model:** {loaded.info['path']}" + (f", LoRA {loaded.lora}" if loaded.lora else "")
    vocab = _listed_vocabulary(loaded.pipeline.tokenizer)
    if vocab is not None:
        text += f"\n\nIt knows {len(vocab)} prompt words; others are dropped: {' '.join(vocab)}"
    return text


def _listed_vocabulary(tokenizer: Any) -> list[str] | None:
    from wildactor.generate import LISTED_VOCABULARY_MAX

    if getattr(tokenizer, "unk_token_id", None) is None or not getattr(tokenizer, "is_fast", False):
        return None  # byte-level tokenizers know every word
    vocab = tokenizer.get_vocab()
    if len(vocab) > LISTED_VOCABULARY_MAX:
        return None
    special = set(tokenizer.all_special_tokens)
    return sorted(w for w in vocab if w not in special and any(c.isalnum() for c in w))


# ------------------------------------------------------------------------------------------ sessions


class UploadRegistry:
    """Which sessions hold each uploaded file: Gradio stores identical uploads once, so a file is deleted only
    when the last session holding it ends."""

    def __init__(self) -> None:
        self._holders: dict[str, int] = {}
        self._lock = threading.Lock()

    def hold(self, path: str) -> None:
        with self._lock:
            self._holders[path] = self._holders.get(path, 0) + 1

    def release(self, path: str) -> None:
        with self._lock:
            left = self._holders.get(path, 1) - 1
            if left > 0:
                self._holders[path] = left
                return
            self._holders.pop(path, None)
            shutil.rmtree(Path(path).parent, ignore_errors=True)  # Gradio keeps each upload in its own folder


@dataclass
class Session:
    """One browser session's folder and uploads; `close` deletes both (when the tab closes)."""

    folder: Path
    registry: UploadRegistry
    uploads: set[str] = field(default_factory=set)
    runs: int = 0

    def add_upload(self, path: str) -> None:
        if path not in self.uploads:
            self.uploads.add(path)
            self.registry.hold(path)

    def close(self) -> None:
        for upload in self.uploads:
            self.registry.release(upload)
        self.uploads.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class PageResult:
    """What the page shows after a click: a status message and the files of each output slot."""

    status: str
    references: list[tuple[str, str]] = field(default_factory=list)  # (image path, caption)
    videos: list[str] = field(default_factory=list)
    bare_videos: list[str] = field(default_factory=list)
    contact_sheet: str | None = None
    bare_contact_sheet: str | None = None
    settings: str | None = None


class AppServer:
    """The Gradio app around one loaded model; `handle_generate` and `handle_references` are the page's logic."""

    def __init__(self, loaded: Any, root: str | os.PathLike[str] | None = None) -> None:
        self.loaded = loaded
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="wildactor-app-") if root is None else root).resolve()
        self.cache = self.root / "gradio"
        self.sessions = self.cache / "sessions"  # inside the cache: outputs are served without copies
        for folder in (self.cache, self.sessions):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one generation at a time, whatever the queue settings
        self.uploads = UploadRegistry()
        self._sessions: dict[str, Session] = {}
        self._sessions_lock = threading.Lock()
        self.demo = None
        self._previous_temp_dir: str | None = None

    # ---------------------------------------------------------------- page logic (no Gradio types)

    def new_session(self) -> Session:
        return Session(Path(tempfile.mkdtemp(prefix="session-", dir=self.sessions)), self.uploads)

    def session(self, key: str) -> Session:
        """The session of a browser tab (Gradio's session hash), made on first use."""
        with self._sessions_lock:
            if key not in self._sessions:
                self._sessions[key] = self.new_session()
            return self._sessions[key]

    def end_session(self, key: str) -> None:
        with self._sessions_lock:
            session = self._sessions.pop(key, None)
        if session is not None:
            session.close()

    def collect_references(
        self, session: Session, uploads: Sequence[Sequence[str] | None], actor_id: str | None
    ) -> list[Any]:
        """`Reference`s from the three upload lists (face, body, three-view) and an ActorWorld actor id."""
        from wildactor.pipeline import Reference

        references = []
        for (region, _), files in zip(UPLOAD_KINDS, uploads):
            for path in files or []:
                session.add_upload(str(path))
                check_upload(path)
                references.append(Reference(str(path), region))
        if actor_id and actor_id.strip():
            references += self._actor_references(session, actor_id.strip())
        if len(references) > MAX_REFERENCES:
            raise WildActorError(f"{len(references)} references: at most {MAX_REFERENCES}")
        return references

    def _actor_references(self, session: Session, actor_id: str) -> list[Any]:
        import json

        from wildactor.default_model import write_example_actor
        from wildactor.pipeline import Reference
        from wildactor.world import Actor

        text = actor_id.strip()
        key: int | str = int(text) if text.isdigit() else text
        try:
            name = Actor.from_id(key).actor_id
        except ValueError as exc:
            raise WildActorError(f"actor {text!r}: {exc}") from None
        folder = session.folder / f"actor-{uuid.uuid5(uuid.NAMESPACE_OID, str(name)).hex[:12]}"
        if not (folder / "references.json").is_file():
            write_example_actor(folder, key)
        entries = json.loads((folder / "references.json").read_text())["references"]
        return [Reference(str(folder / e["path"]), e["region"]) for e in entries]

    def handle_references(
        self, session: Session, uploads: Sequence[Sequence[str] | None], actor_id: str | None
    ) -> PageResult:
        """The reference preview: every reference with its region, or the reason one is refused."""
        try:
            refs = self.collect_references(session, uploads, actor_id)
        except WildActorError as exc:
            return PageResult(f"error: {exc}")
        shown = [(str(r.image), f"{r.region}: {Path(str(r.image)).name}") for r in refs]
        return PageResult(
            f"{len(refs)} reference{'s' * (len(refs) != 1)}" if refs else "no references", shown
        )

    def handle_story(self, story: str | None) -> str:
        """The prompt-word notice shown while the story is typed."""
        from wildactor.generate import unknown_prompt_words

        prompts = [line for line in (story or "").splitlines() if line.strip()]
        unknown = unknown_prompt_words(self.loaded.pipeline.tokenizer, prompts) if prompts else None
        return (
            "" if unknown is None else f"warning: unknown prompt words, dropped: {', '.join(unknown.words)}"
        )

    def handle_generate(
        self,
        session: Session,
        uploads: Sequence[Sequence[str] | None],
        actor_id: str | None,
        story: str | None,
        seed: float | None,
        steps: float | None,
        guidance: float | None,
        reference_guidance: float | None,
        size: str | None,
        frames: float | int | str | None,
        compare: bool,
        progress: Any = None,
    ) -> PageResult:
        """Check the page's inputs, run the story (and without references if ``compare``), list the files."""
        from wildactor.generate import GenerationRequest, parse_size, run_generation

        messages: list[str] = []
        try:
            references = self.collect_references(session, uploads, actor_id)
            prompts = parse_story(story)
            session.runs += 1
            run_dir = session.folder / f"run-{session.runs:03d}"
            request = GenerationRequest(
                output=run_dir / "with_references",
                prompts=tuple(prompts),
                references=tuple(references),
                seed=int(seed or 0),
                steps=None if steps is None else int(steps),
                size=parse_size(size) if size else None,
                frames=None if frames in (None, "") else int(frames),
                guidance_scale=guidance,
                reference_guidance_scale=reference_guidance,
                example_references=False,
            )

            def on_shot(done: int, total: int, path: Path) -> None:
                if progress is not None:
                    progress((done, total), desc=f"shot {done} of {total} written")

            with self._lock:
                result = run_generation(
                    request, self.loaded, log=messages.append, on_shot=on_shot, progress_bar=True
                )
                bare = None
                if compare:
                    bare_request = replace(request, output=run_dir / "without_references", references=())
                    bare = run_generation(bare_request, self.loaded, log=lambda _: None, on_shot=on_shot)
        except WildActorError as exc:
            return PageResult(f"error: {exc}")
        notes = [m for m in messages if m.startswith(("settings:", "references:"))]
        if result.unknown_words is not None:
            notes.append(f"warning: unknown prompt words, dropped: {', '.join(result.unknown_words.words)}")
        return PageResult(
            "done. " + "; ".join(notes),
            [(str(r.image), f"{r.region}") for r in references],
            [str(v) for v in result.videos],
            [] if bare is None else [str(v) for v in bare.videos],
            str(result.contact_sheet),
            None if bare is None else str(bare.contact_sheet),
            str(result.settings_file),
        )

    # ---------------------------------------------------------------- Gradio

    def build(self):
        """The Gradio Blocks of the page."""
        import gradio as gr

        loaded = self.loaded
        sizes = size_choices(tuple(loaded.defaults["size"]), loaded.size_multiple)
        frame_counts = frame_choices(int(loaded.defaults["frames"]), loaded.temporal_factor)
        ref_guidance = loaded.defaults.get("reference_guidance_scale")
        example_story = "\n".join(loaded.example_prompts[:MAX_SHOTS]) if loaded.is_default else ""

        with gr.Blocks(title="WildActor", analytics_enabled=False) as demo:
            gr.Markdown("# WildActor: one actor, consistent across shots")
            gr.Markdown(model_notice(loaded), elem_id="model-notice")
            with gr.Row():
                with gr.Column():
                    uploads = [
                        gr.File(label=f"{label} references", file_count="multiple", elem_id=f"refs-{region}")
                        for region, label in UPLOAD_KINDS
                    ]
                    actor = gr.Textbox(
                        label="or an ActorWorld actor (id such as actor_000042, or a number): its references are rendered",
                        elem_id="actor-id",
                    )
                    preview = gr.Gallery(label="references", columns=6, height=160, elem_id="ref-preview")
                with gr.Column():
                    story = gr.Textbox(
                        label=f"story: one shot prompt per line (1-{MAX_SHOTS})",
                        lines=MAX_SHOTS,
                        value=example_story,
                        elem_id="story",
                    )
                    words = gr.Markdown(elem_id="prompt-words")
                    with gr.Row():
                        seed = gr.Number(label="seed", value=0, precision=0, elem_id="seed")
                        steps = gr.Slider(
                            1, max(100, int(loaded.defaults["steps"])), value=int(loaded.defaults["steps"]),
                            step=1, label="steps", elem_id="steps",
                        )  # fmt: skip
                    with gr.Row():
                        guidance = gr.Number(
                            label="text guidance",
                            value=float(loaded.defaults["guidance_scale"]),
                            elem_id="guidance",
                        )
                        ref_guide = gr.Number(
                            label="reference guidance (empty: off)",
                            value=ref_guidance,
                            elem_id="ref-guidance",
                        )
                    with gr.Row():
                        size = gr.Dropdown(sizes, value=sizes[0], label="size (W x H)", elem_id="size")
                        frames = gr.Dropdown(
                            frame_counts,
                            value=int(loaded.defaults["frames"]),
                            label="frames",
                            elem_id="frames",
                        )
                    compare = gr.Checkbox(label="compare without references", value=False, elem_id="compare")
                    button = gr.Button("Generate", variant="primary", elem_id="generate")
            status = gr.Markdown(elem_id="status")
            with gr.Row():
                with gr.Column():
                    gr.Markdown("### with references")
                    videos = [
                        gr.Video(
                            label=f"shot {i + 1}", visible=False, height=VIDEO_HEIGHT, elem_id=f"shot-{i + 1}"
                        )
                        for i in range(MAX_SHOTS)
                    ]
                    sheet = gr.Image(label="contact sheet", type="filepath", visible=False, elem_id="sheet")
                with gr.Column():
                    gr.Markdown("### without references")
                    bare_videos = [
                        gr.Video(
                            label=f"shot {i + 1}",
                            visible=False,
                            height=VIDEO_HEIGHT,
                            elem_id=f"bare-shot-{i + 1}",
                        )
                        for i in range(MAX_SHOTS)
                    ]
                    bare_sheet = gr.Image(
                        label="contact sheet", type="filepath", visible=False, elem_id="bare-sheet"
                    )
            settings = gr.File(label="settings.json", visible=False, elem_id="settings")

            def on_references(face, body, view, actor_id, request: gr.Request):
                result = self.handle_references(
                    self.session(request.session_hash), [face, body, view], actor_id
                )
                return result.status, result.references

            def on_generate(face, body, view, actor_id, text, seed_, steps_, g, rg, size_, frames_, cmp,
                            request: gr.Request, progress=gr.Progress(track_tqdm=True)):  # noqa: B008  # fmt: skip
                session = self.session(request.session_hash)
                result = self.handle_generate(
                    session,
                    [face, body, view],
                    actor_id,
                    text,
                    seed_,
                    steps_,
                    g,
                    rg,
                    size_,
                    frames_,
                    cmp,
                    progress,
                )
                return (result.status, result.references or gr.update(), *_slots(result.videos),
                        *_slots(result.bare_videos), _file(result.contact_sheet), _file(result.bare_contact_sheet),
                        _file(result.settings))  # fmt: skip

            def on_unload(request: gr.Request) -> None:
                self.end_session(request.session_hash)

            # Gradio injects the request by the parameter's type; with postponed annotations it sees a string.
            for handler in (on_references, on_generate, on_unload):
                handler.__annotations__["request"] = gr.Request

            ref_inputs = [*uploads, actor]
            for component in uploads:
                component.change(on_references, ref_inputs, [status, preview], queue=False)
            actor.submit(on_references, ref_inputs, [status, preview])
            actor.blur(on_references, ref_inputs, [status, preview])
            story.change(self.handle_story, [story], [words], queue=False)
            button.click(
                on_generate,
                [*uploads, actor, story, seed, steps, guidance, ref_guide, size, frames, compare],
                [status, preview, *videos, *bare_videos, sheet, bare_sheet, settings],
                concurrency_limit=1,
            )
            demo.unload(on_unload)  # the tab closed: its uploads and outputs go at once
            demo.load(self.handle_story, [story], [words])
        self.demo = demo
        return demo

    def launch(self, host: str = "127.0.0.1", port: int = 7860) -> str:
        """Serve the page from a background thread; returns its URL. Gradio's upload cache is this server's own
        folder."""
        import gradio as gr

        self._previous_temp_dir = os.environ.get("GRADIO_TEMP_DIR")
        os.environ["GRADIO_TEMP_DIR"] = str(self.cache)  # read by Blocks (its cache) and the upload route
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        demo = self.build()
        demo.queue(default_concurrency_limit=1, max_size=16)
        theme = gr.themes.Default(
            font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
        )  # system fonts: the page fetches nothing from the internet
        try:
            demo.launch(
                server_name=host,
                server_port=port,
                prevent_thread_lock=True,
                max_file_size=MAX_UPLOAD_BYTES,
                show_error=False,
                quiet=True,
                ssr_mode=False,
                share=False,
                theme=theme,
            )
        except OSError as exc:
            raise WildActorError(f"cannot serve on {host}:{port}: {exc}") from None
        return str(demo.local_url)

    def close(self) -> None:
        """Stop serving and delete every file the server kept."""
        if self.demo is not None:
            self.demo.close()
        if self._previous_temp_dir is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = self._previous_temp_dir
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _slots(paths: Sequence[str]) -> list[Any]:
    """Fill the fixed video slots: one per shot, the rest hidden."""
    import gradio as gr

    return [gr.update(value=p, visible=True) if p else gr.update(value=None, visible=False)
            for p in list(paths) + [""] * (MAX_SHOTS - len(paths))]  # fmt: skip


def _file(path: str | None) -> Any:
    import gradio as gr

    return gr.update(value=path, visible=path is not None)
