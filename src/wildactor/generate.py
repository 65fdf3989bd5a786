"""`wildactor generate`: reference images + prompts -> one MP4 per prompt of the same actor.

Writes ``shot_01.mp4 ...`` (H.264), ``contact_sheet.png`` (references + sampled frames of every shot) and
``settings.json`` into the output folder. Re-running with the same settings keeps finished shots (each shot
has its own seed, seed + index), so an interrupted narrative resumes where it stopped.

`run_generation(request)` is the whole command; the CLI (`main`) and the web app (`wildactor.app`) both call it.
Every check that needs no weights (sizes, frame counts, memory, the output folder, the references) runs before a
model is loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError

# Settings of a real Wan2.2-TI2V-5B folder (its native 720p: 1280x704, 121 frames at 24 fps); a model folder's
# own generate_defaults.json (the shipped default model has one) overrides them.
MODEL_DEFAULTS: dict[str, Any] = dict(steps=50, size=(1280, 704), frames=121, fps=24, guidance_scale=5.0)
DEFAULTS_FILE = "generate_defaults.json"
REGIONS = ("face", "body", "three_view")
SETTINGS_FILE = "settings.json"
SHEET_FILE = "contact_sheet.png"
SHEET_FRAMES_PER_SHOT = 6
# A vocabulary this small is listed in full when a prompt word is not in it (word-level tokenizers).
LISTED_VOCABULARY_MAX = 1000
# Bytes per pixel of a decoded shot held at once: float32 RGB from the VAE plus the uint8 copy written out.
_DECODED_BYTES_PER_PIXEL = 3 * 4 + 3


@dataclass(frozen=True)
class GenerationRequest:
    """One `wildactor generate` call. None means: the model's default (its generate_defaults.json, else Wan's).

    references: `wildactor.pipeline.Reference` objects; with the embedded default model and none given, its
    example actor is used unless ``example_references`` is False (then the story is rendered without references).
    prompts: one shot each; the embedded default model has an example story when none are given.
    """

    output: str | os.PathLike[str]
    prompts: tuple[str, ...] = ()
    references: tuple[Any, ...] = ()
    model: str | os.PathLike[str] | None = None
    lora: str | os.PathLike[str] | None = None
    steps: int | None = None
    seed: int = 0
    size: tuple[int, int] | None = None  # (width, height)
    ref_size: tuple[int, int] | None = None  # (width, height)
    frames: int | None = None
    fps: int | None = None
    guidance_scale: float | None = None
    reference_guidance_scale: float | None = None
    negative_prompt: str | None = (
        None  # None: the model's own (Wan's default for a stock Wan folder, "" for ours)
    )
    max_sequence_length: int | None = None
    device: str = "auto"
    example_references: bool = True
    image: str | os.PathLike[str] | None = None  # first frame of shot 1 (image-to-video)
    chain: bool = False  # each next shot starts from the previous shot's last frame
    reference_fit: str | None = None  # "pad" | "stretch"; default the model's
    offload: str = "none"  # "none" | "model" | "sequential" | "group"
    vae_tiling: bool = False
    weights: str | None = None  # "int8" | "fp8" transformer weights (optimum-quanto)


@dataclass
class LoadedModel:
    """A pipeline ready to generate, with what `run_generation` needs to know about it (the app keeps one)."""

    pipeline: Any
    info: dict[str, Any]  # path, description, random_weights: recorded in settings.json
    defaults: dict[str, Any]
    lora: str | None = None
    is_default: bool = False
    example_references: list[Any] = field(default_factory=list)
    example_prompts: list[str] = field(default_factory=list)

    @property
    def size_multiple(self) -> int:
        return int(self.pipeline.size_multiple)

    @property
    def temporal_factor(self) -> int:
        return int(self.pipeline.vae_scale_factor_temporal)


@dataclass(frozen=True)
class UnknownWords:
    """Prompt words the tokenizer maps to its unknown token (the model never sees them)."""

    words: tuple[str, ...]
    known: tuple[str, ...] | None  # the whole vocabulary when it is small enough to list, else None

    def message(self) -> str:
        text = f"the model does not know these prompt words, they are dropped: {', '.join(self.words)}"
        if self.known is not None:
            text += f". Words it knows ({len(self.known)}): {' '.join(self.known)}"
        return text


@dataclass
class GenerationResult:
    """What one run wrote, and the settings it used."""

    output_dir: Path
    videos: list[Path]
    contact_sheet: Path
    settings_file: Path
    generation: dict[str, Any]
    resumed_shots: int = 0
    unknown_words: UnknownWords | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ref",
        action="append",
        default=[],
        metavar="PATH[:REGION]",
        help="reference image of the actor; REGION is face, body (default) or three_view; repeat for more. "
        "None: the default model's example actor; with --model, text-to-video without references",
    )
    parser.add_argument(
        "--no-example-refs",
        action="store_true",
        help="with the default model and no --ref: generate without references instead of the example actor",
    )
    parser.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="TEXT",
        help="one shot per prompt, in story order (required with --model; the default model has examples)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for videos + sheet")
    parser.add_argument(
        "--model",
        metavar="DIR",
        help="local diffusers folder (Wan2.2-TI2V-5B or a saved WildActorPipeline); default: the embedded model",
    )
    parser.add_argument("--lora", metavar="FILE", help="reference LoRA (.safetensors) written by training")
    model_default = "the model folder's generate_defaults.json, else"
    embedded = _embedded_defaults()
    parser.add_argument("--steps", type=int, help=f"denoising steps (default: {model_default} 50)")
    parser.add_argument("--seed", type=int, default=0, help="shot i uses seed + i (default 0)")
    parser.add_argument(
        "--size",
        metavar="WxH",
        help=f"video size in pixels, multiples of 32 for Wan2.2 (default: {model_default} 1280x704)",
    )
    parser.add_argument(
        "--ref-size", metavar="WxH", help="fit references into this size (default: the video size)"
    )
    parser.add_argument(
        "--frames",
        type=int,
        help="frames per shot: T*k+1 for the VAE's temporal factor T (4k+1 for Wan2.2; any count >= 1 for the "
        f"embedded default, T = 1) (default: {model_default} 121)",
    )
    parser.add_argument("--fps", type=int, help=f"frame rate of the MP4s (default: {model_default} 24)")
    parser.add_argument(
        "--guidance-scale",
        type=float,
        help=f"text classifier-free guidance (default: {model_default} 5.0; the embedded model uses "
        f"{embedded.get('guidance_scale', 'its own')})",
    )
    parser.add_argument(
        "--reference-guidance-scale",
        type=float,
        help="extra guidance towards the references, a third branch without them (default: the model folder's "
        f"generate_defaults.json, else none; the embedded model uses {embedded.get('reference_guidance_scale')})",
    )
    parser.add_argument(
        "--negative-prompt",
        help="negative prompt (default: the model's own: Wan's default for a stock Wan2.2 folder, empty for "
        "WildActor folders and the embedded model, which were trained with it empty)",
    )
    parser.add_argument(
        "--max-sequence-length", type=int, help="text length (default: the model's, 512 for Wan)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    parser.add_argument(
        "--image",
        metavar="PATH",
        help="first frame of the first shot (image-to-video, Wan2.2 TI2V: its latent frame is kept clean)",
    )
    parser.add_argument(
        "--chain",
        action="store_true",
        help="start each next shot from the previous shot's last frame (the 'T2V -> I2V' narrative)",
    )
    parser.add_argument(
        "--reference-fit",
        choices=("pad", "stretch"),
        help="fit references into the frame with white padding or by stretching (default: the model's, as trained)",
    )
    parser.add_argument(
        "--offload",
        choices=("none", "model", "sequential", "group"),
        default="none",
        help="low VRAM: diffusers' model / sequential / group offloading (default none)",
    )
    parser.add_argument(
        "--vae-tiling", action="store_true", help="low VRAM: decode (and encode) in VAE tiles"
    )
    parser.add_argument(
        "--weights",
        choices=("int8", "fp8"),
        help="low VRAM: 8-bit transformer weights through optimum-quanto (the reference LoRA stays as it is)",
    )


def _embedded_defaults() -> dict[str, Any]:
    """The shipped default model's generate_defaults.json (empty if it is absent), for the help texts."""
    from wildactor.default_model import DEFAULT_MODEL_DIR

    path = DEFAULT_MODEL_DIR / DEFAULTS_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def parse_ref(text: str) -> tuple[str, str]:
    """``PATH`` or ``PATH:REGION`` -> (path, region). A suffix after the last ':' is a region unless it is
    part of a path (contains a separator or a dot)."""
    path, sep, region = text.rpartition(":")
    if not sep or "/" in region or "\\" in region or "." in region or not path:
        return text, "body"
    if region not in REGIONS:
        raise WildActorError(f"--ref {text}: unknown region {region!r} (use face, body or three_view)")
    return path, region


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise WildActorError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x704")
    return int(match.group(1)), int(match.group(2))


