"""The model `wildactor generate` uses when no --model is given, and the tiny random components behind it.

If ``src/wildactor/assets/default_model/`` exists it is loaded as a folder written by
`WildActorPipeline.save_pretrained` (the small ActorWorld-trained model shipped with the package). Its example
actor lives in ``default_model/example_actor/references.json`` (``{"references": [{"path": "face.png",
"region": "face"}, ...], "prompts": ["...", ...]}``, paths relative to that file; the prompts, a short
narrative, are used when the user gives none) and its preferred settings, if any, in
``default_model/generate_defaults.json`` (keys: steps, size, frames, fps, guidance_scale, and optionally
reference_guidance_scale).

The package ships that folder (`configs/actorworld-tiny-v1.yaml` trained for 7,500 steps, EMA weights; README). Where
it is absent (an install that strips package data), the default falls back to a TINY RANDOM model: untrained
weights, useful only to exercise the command path, and labelled as such in everything it writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "default_model"
TINY_RANDOM_LABEL = "tiny random model (untrained weights: tests the command path, does not make real videos)"

# Architecture of the tiny random model (the test-suite's tiny Wan transformer + a tiny Wan2.2-style VAE).
TINY_TRANSFORMER_CONFIG: dict[str, Any] = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=4,
    out_channels=4,
    text_dim=16,
    freq_dim=16,
    ffn_dim=32,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
    lora_rank=4,
)
# Wan2.2's VAE layout (residual, patch 2 -> 16x spatial, 4x temporal) at toy width, with z_dim 4.
TINY_VAE_CONFIG: dict[str, Any] = dict(
    base_dim=8,
    z_dim=4,
    dim_mult=[1, 1, 1, 1],
    num_res_blocks=1,
    temperal_downsample=[False, True, True],
    latents_mean=[0.1, -0.2, 0.3, 0.0],
    latents_std=[1.5, 0.8, 1.2, 1.0],
    is_residual=True,
    patch_size=2,
    in_channels=12,
    out_channels=12,
    scale_factor_spatial=16,
    scale_factor_temporal=4,
)
TINY_TEXT_ENCODER_CONFIG: dict[str, Any] = dict(
    vocab_size=384, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2, relative_attention_num_buckets=8
)
# A three-shot narrative for the example actor, used when the user gives no prompt to the default model.
EXAMPLE_PROMPTS: tuple[str, ...] = (
    "the actor walks into a sunlit kitchen, camera following from the side",
    "the actor sits down at the table and turns towards the window",
    "close-up: the actor smiles and looks back at the camera",
)
# Settings that make the tiny model quick on a CPU.
TINY_DEFAULTS: dict[str, Any] = dict(steps=4, size=(64, 64), frames=9, fps=8, guidance_scale=5.0)


def build_tiny_pipeline(
    seed: int = 0, scheduler: str = "unipc", max_sequence_length: int = 512, **transformer_overrides: Any
):
    """A WildActorPipeline of tiny random components (CPU, float32, eval mode), deterministic in ``seed``."""
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    from wildactor.model import WildActorTransformer3DModel
    from wildactor.pipeline import WildActorPipeline

    torch.manual_seed(seed)
    transformer = WildActorTransformer3DModel(**{**TINY_TRANSFORMER_CONFIG, **transformer_overrides})
    # Random (not zero) LoRA up-projections, so the reference LoRA is exercised as a trained one would be.
    with torch.no_grad():
        for p in transformer.reference_lora_parameters():
            p.normal_(0.0, 0.2)
    vae = AutoencoderKLWan(**TINY_VAE_CONFIG)
    text_encoder = UMT5EncoderModel(UMT5Config(**TINY_TEXT_ENCODER_CONFIG))
    if scheduler == "unipc":
        sched = UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
        )
    elif scheduler == "euler":
        sched = FlowMatchEulerDiscreteScheduler(shift=5.0)
    else:
        raise ValueError(f"scheduler must be 'unipc' or 'euler', got {scheduler!r}")
    for module in (transformer, vae, text_encoder):
        module.eval().requires_grad_(False)
    return WildActorPipeline(
        tokenizer=ByT5Tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=sched,
        max_sequence_length=max_sequence_length,
    )


@dataclass
class DefaultModel:
    """The embedded default: a pipeline, what it is (for the settings JSON), its example actor and settings."""

    pipeline: Any
    description: str
    is_random: bool
    example_references: list[Any]
    example_prompts: list[str]
    defaults: dict[str, Any] = field(default_factory=dict)


def load_default_model(model_dir: Path | None = None) -> DefaultModel:
    """The shipped model if ``model_dir`` (default `DEFAULT_MODEL_DIR`) exists, else the labelled tiny random one."""
    from wildactor.pipeline import Reference, WildActorPipeline

    model_dir = DEFAULT_MODEL_DIR if model_dir is None else Path(model_dir)
    if model_dir.is_dir():
        pipe = WildActorPipeline.from_pretrained(model_dir)
        defaults = dict(TINY_DEFAULTS)
        defaults_file = model_dir / "generate_defaults.json"
        if defaults_file.is_file():
            defaults.update(json.loads(defaults_file.read_text()))
            defaults["size"] = tuple(defaults["size"])
        refs, prompts = synthetic_example_actor(), list(EXAMPLE_PROMPTS)
        refs_file = model_dir / "example_actor" / "references.json"
        if refs_file.is_file():
            example = json.loads(refs_file.read_text())
            refs = [
                Reference(refs_file.parent / e["path"], e.get("region", "body"))
                for e in example["references"]
            ]
            prompts = list(example.get("prompts", prompts))
        return DefaultModel(pipe, f"embedded default model ({model_dir})", False, refs, prompts, defaults)
    return DefaultModel(
        build_tiny_pipeline(0),
        TINY_RANDOM_LABEL,
        True,
        synthetic_example_actor(),
        list(EXAMPLE_PROMPTS),
        dict(TINY_DEFAULTS),
    )


def synthetic_example_actor() -> list[Any]:
    """A drawn placeholder actor (a face close-up and a full body), standing in for the ActorWorld example."""
    from wildactor.pipeline import Reference

    skin, hair, shirt, trousers = (224, 172, 130), (70, 40, 20), (40, 90, 200), (50, 50, 60)
    face = Image.new("RGB", (96, 96), (255, 255, 255))
    d = ImageDraw.Draw(face)
    d.ellipse((18, 8, 78, 40), fill=hair)
    d.ellipse((22, 16, 74, 84), fill=skin)
    d.ellipse((34, 40, 42, 48), fill=(30, 30, 30))
    d.ellipse((54, 40, 62, 48), fill=(30, 30, 30))
    d.arc((36, 52, 60, 70), 20, 160, fill=(150, 50, 50), width=3)
    body = Image.new("RGB", (64, 128), (255, 255, 255))
    d = ImageDraw.Draw(body)
    d.ellipse((22, 4, 42, 24), fill=skin)
    d.rectangle((18, 26, 46, 70), fill=shirt)
    d.rectangle((10, 28, 17, 64), fill=skin)
    d.rectangle((47, 28, 54, 64), fill=skin)
    d.rectangle((20, 70, 30, 122), fill=trousers)
    d.rectangle((34, 70, 44, 122), fill=trousers)
    return [Reference(np.asarray(face), "face"), Reference(np.asarray(body), "body")]


# ---------------------------------------------------------------------------------------------- shipping

# Views of the example actor's references: one face and two body views that between them show the front-only
# print and the back (hair style), as the training sampler draws 1 face + 2 body references.
EXAMPLE_REFERENCE_VIEWS: tuple[tuple[str, str], ...] = (
    ("face", "front"),
    ("body", "front"),
    ("body", "back"),
)


def write_example_actor(folder: Path, actor_index: int, num_shots: int = 3, seed: int = 0) -> dict[str, Any]:
    """References (ActorWorld View-Aug renders) and a scene/motion storyline of one actor, in `folder`."""
    from wildactor.world import Actor, ActorWorldEditor
    from wildactor.world.prompts import clip_prompt, make_storyline

    actor = Actor.from_id(actor_index)
    folder.mkdir(parents=True, exist_ok=True)
    editor = ActorWorldEditor(out_size=64)
    entries = []
    for region, view in EXAMPLE_REFERENCE_VIEWS:
        ref = editor.rerender(actor, region, view)
        if ref is None:
            raise RuntimeError(f"{actor.actor_id}: no {region} reference from the {view}")
        name = f"{region}_{view}.png"
        ref.save(folder / name)
        entries.append({"path": name, "region": region, "view": view, "angle": float(ref.angle)})
    story = make_storyline(actor, np.random.default_rng(seed), num_shots=num_shots)
    # Scene and motion only ("a person ..."), as the model was trained: identity comes from the references.
    prompts = [clip_prompt(spec, describe=False) for spec in story.shots]
    example = {"actor_id": actor.actor_id, "references": entries, "prompts": prompts}
    (folder / "references.json").write_text(json.dumps(example, indent=2) + "\n")
    return example


def export_default_model(
    checkpoint: str | Path,
    out: str | Path,
    max_sequence_length: int,
    example_actor: int,
    defaults: dict[str, Any],
    use_ema: bool = True,
) -> Path:
    """Turn a training checkpoint into the shipped default-model folder.

    A full-model checkpoint loads as a pipeline (EMA weights when present and `use_ema`); a reference-LoRA
    checkpoint (``trainable: lora``) is its frozen base folder (``base_model`` in trainer_state.json) with the
    LoRA (its EMA when present and `use_ema`) loaded in, so the folder holds base and LoRA as one model. Sets the
    text length used in training and writes `save_pretrained` output + `example_actor/` + `generate_defaults.json`
    atomically.
    """
    import shutil

    import torch
    from safetensors.torch import load_file

    from wildactor.errors import WildActorError
    from wildactor.pipeline import WildActorPipeline

    checkpoint, out = Path(checkpoint), Path(out)
    state_file = checkpoint / "trainer_state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    ema_file = checkpoint / "ema.safetensors"
    if (checkpoint / "transformer").is_dir():
        pipe = WildActorPipeline.from_pretrained(checkpoint)
        if use_ema and ema_file.is_file():
            ema = load_file(str(ema_file))
            weights = pipe.transformer.state_dict()
            unknown = sorted(set(ema) - set(weights))
            if unknown:
                raise WildActorError(f"{ema_file}: weights not in the transformer: {unknown[:3]}")
            with torch.no_grad():
                for name, value in ema.items():
                    weights[name].copy_(value)
    elif state.get("trainable") == "lora" and state.get("base_model"):
        base = Path(state["base_model"])
        if not (base / "model_index.json").is_file():
            raise WildActorError(
                f"{checkpoint}: its base model {base} is not a pipeline folder (run from the repo root?)"
            )
        lora = ema_file if use_ema and ema_file.is_file() else checkpoint / "reference_lora.safetensors"
        pipe = WildActorPipeline.from_pretrained(base, lora=lora)
    else:
        raise WildActorError(
            f"{checkpoint} is neither a full-model checkpoint (no transformer/ folder) nor a reference-LoRA "
            "checkpoint of a pretrained base"
        )
    pipe.register_to_config(max_sequence_length=int(max_sequence_length))
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp)
    example = write_example_actor(tmp / "example_actor", example_actor)
    meta = {**defaults, "source_checkpoint": str(checkpoint), "ema": bool(use_ema and ema_file.is_file())}
    if "step" in state:
        meta["training_step"] = int(state["step"])
    if state.get("trainable") == "lora":
        meta["base_model"] = state["base_model"]
    (tmp / "generate_defaults.json").write_text(json.dumps(defaults, indent=2) + "\n")
    (tmp / "provenance.json").write_text(
        json.dumps({**meta, "example_actor": example["actor_id"]}, indent=2) + "\n"
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
