"""`wildactor generate`: reference images + prompts -> one MP4 per prompt of the same actor.

Writes ``shot_01.mp4 ...`` (H.264), ``contact_sheet.png`` (references + sampled frames of every shot) and
``settings.json`` into the output folder. Re-running with the same settings keeps finished shots (each shot
has its own seed, seed + index), so an interrupted narrative resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError

# Settings of a real Wan2.2-TI2V-5B folder (its native 720p: 1280x704, 121 frames at 24 fps).
MODEL_DEFAULTS: dict[str, Any] = dict(steps=50, size=(1280, 704), frames=121, fps=24, guidance_scale=5.0)
REGIONS = ("face", "body", "three_view")
SETTINGS_FILE = "settings.json"
SHEET_FILE = "contact_sheet.png"
SHEET_FRAMES_PER_SHOT = 6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ref",
        action="append",
        default=[],
        metavar="PATH[:REGION]",
        help="reference image of the actor; REGION is face, body (default) or three_view; repeat for more",
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
        "--model", metavar="DIR", help="local diffusers folder (Wan2.2-TI2V-5B or a saved WildActorPipeline)"
    )
    parser.add_argument("--lora", metavar="FILE", help="reference LoRA (.safetensors) written by training")
    parser.add_argument("--steps", type=int, help="denoising steps (default: 50, or the embedded model's)")
    parser.add_argument("--seed", type=int, default=0, help="shot i uses seed + i (default 0)")
    parser.add_argument("--size", metavar="WxH", help="video size in pixels (default 1280x704 with --model)")
    parser.add_argument(
        "--ref-size", metavar="WxH", help="fit references into this size (default: the video size)"
    )
    parser.add_argument("--frames", type=int, help="frames per shot, 4k+1 (default 121 with --model)")
    parser.add_argument("--fps", type=int, help="frame rate of the MP4s (default 24 with --model)")
    parser.add_argument("--guidance-scale", type=float, help="text classifier-free guidance (default 5.0)")
    parser.add_argument(
        "--reference-guidance-scale",
        type=float,
        help="extra guidance towards the references (default: none, or the embedded model's)",
    )
    parser.add_argument("--negative-prompt", default="", help="negative prompt (default empty)")
    parser.add_argument(
        "--max-sequence-length", type=int, help="text length (default: the model's, 512 for Wan)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")


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
    import torch
    from tqdm.auto import tqdm

    from wildactor.media import contact_sheet, file_sha256, load_image, read_mp4, write_mp4
    from wildactor.pipeline import (
        Reference,
        WildActorPipeline,
        check_generation_inputs,
        check_model_folder,
        check_size,
        model_strides,
    )

    started = time.time()
    # 1. Everything that can be checked without a model.
    prompts = list(args.prompt)
    if not prompts and args.model is not None:
        raise WildActorError("no prompt given: pass --prompt TEXT at least once")
    for i, prompt in enumerate(prompts):
        if not prompt.strip():
            raise WildActorError(f"--prompt number {i + 1} is empty")
    references = []
    for text in args.ref:
        path, region = parse_ref(text)
        load_image(path)  # missing, unreadable or unsupported: fail now, before loading any model
        references.append(Reference(path, region))
    if args.lora is not None and not Path(args.lora).is_file():
        raise WildActorError(f"reference LoRA file not found: {args.lora}")
    if args.model is not None and not references:
        raise WildActorError("no references: pass --ref PATH[:face|body|three_view] at least once")
    size = parse_size(args.size) if args.size else None  # the format now; the model's strides below
    ref_size = parse_size(args.ref_size) if args.ref_size else None

    # 2. The model's strides and defaults (read from configs before loading weights).
    default = None
    if args.model is not None:
        check_model_folder(args.model)
        size_multiple, temporal = model_strides(args.model)
        defaults = dict(MODEL_DEFAULTS)
    else:
        from wildactor.default_model import load_default_model

        default = load_default_model()
        print(f"model: {default.description}")
        defaults = dict(default.defaults)
        size_multiple, temporal = default.pipeline.size_multiple, default.pipeline.vae_scale_factor_temporal
        if not references:
            references = list(default.example_references)
            print(f"references: the default model's example actor ({len(references)} images)")
        if not prompts:
            prompts = list(default.example_prompts)
            print(f"prompts: the default model's example narrative ({len(prompts)} shots)")
    width, height = size or tuple(defaults["size"])
    num_frames = args.frames if args.frames is not None else int(defaults["frames"])
    steps = args.steps if args.steps is not None else int(defaults["steps"])
    fps = args.fps if args.fps is not None else int(defaults["fps"])
    guidance = args.guidance_scale if args.guidance_scale is not None else float(defaults["guidance_scale"])
    ref_guidance = args.reference_guidance_scale
    if ref_guidance is None and defaults.get("reference_guidance_scale") is not None:
        ref_guidance = float(defaults["reference_guidance_scale"])
    if steps < 1:
        raise WildActorError(f"--steps must be >= 1, got {steps}")
    if fps < 1:
        raise WildActorError(f"--fps must be >= 1, got {fps}")
    if args.max_sequence_length is not None and args.max_sequence_length < 1:
        raise WildActorError(f"--max-sequence-length must be >= 1, got {args.max_sequence_length}")
    check_generation_inputs(prompts, height, width, num_frames, size_multiple, temporal)
    if ref_size is not None:
        check_size(*ref_size, size_multiple, what="--ref-size")

    # 3. The model.
    device = _pick_device(args.device, torch)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if default is None:
        pipe = WildActorPipeline.from_pretrained(args.model, lora=args.lora, torch_dtype=dtype, device=device)
        model_info = {"path": str(Path(args.model).resolve()), "description": "local model folder"}
        model_info["random_weights"] = False
    else:
        pipe = default.pipeline
        if args.lora is not None:
            pipe.transformer.load_reference_lora(args.lora)
        model_info = {"path": None, "description": default.description, "random_weights": default.is_random}
    pipe.to(device)
    text_length = args.max_sequence_length or int(pipe.config.max_sequence_length)
    pipe.set_progress_bar_config(desc="denoising", unit="step", leave=True)

    # 4. Settings, and which shots are already done (same settings = resume).
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    generation = {
        "model": model_info,
        "lora": None
        if args.lora is None
        else {"path": str(Path(args.lora).resolve()), "sha256": file_sha256(args.lora)},
        "references": [_describe_reference(r) for r in references],
        "prompts": prompts,
        "negative_prompt": args.negative_prompt,
        "steps": steps,
        "seed": args.seed,
        "shot_seeds": [args.seed + i for i in range(len(prompts))],
        "width": width,
        "height": height,
        "frames": num_frames,
        "fps": fps,
        "guidance_scale": guidance,
        "reference_guidance_scale": ref_guidance,
        "max_sequence_length": text_length,
        "reference_size": list(ref_size or (width, height)),
        "scheduler": {"class": type(pipe.scheduler).__name__, **_scheduler_shift(pipe.scheduler)},
    }
    videos = [out_dir / f"shot_{i + 1:02d}.mp4" for i in range(len(prompts))]
    previous = _read_settings(out_dir / SETTINGS_FILE)
    resumable = previous is not None and previous.get("generation") == generation
    todo = [i for i, v in enumerate(videos) if not (resumable and v.is_file())]
    if len(todo) < len(prompts):
        print(f"resuming: {len(prompts) - len(todo)} of {len(prompts)} shots already in {out_dir}")
    runtime = {
        "device": str(device),
        "transformer_dtype": str(pipe.transformer.dtype).replace("torch.", ""),
        "wildactor_version": _version(),
    }
    _write_json(out_dir / SETTINGS_FILE, {"status": "running", "generation": generation, "runtime": runtime})

    # 5. Generate the missing shots; each MP4 is written as soon as its shot is decoded.
    sheet_frames: dict[int, Any] = {}  # only the frames the contact sheet shows, not whole videos

    def save_shot(index: int, frames: Any) -> None:
        shot = todo[index]
        write_mp4(videos[shot], frames, fps=fps)
        sheet_frames[shot] = _sample_frames(frames, SHEET_FRAMES_PER_SHOT)
        tqdm.write(f"wrote {videos[shot]} ({frames.shape[0]} frames, {width}x{height})")  # bar-safe print

    reference_images = None
    if todo:
        result = pipe(
            prompts=[prompts[i] for i in todo],
            references=references,
            height=height,
            width=width,
            num_frames=num_frames,
            num_inference_steps=steps,
            guidance_scale=guidance,
            reference_guidance_scale=ref_guidance,
            reference_size=ref_size,
            negative_prompt=args.negative_prompt,
            seed=[args.seed + i for i in todo],
            max_sequence_length=text_length,
            on_shot_end=save_shot,
            keep_frames=False,
        )
        reference_images = result.reference_images
    if reference_images is None:
        ref_width, ref_height = ref_size or (width, height)
        reference_images, _ = pipe.prepare_references(references, ref_height, ref_width)
    for i, video in enumerate(videos):
        if i not in sheet_frames:  # kept from an earlier run
            sheet_frames[i] = _sample_frames(read_mp4(video), SHEET_FRAMES_PER_SHOT)

    # 6. Contact sheet and final settings.
    shots = [sheet_frames[i] for i in range(len(videos))]
    sheet = contact_sheet(reference_images, shots, frames_per_shot=SHEET_FRAMES_PER_SHOT)
    sheet.save(out_dir / SHEET_FILE)
    print(f"wrote {out_dir / SHEET_FILE}")
    outputs = {"videos": [v.name for v in videos], "contact_sheet": SHEET_FILE}
    runtime["elapsed_s"] = round(time.time() - started, 3)
    _write_json(
        out_dir / SETTINGS_FILE,
        {"status": "done", "generation": generation, "runtime": runtime, "outputs": outputs},
    )
    print(f"wrote {out_dir / SETTINGS_FILE}")
    return 0


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