def main(args: argparse.Namespace) -> int:
    """Parse the command line into a `GenerationRequest` and run it."""
    from wildactor.pipeline import Reference

    references = []
    for text in args.ref:
        path, region = parse_ref(text)
        references.append(Reference(path, region))
    request = GenerationRequest(
        output=args.output,
        prompts=tuple(args.prompt),
        references=tuple(references),
        model=args.model,
        lora=args.lora,
        steps=args.steps,
        seed=args.seed,
        size=parse_size(args.size) if args.size else None,
        ref_size=parse_size(args.ref_size) if args.ref_size else None,
        frames=args.frames,
        fps=args.fps,
        guidance_scale=args.guidance_scale,
        reference_guidance_scale=args.reference_guidance_scale,
        negative_prompt=args.negative_prompt,
        max_sequence_length=args.max_sequence_length,
        device=args.device,
        example_references=not args.no_example_refs,
        image=args.image,
        chain=args.chain,
        reference_fit=args.reference_fit,
        offload=args.offload,
        vae_tiling=args.vae_tiling,
        weights=args.weights,
    )
    run_generation(request)
    return 0


# ------------------------------------------------------------------------------------------ checks


def folder_defaults(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Generation defaults of a model folder: Wan's, updated by its ``generate_defaults.json`` if it has one."""
    defaults = dict(MODEL_DEFAULTS)
    path = Path(model_dir) / DEFAULTS_FILE
    if path.is_file():
        try:
            defaults.update(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise WildActorError(f"{path}: not a readable JSON file ({exc})") from None
    defaults["size"] = tuple(int(v) for v in defaults["size"])
    return defaults


def check_output_folder(path: str | os.PathLike[str], create: bool = True) -> Path:
    """Create the output folder (and parents) and prove it writable; one-line `WildActorError` otherwise.
    With ``create=False`` nothing is made: an absent folder must have a writable nearest existing parent (so a
    run refused later, e.g. for its size, leaves no empty folder behind)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise WildActorError(f"output {out} exists and is not a folder")
    if not create and not out.exists():
        parent = out.absolute().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise WildActorError(
                f"cannot write to the output folder {out}: {parent} is not a writable folder"
            )
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise WildActorError(f"cannot write to the output folder {out}: {exc.strerror or exc}") from None
    return out


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(width: int, height: int, frames: int, available: int | None = None) -> None:
    """Refuse a shot whose decoded frames alone (a lower bound of what generation needs) exceed free memory."""
    available = available_memory() if available is None else available
    need = width * height * frames * _DECODED_BYTES_PER_PIXEL
    if available is not None and need > available:
        raise WildActorError(
            f"size {width}x{height} with {frames} frames needs at least {need / 2**30:.1f} GiB for the decoded "
            f"frames alone; {available / 2**30:.1f} GiB of memory is available: choose a smaller --size or --frames"
        )


def unknown_prompt_words(tokenizer: Any, prompts: Sequence[str]) -> UnknownWords | None:
    """Words of ``prompts`` that ``tokenizer`` turns into its unknown token, or None if there are none.

    A word-level tokenizer (the embedded default's, 60 words) drops every word it was not fitted on; byte and
    sentencepiece tokenizers (ByT5, Wan's UMT5) rarely have any.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return None
    found: list[str] = []
    for prompt in prompts:
        if getattr(tokenizer, "is_fast", False):
            enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
            words = [prompt[a:b] for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]) if i == unk]
        else:
            words = [w for w in prompt.split() if unk in tokenizer(w, add_special_tokens=False)["input_ids"]]
        for word in words:  # dropped punctuation changes nothing worth a warning
            if any(c.isalnum() for c in word) and word.lower() not in (w.lower() for w in found):
                found.append(word)
    if not found:
        return None
    vocab = tokenizer.get_vocab()
    known = None
    if len(vocab) <= LISTED_VOCABULARY_MAX:
        special = set(tokenizer.all_special_tokens)
        known = tuple(sorted(w for w in vocab if w not in special and any(c.isalnum() for c in w)))
    return UnknownWords(tuple(found), known)


@dataclass(frozen=True)
class _Settings:
    width: int
    height: int
    frames: int
    steps: int
    fps: int
    guidance: float
    ref_guidance: float | None


def resolve_settings(
    request: GenerationRequest,
    defaults: dict[str, Any],
    size_multiple: int,
    temporal: int,
    prompts: Sequence[str],
) -> _Settings:
    """The request's settings with the model's defaults filled in, checked without loading weights."""
    from wildactor.pipeline import check_generation_inputs, check_size

    width, height = request.size or tuple(defaults["size"])
    frames = request.frames if request.frames is not None else int(defaults["frames"])
    steps = request.steps if request.steps is not None else int(defaults["steps"])
    fps = request.fps if request.fps is not None else int(defaults["fps"])
    guidance = (
        request.guidance_scale if request.guidance_scale is not None else float(defaults["guidance_scale"])
    )
    ref_guidance = request.reference_guidance_scale
    if ref_guidance is None and defaults.get("reference_guidance_scale") is not None:
        ref_guidance = float(defaults["reference_guidance_scale"])
    if steps < 1:
        raise WildActorError(f"--steps must be >= 1, got {steps}")
    if fps < 1:
        raise WildActorError(f"--fps must be >= 1, got {fps}")
    if request.max_sequence_length is not None and request.max_sequence_length < 1:
        raise WildActorError(f"--max-sequence-length must be >= 1, got {request.max_sequence_length}")
    check_generation_inputs(prompts, height, width, frames, size_multiple, temporal)
    if request.ref_size is not None:
        check_size(*request.ref_size, size_multiple, what="--ref-size")
    check_memory(width, height, frames)
    return _Settings(width, height, frames, steps, fps, guidance, ref_guidance)


# ------------------------------------------------------------------------------------------ models


def load_model(
    model: str | os.PathLike[str] | None,
    lora: str | os.PathLike[str] | None = None,
    device: str = "auto",
    offload: str = "none",
    vae_tiling: bool = False,
    weights: str | None = None,
) -> LoadedModel:
    """The pipeline of a local folder (``model``) or the embedded default (None), with ``lora`` loaded and the
    low-VRAM options applied (8-bit ``weights``, then ``offload``, then ``vae_tiling``)."""
    import torch

    from wildactor.pipeline import WildActorPipeline, load_any_reference_lora

    if lora is not None and not Path(lora).is_file():
        raise WildActorError(f"reference LoRA file not found: {lora}")
    torch_device = _pick_device(device, torch)
    dtype = torch.bfloat16 if torch_device.type == "cuda" else torch.float32
    with quiet_weight_loading():
        if model is None:
            from wildactor.default_model import load_default_model

            default = load_default_model()
            pipe = default.pipeline
            if lora is not None:
                load_any_reference_lora(pipe.transformer, lora)  # WildActor, official or Stand-In layout
            info = {"path": None, "description": default.description, "random_weights": default.is_random}
            loaded = LoadedModel(
                pipe,
                info,
                dict(default.defaults),
                None if lora is None else str(lora),
                True,
                list(default.example_references),
                list(default.example_prompts),
            )
        else:
            pipe = WildActorPipeline.from_pretrained(model, lora=lora, torch_dtype=dtype, device=torch_device)
            info = {"path": str(Path(model).resolve()), "description": "local model folder"}
            info["random_weights"] = False
            loaded = LoadedModel(pipe, info, folder_defaults(model), None if lora is None else str(lora))
    try:
        if weights is not None:
            pipe.quantize_transformer(weights)
        if vae_tiling:
            pipe.enable_vae_tiling()
    except ValueError as exc:
        raise WildActorError(str(exc)) from None
    if offload == "none":
        pipe.to(torch_device)
    else:
        pipe.enable_offload(offload, device=torch_device)
    return loaded


@contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """Silence transformers' per-load "Loading weights" progress bar inside the block (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


# ------------------------------------------------------------------------------------------ the command


def run_generation(
    request: GenerationRequest,
    loaded: LoadedModel | None = None,
    log: Callable[[str], None] = print,
    on_shot: Callable[[int, int, Path], None] | None = None,
    progress_bar: bool = True,
) -> GenerationResult:
    """Check ``request``, load the model (unless ``loaded`` is given), generate the missing shots, write the
    MP4s, the contact sheet and settings.json. ``on_shot(done, total, path)`` follows each written shot.
    Raises `WildActorError` for every user mistake, before any model is loaded where it can be found without one.
    """
    from wildactor.media import load_image
    from wildactor.pipeline import check_model_folder, model_strides

    started = time.time()
    prompts = list(request.prompts)
    for i, prompt in enumerate(prompts):
        if not prompt.strip():
            raise WildActorError(f"--prompt number {i + 1} is empty")
    references = list(request.references)
    for ref in references:
        if isinstance(ref.image, (str, os.PathLike)):
            load_image(ref.image)  # missing, unreadable or unsupported: fail now, before loading any model
    if request.image is not None:
        load_image(request.image)
    if request.chain and len(prompts) == 1:
        raise WildActorError(
            "--chain needs at least two prompts (each next shot starts from the previous one)"
        )
    if request.lora is not None and not Path(request.lora).is_file():
        raise WildActorError(f"reference LoRA file not found: {request.lora}")
    check_output_folder(request.output, create=False)  # made once the request passed every check
    is_default = request.model is None if loaded is None else loaded.is_default
    if not prompts and not is_default:
        raise WildActorError("no prompt given: pass --prompt TEXT at least once")

    # The model's strides and defaults: from a folder's configs before its weights load; the embedded default
    # is small and loads first.
    if loaded is None and request.model is not None:
        check_model_folder(request.model)
        size_multiple, temporal = model_strides(request.model)
        defaults = folder_defaults(request.model)
        tokenizer = _load_tokenizer(request.model)
    else:
        if loaded is None:
            loaded = load_model(None, request.lora, request.device, *_low_vram(request))
            log(f"model: {loaded.info['description']}")
        size_multiple, temporal = loaded.size_multiple, loaded.temporal_factor
        defaults, tokenizer = loaded.defaults, loaded.pipeline.tokenizer
        if not references and loaded.is_default and request.example_references:
            references = list(loaded.example_references)
            log(f"references: the default model's example actor ({len(references)} images)")
        if not prompts and loaded.is_default:
            prompts = list(loaded.example_prompts)
            log(f"prompts: the default model's example narrative ({len(prompts)} shots)")
    settings = resolve_settings(request, defaults, size_multiple, temporal, prompts)
    out_dir = check_output_folder(request.output)
    unknown = unknown_prompt_words(tokenizer, prompts) if tokenizer is not None else None
    if unknown is not None:
        log(f"warning: {unknown.message()}")
    if not references:
        log("references: none (text-to-video, the base model)")
    log(
        f"settings: {settings.width}x{settings.height}, {settings.frames} frames at {settings.fps} fps, "
        f"{settings.steps} steps, guidance {settings.guidance:g}"
        + (f", reference guidance {settings.ref_guidance:g}" if settings.ref_guidance is not None else "")
        + f", {len(prompts)} shot{'s' * (len(prompts) != 1)}"
    )
    if loaded is None:
        loaded = load_model(request.model, request.lora, request.device, *_low_vram(request))
    return _generate(
        request, loaded, prompts, references, settings, out_dir, started, unknown, log, on_shot, progress_bar
    )


def _low_vram(request: GenerationRequest) -> tuple[str, bool, str | None]:
    return request.offload, request.vae_tiling, request.weights


def _load_tokenizer(model_dir: str | os.PathLike[str]) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(Path(model_dir) / "tokenizer")
    except (OSError, ValueError) as exc:
        raise WildActorError(f"cannot load the tokenizer of {model_dir}: {exc}") from None


def _generate(
    request: GenerationRequest,
    loaded: LoadedModel,
    prompts: list[str],
    references: list[Any],
    s: _Settings,
    out_dir: Path,
    started: float,
    unknown: UnknownWords | None,
    log: Callable[[str], None],
    on_shot: Callable[[int, int, Path], None] | None,
    progress_bar: bool,
) -> GenerationResult:
    from wildactor.media import contact_sheet, file_sha256, read_mp4, write_mp4

    pipe = loaded.pipeline
    if request.lora is not None and str(request.lora) != loaded.lora:
        raise WildActorError(f"the loaded model carries LoRA {loaded.lora}, not {request.lora}")
    text_length = request.max_sequence_length or int(pipe.config.max_sequence_length)
    pipe.set_progress_bar_config(desc="denoising", unit="step", leave=True, disable=not progress_bar)

    # Settings, and which shots are already done (same settings = resume).
    generation = {
        "model": loaded.info,
        "lora": None
        if loaded.lora is None
        else {"path": str(Path(loaded.lora).resolve()), "sha256": file_sha256(loaded.lora)},
        "references": [_describe_reference(r) for r in references],
        "prompts": prompts,
        "negative_prompt": pipe.config.negative_prompt
        if request.negative_prompt is None
        else request.negative_prompt,
        "steps": s.steps,
        "seed": request.seed,
        "shot_seeds": [request.seed + i for i in range(len(prompts))],
        "width": s.width,
        "height": s.height,
        "frames": s.frames,
        "fps": s.fps,
        "guidance_scale": s.guidance,
        "reference_guidance_scale": s.ref_guidance,
        "max_sequence_length": text_length,
        "reference_size": list(request.ref_size or (s.width, s.height)),
        "reference_fit": request.reference_fit or pipe.config.reference_fit,
        "image": None
        if request.image is None
        else {"path": str(Path(request.image).resolve()), "sha256": file_sha256(request.image)},
        "chain": request.chain,
        "weights": request.weights,
        "vae_tiling": request.vae_tiling,
        "scheduler": {"class": type(pipe.scheduler).__name__, **_scheduler_shift(pipe.scheduler)},
    }
    if unknown is not None:
        generation["dropped_prompt_words"] = list(unknown.words)
    videos = [out_dir / f"shot_{i + 1:02d}.mp4" for i in range(len(prompts))]
    previous = _read_settings(out_dir / SETTINGS_FILE)
    resumable = previous is not None and previous.get("generation") == generation
    todo = [i for i, v in enumerate(videos) if not (resumable and v.is_file())]
    if len(todo) < len(prompts):
        log(f"resuming: {len(prompts) - len(todo)} of {len(prompts)} shots already in {out_dir}")
    runtime = {
        "device": str(pipe._execution_device),
        "transformer_dtype": str(pipe.transformer.dtype).replace("torch.", ""),
        "wildactor_version": _version(),
        "offload": request.offload,
    }
    _write_json(out_dir / SETTINGS_FILE, {"status": "running", "generation": generation, "runtime": runtime})

    # Generate the missing shots; each MP4 is written as soon as its shot is decoded.
    sheet_frames: dict[int, Any] = {}  # only the frames the contact sheet shows, not whole videos

    def save_shot(index: int, frames: Any) -> None:
        shot = todo[index]
        write_mp4(videos[shot], frames, fps=s.fps)
        sheet_frames[shot] = _sample_frames(frames, SHEET_FRAMES_PER_SHOT)
        _bar_safe(log, f"wrote {videos[shot]} ({frames.shape[0]} frames, {s.width}x{s.height})")
        if on_shot is not None:
            on_shot(len(prompts) - len(todo) + index + 1, len(prompts), videos[shot])

    reference_images = None
    if todo:
        result = pipe(
            prompts=[prompts[i] for i in todo],
            references=references,
            height=s.height,
            width=s.width,
            num_frames=s.frames,
            num_inference_steps=s.steps,
            guidance_scale=s.guidance,
            reference_guidance_scale=s.ref_guidance,
            reference_size=request.ref_size,
            negative_prompt=request.negative_prompt,
            seed=[request.seed + i for i in todo],
            max_sequence_length=text_length,
            on_shot_end=save_shot,
            keep_frames=False,
            image=_shot_images(request, todo),
            chain=request.chain,
            reference_fit=request.reference_fit,
        )
        reference_images = result.reference_images
    if reference_images is None:
        reference_images = []
        if references:
            ref_width, ref_height = request.ref_size or (s.width, s.height)
            reference_images, _ = pipe.prepare_references(references, ref_height, ref_width)
    for i, video in enumerate(videos):
        if i not in sheet_frames:  # kept from an earlier run
            sheet_frames[i] = _sample_frames(read_mp4(video), SHEET_FRAMES_PER_SHOT)

    # Contact sheet and final settings.
    shots = [sheet_frames[i] for i in range(len(videos))]
    sheet = contact_sheet(reference_images, shots, frames_per_shot=SHEET_FRAMES_PER_SHOT)
    sheet.save(out_dir / SHEET_FILE)
    log(f"wrote {out_dir / SHEET_FILE}")
    outputs = {"videos": [v.name for v in videos], "contact_sheet": SHEET_FILE}
    runtime["elapsed_s"] = round(time.time() - started, 3)
    _write_json(
        out_dir / SETTINGS_FILE,
        {"status": "done", "generation": generation, "runtime": runtime, "outputs": outputs},
    )
    log(f"wrote {out_dir / SETTINGS_FILE}")
    return GenerationResult(
        out_dir,
        videos,
        out_dir / SHEET_FILE,
        out_dir / SETTINGS_FILE,
        generation,
        len(prompts) - len(todo),
        unknown,
    )


def _shot_images(request: GenerationRequest, todo: list[int]) -> list[Any] | None:
    """The first-frame image of each shot still to render: --image for shot 1; with --chain a resumed shot k > 1
    starts from the last frame of shot k - 1 as written (its MP4)."""
    if request.image is None and not request.chain:
        return None
    from wildactor.media import read_mp4
    from wildactor.pipeline import last_frame

    images: list[Any] = []
    for k, shot in enumerate(todo):
        if shot == 0:
            images.append(request.image)
        elif request.chain and (k == 0 or todo[k - 1] != shot - 1):  # the previous shot is not in this call
            previous = Path(request.output) / f"shot_{shot:02d}.mp4"
            images.append(last_frame(read_mp4(previous)))
        else:
            images.append(None)  # None + chain: the pipeline takes the previous shot's last decoded frame
    return images


def _bar_safe(log: Callable[[str], None], text: str) -> None:
    """Print below a running tqdm bar when logging to the terminal; otherwise hand the line to ``log``."""
    if log is print:
        from tqdm.auto import tqdm

        tqdm.write(text)
    else:
        log(text)


def _sample_frames(frames: Any, count: int) -> Any:
    """``count`` evenly spaced frames of an (F, H, W, 3) array (all of them if F <= count)."""
    import numpy as np

    picks = np.linspace(0, frames.shape[0] - 1, min(count, frames.shape[0])).round().astype(int)
    return np.ascontiguousarray(frames[picks])


def _pick_device(choice: str, torch: Any):
    if choice == "cuda" and not torch.cuda.is_available():
        raise WildActorError("--device cuda: no CUDA device is available")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def _describe_reference(ref: Any) -> dict[str, Any]:
    from wildactor.media import file_sha256

    if isinstance(ref.image, (str, os.PathLike)):
        return {
            "path": str(Path(ref.image).resolve()),
            "region": ref.region,
            "sha256": file_sha256(ref.image),
        }
    return {"path": None, "image": "in-memory example image", "region": ref.region}


def _scheduler_shift(scheduler: Any) -> dict[str, Any]:
    cfg = scheduler.config
    if "flow_shift" in cfg:
        return {"flow_shift": float(cfg["flow_shift"])}
    if "shift" in cfg:
        return {"shift": float(cfg["shift"])}
    return {}


def _read_settings(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # an unreadable old settings file only means no resume


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _version() -> str:
    from wildactor import __version__

    return __version__
