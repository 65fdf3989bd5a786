"""WildActorPipeline: reference images of one actor + a list of prompts -> one clip per prompt, same actor.

Sampling is rectified flow with a diffusers flow scheduler (UniPC or Euler, with its own ``flow_shift`` /
``shift``), stepping through the same noise levels as training (`wildactor.diffusion.flow.sampling_sigmas`). The reference stream is run once per call (`encode_references`) and its K/V cache is reused by
every denoising step, both classifier-free-guidance branches and every prompt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from PIL import Image

from wildactor.diffusion.encode import VAETextEncoder
from wildactor.errors import WildActorError
from wildactor.media import fit_and_pad, frames_to_pixels, load_image, to_rgb
from wildactor.model import ReferenceCache, WildActorTransformer3DModel

REGIONS: tuple[str, ...] = ("face", "body", "three_view")
# The transformer knows two reference kinds; a three-view sheet is a body reference (as in the paper).
_REGION_TO_TYPE = {"face": "face", "body": "body", "three_view": "body"}
COMPONENTS: tuple[str, ...] = ("tokenizer", "text_encoder", "vae", "transformer", "scheduler")
_COMPONENT_FILES = {
    "tokenizer": "tokenizer_config.json",
    "text_encoder": "config.json",
    "vae": "config.json",
    "transformer": "config.json",
    "scheduler": "scheduler_config.json",
}
FLOW_SCHEDULERS: tuple[str, ...] = ("UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler")


@dataclass
class Reference:
    """One reference image of the actor: a path, a PIL image or an (H, W, 3) uint8 array, and its region."""

    image: str | os.PathLike[str] | Image.Image | np.ndarray
    region: str = "body"

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise WildActorError(
                f"unknown reference region {self.region!r} (use one of {', '.join(REGIONS)})"
            )

    @property
    def reference_type(self) -> str:
        return _REGION_TO_TYPE[self.region]

    def load(self) -> Image.Image:
        """The image as 8-bit RGB (paths are read; RGBA/grey/16-bit converted)."""
        if isinstance(self.image, Image.Image):
            return to_rgb(self.image)
        if isinstance(self.image, np.ndarray):
            array = self.image
            if array.dtype != np.uint8 or array.ndim not in (2, 3):
                raise WildActorError(
                    f"reference arrays must be uint8 (H, W[, C]), got {array.dtype} {array.shape}"
                )
            return to_rgb(Image.fromarray(array))
        return load_image(self.image)


@dataclass
class WildActorPipelineOutput(BaseOutput):
    """frames: one entry per prompt, each (F, H, W, 3) uint8 (``output_type="np"``), a list of PIL images
    (``"pil"``) or the (1, C, F, h, w) latent (``"latent"``); empty with ``keep_frames=False``.
    reference_images: the references as the model saw them (fitted and padded)."""

    frames: list[Any]
    reference_images: list[Image.Image] = field(default_factory=list)


def nearest_multiple(value: int, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


class WildActorPipeline(DiffusionPipeline):
    """Any-view reference images + prompts -> videos of one consistent actor (Wan2.2 + AIPA + I-RoPE)."""

    model_cpu_offload_seq = "text_encoder->transformer->vae"

    def __init__(
        self,
        tokenizer,
        text_encoder,
        vae,
        transformer: WildActorTransformer3DModel,
        scheduler,
        max_sequence_length: int = 512,
    ) -> None:
        """max_sequence_length: the text length the transformer was trained with (padding is part of the
        condition: Wan embeds every position); saved in model_index.json."""
        super().__init__()
        if max_sequence_length < 1:
            raise ValueError(f"max_sequence_length must be >= 1, got {max_sequence_length}")
        self.register_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
        )
        self.register_to_config(max_sequence_length=int(max_sequence_length))

    # ------------------------------------------------------------------ geometry

    @property
    def vae_scale_factor_spatial(self) -> int:
        return int(self.vae.config.scale_factor_spatial)

    @property
    def vae_scale_factor_temporal(self) -> int:
        return int(self.vae.config.scale_factor_temporal)

    @property
    def size_multiple(self) -> int:
        """Pixel sizes must be multiples of this: VAE spatial factor x transformer patch size."""
        _, p_h, p_w = self.transformer.config.patch_size
        return self.vae_scale_factor_spatial * max(p_h, p_w)

    def check_inputs(self, prompts: Sequence[str], height: int, width: int, num_frames: int) -> None:
        """One-line `WildActorError` for each user mistake the call can detect before doing any work."""
        check_generation_inputs(
            prompts, height, width, num_frames, self.size_multiple, self.vae_scale_factor_temporal
        )

    # ------------------------------------------------------------------ encoding

    def _encoder(self, max_sequence_length: int | None = None) -> VAETextEncoder:
        # The trainer's encoder: same text embedding and latent normalisation at train and sample time.
        return VAETextEncoder(
            self.vae,
            self.text_encoder,
            self.tokenizer,
            max_text_length=max_sequence_length or self.config.max_sequence_length,
        )

    def prepare_references(
        self, references: Sequence[Reference], height: int, width: int
    ) -> tuple[list[Image.Image], list[str]]:
        """Load, convert and fit each reference into the video frame (white padding); their model types."""
        images = [fit_and_pad(ref.load(), width, height) for ref in references]
        return images, [ref.reference_type for ref in references]

    @torch.no_grad()
    def encode_reference_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """R images of the video size -> (1, C, R, h, w) normalised latents, one latent frame per image."""
        pixels = frames_to_pixels(np.stack([np.asarray(im) for im in images]))  # (1, 3, R, H, W)
        vae_device = _module_device(self.vae, self._execution_device)
        return self._encoder().encode_references(pixels.to(vae_device))

    @torch.no_grad()
    def encode_video_frames(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 frames -> (1, C, F, h, w) normalised latents, as the trainer encodes clips."""
        vae_device = _module_device(self.vae, self._execution_device)
        return self._encoder().encode_video(frames_to_pixels(frames).to(vae_device))

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str], max_sequence_length: int | None = None) -> torch.Tensor:
        """B prompts -> (B, L, text_dim) float32 embeddings, zero past each prompt's end."""
        return self._encoder(max_sequence_length).encode_text(list(prompts))

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(1, C, F, h, w) normalised latents -> (1, 3, T, H, W) pixels in [-1, 1]."""
        cfg = self.vae.config
        vae_device = _module_device(self.vae, latents.device)
        mean = torch.tensor(cfg.latents_mean, dtype=torch.float32, device=vae_device).view(1, -1, 1, 1, 1)
        std = torch.tensor(cfg.latents_std, dtype=torch.float32, device=vae_device).view(1, -1, 1, 1, 1)
        z = latents.to(vae_device, torch.float32) * std + mean
        return self.vae.decode(z.to(self.vae.dtype), return_dict=False)[0].float().clamp(-1.0, 1.0)

    # ------------------------------------------------------------------ sampling

    def _velocity(
        self,
        latents: torch.Tensor,
        t: torch.Tensor,
        text: torch.Tensor,
        refs: dict[str, Any],
        attention_kwargs: dict[str, Any] | None,
    ) -> torch.Tensor:
        dtype = self.transformer.dtype
        out = self.transformer(
            hidden_states=latents.to(dtype),
            timestep=t.expand(latents.shape[0]),
            encoder_hidden_states=text.to(dtype),
            attention_kwargs=attention_kwargs,
            return_dict=False,
            **refs,
        )[0]
        return out.float()

    @torch.no_grad()
    def __call__(
        self,
        prompts: str | Sequence[str],
        references: Sequence[Reference] | None = None,
        height: int = 704,
        width: int = 1280,
        num_frames: int = 121,
        num_inference_steps: int = 50,
        guidance_scale: float = 5.0,
        reference_guidance_scale: float | None = None,
        reference_size: tuple[int, int] | None = None,
        negative_prompt: str = "",
        seed: int | Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        use_reference_cache: bool | None = None,
        max_sequence_length: int | None = None,
        output_type: str = "np",
        attention_kwargs: dict[str, Any] | None = None,
        on_shot_end: Callable[[int, Any], None] | None = None,
        keep_frames: bool = True,
    ) -> WildActorPipelineOutput:
        """Generate one clip per prompt (a sequential narrative), all of the same referenced actor.

        references: any number of face / body / three-view images (none = plain text-to-video).
        reference_size: (width, height) the references are fitted into; default the video size (as the released
            model is trained). Smaller references mean fewer reference tokens; use the size training used.
        guidance_scale: text classifier-free guidance (> 1 enables it; both branches see the references).
        reference_guidance_scale: if set, a third branch without references is added and
            v = v(neg, no refs) + s_ref [v(neg, refs) - v(neg, no refs)] + s_text [v(text, refs) - v(neg, refs)].
        seed: an int (prompt i uses seed + i, so one shot can be regenerated alone) or one seed per prompt;
            otherwise ``generator`` is drawn from in prompt order.
        use_reference_cache: None = whenever the transformer allows it (AIPA); False recomputes the
            reference stream in every forward (same result, slower; for checks and benchmarks).
        max_sequence_length: text length; default: the pipeline's (its training length).
        on_shot_end: called as ``on_shot_end(prompt_index, frames)`` as soon as each clip is decoded.
        keep_frames: False returns no frames (each clip only goes to ``on_shot_end``), so a long narrative
            at 720p need not sit in memory.
        Returns `WildActorPipelineOutput`.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        references = list(references or [])
        self.check_inputs(prompts, height, width, num_frames)
        if reference_size is not None:
            check_size(*reference_size, self.size_multiple, what="reference size")
        if output_type not in ("np", "pil", "latent"):
            raise ValueError(f"output_type must be 'np', 'pil' or 'latent', got {output_type!r}")
        seeds = _shot_seeds(seed, len(prompts))
        if seeds is None and generator is None:
            raise ValueError("pass seed or generator so that generation is reproducible")
        full_attention = self.transformer.config.attention_mode == "full"
        if use_reference_cache is None:
            use_reference_cache = not full_attention
        if use_reference_cache and full_attention:
            raise ValueError('attention_mode="full" has no reference cache: pass use_reference_cache=False')
        device = self._execution_device

        # Text: all prompts and the negative prompt in one batch.
        embeds = self.encode_prompts(prompts + [negative_prompt], max_sequence_length).to(device)
        prompt_embeds, negative_embeds = embeds[:-1], embeds[-1:]

        # References: fitted, VAE-encoded once; the reference stream runs once for the whole call.
        reference_images: list[Image.Image] = []
        with_refs: dict[str, Any] = {}
        if references:
            ref_width, ref_height = reference_size or (width, height)
            reference_images, reference_types = self.prepare_references(references, ref_height, ref_width)
            ref_latents = self.encode_reference_images(reference_images)
            ref_latents = ref_latents.to(device, self.transformer.dtype)
            latent_shape = self._latent_shape(height, width, num_frames)
            if use_reference_cache:
                cache: ReferenceCache = self.transformer.encode_references(
                    ref_latents, reference_types, latent_shape[1:]
                )
                with_refs = {"reference_cache": cache}
            else:
                with_refs = {"reference_latents": ref_latents, "reference_types": reference_types}
        do_cfg = guidance_scale > 1.0
        ref_cfg = reference_guidance_scale is not None and bool(references)

        frames: list[Any] = []
        with self.progress_bar(total=num_inference_steps * len(prompts)) as progress:
            for i, text in enumerate(prompt_embeds):
                gen = torch.Generator("cpu").manual_seed(seeds[i]) if seeds is not None else generator
                shape = (1,) + self._latent_shape(height, width, num_frames)
                latents = torch.randn(shape, generator=gen, dtype=torch.float32, device=gen.device).to(device)
                self.set_timesteps(num_inference_steps, device)
                for t in self.scheduler.timesteps:
                    v = self._velocity(latents, t, text[None], with_refs, attention_kwargs)
                    if ref_cfg:
                        v_neg = self._velocity(latents, t, negative_embeds, with_refs, attention_kwargs)
                        v_bare = self._velocity(latents, t, negative_embeds, {}, attention_kwargs)
                        v = (
                            v_bare
                            + reference_guidance_scale * (v_neg - v_bare)
                            + guidance_scale * (v - v_neg)
                        )
                    elif do_cfg:
                        v_neg = self._velocity(latents, t, negative_embeds, with_refs, attention_kwargs)
                        v = v_neg + guidance_scale * (v - v_neg)
                    latents = self.scheduler.step(v, t, latents, return_dict=False)[0]
                    progress.update()
                clip = self._finish(latents, output_type)
                if on_shot_end is not None:
                    on_shot_end(i, clip)
                if keep_frames:
                    frames.append(clip)
                del clip
        self.maybe_free_model_hooks()
        return WildActorPipelineOutput(frames=frames, reference_images=reference_images)

    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> None:
        """Step through the noise levels training used (`flow.sampling_sigmas` with the scheduler's shift).

        UniPC's flow grid is that grid already; Euler's default grid is not, so Euler is handed the unshifted
        grid and applies its own shift to it.
        """
        from diffusers import FlowMatchEulerDiscreteScheduler

        from wildactor.diffusion.flow import sampling_sigmas

        cfg = self.scheduler.config
        if isinstance(self.scheduler, FlowMatchEulerDiscreteScheduler) and not cfg.use_dynamic_shifting:
            base = sampling_sigmas(num_inference_steps, 1.0, cfg.num_train_timesteps)[:-1]  # unshifted
            self.scheduler.set_timesteps(sigmas=base.numpy(), device=device)
        else:
            self.scheduler.set_timesteps(num_inference_steps, device=device)

    def _latent_shape(self, height: int, width: int, num_frames: int) -> tuple[int, int, int, int]:
        """(C, F, h, w) of the video latent."""
        s, st = self.vae_scale_factor_spatial, self.vae_scale_factor_temporal
        return (
            int(self.transformer.config.in_channels),
            (num_frames - 1) // st + 1,
            height // s,
            width // s,
        )

    def _finish(self, latents: torch.Tensor, output_type: str) -> Any:
        if output_type == "latent":
            return latents
        video = self.decode_latents(latents)[0]  # (3, T, H, W) in [-1, 1]
        pixels = ((video + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        array = np.ascontiguousarray(pixels.permute(1, 2, 3, 0).cpu().numpy())  # (T, H, W, 3)
        return array if output_type == "np" else [Image.fromarray(f) for f in array]

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        lora: str | os.PathLike[str] | None = None,
        torch_dtype: torch.dtype | None = None,
        transformer_kwargs: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        max_sequence_length: int | None = None,
        **kwargs: Any,
    ) -> WildActorPipeline:
        """Load a local diffusers folder: Wan2.2-TI2V-5B (base weights; LoRA starts at zero) or a folder
        written by `save_pretrained`. ``lora``: a reference LoRA file from training. The VAE stays float32.
        ``device``: where the modules go (default: CPU). ``max_sequence_length``: default from
        model_index.json (written by `save_pretrained`), else 512 (Wan's).

        Nothing is downloaded: a missing folder or component is a one-line `WildActorError`.
        """
        from transformers import AutoTokenizer, UMT5EncoderModel

        from wildactor.diffusion.encode import load_vae

        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        root = check_model_folder(pretrained_model_name_or_path)
        scheduler = _load_scheduler(root / "scheduler")
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
        text_encoder = UMT5EncoderModel.from_pretrained(
            root / "text_encoder", dtype=torch_dtype or torch.float32
        )
        vae = load_vae(root / "vae")
        transformer = WildActorTransformer3DModel.from_pretrained(
            root, subfolder="transformer", torch_dtype=torch_dtype, **(transformer_kwargs or {})
        )
        if lora is not None:
            transformer.load_reference_lora(lora)
        for module in (text_encoder, vae, transformer):
            module.eval().requires_grad_(False)
            if device is not None:
                module.to(device)
            own_cpu_storage(module)
        if max_sequence_length is None:
            index = root / "model_index.json"
            saved = json.loads(index.read_text()).get("max_sequence_length") if index.is_file() else None
            max_sequence_length = int(saved or 512)
        return cls(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
            max_sequence_length=max_sequence_length,
        )


def check_generation_inputs(
    prompts: Sequence[str], height: int, width: int, num_frames: int, size_multiple: int, temporal_factor: int
) -> None:
    """The size, frame-count and prompt checks, usable before any model weights are loaded."""
    if not prompts:
        raise WildActorError("no prompt given: pass at least one prompt")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise WildActorError(f"prompt {i + 1} is empty")
    check_size(width, height, size_multiple)
    if num_frames < 1 or (num_frames - 1) % temporal_factor:
        k = max(0, round((num_frames - 1) / temporal_factor))
        raise WildActorError(
            f"{num_frames} frames is not {temporal_factor}k+1; nearest valid count: {temporal_factor * k + 1}"
        )


def check_size(width: int, height: int, size_multiple: int, what: str = "size") -> None:
    """Both sides positive multiples of ``size_multiple``; the error names the nearest valid size."""
    if height <= 0 or width <= 0 or height % size_multiple or width % size_multiple:
        raise WildActorError(
            f"{what} {width}x{height} is not a multiple of {size_multiple} (VAE factor x patch size); "
            f"nearest valid size: {nearest_multiple(width, size_multiple)}x{nearest_multiple(height, size_multiple)}"
        )


def check_model_folder(path: str | os.PathLike[str]) -> Path:
    """The folder must exist and hold every component's config; otherwise a one-line `WildActorError`."""
    root = Path(path)
    if not root.is_dir():
        raise WildActorError(f"model folder not found: {root}")
    for name in COMPONENTS:
        config = root / name / _COMPONENT_FILES[name]
        if not config.is_file():
            raise WildActorError(
                f"model folder {root} is missing the {name!r} component ({config} not found)"
            )
    return root


def model_strides(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(pixel size multiple, temporal factor) of a model folder, read from its configs without loading weights."""
    root = check_model_folder(path)
    vae = json.loads((root / "vae" / "config.json").read_text())
    transformer = json.loads((root / "transformer" / "config.json").read_text())
    spatial = int(vae.get("scale_factor_spatial") or 8)
    temporal = int(vae.get("scale_factor_temporal") or 4)
    _, p_h, p_w = transformer.get("patch_size", (1, 2, 2))
    return spatial * max(int(p_h), int(p_w)), temporal


def _load_scheduler(folder: Path):
    import diffusers

    name = json.loads((folder / "scheduler_config.json").read_text()).get("_class_name")
    if name not in FLOW_SCHEDULERS:
        raise WildActorError(
            f"{folder}: scheduler {name!r} is not a flow scheduler ({', '.join(FLOW_SCHEDULERS)})"
        )
    return getattr(diffusers, name).from_pretrained(folder)


def own_cpu_storage(module: torch.nn.Module) -> None:
    """Copy CPU tensors that still point into a loaded file into fresh, aligned memory.

    Weights read from safetensors can sit at unaligned addresses, which sends CPU kernels down other SIMD
    paths: same weights, last-bit different results. Fresh storage makes a reloaded pipeline reproduce the
    original exactly.
    """
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.device.type == "cpu":
                tensor.data = tensor.data.clone()


def _module_device(module: torch.nn.Module, default: torch.device) -> torch.device:
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return default


def _shot_seeds(seed: int | Sequence[int] | None, num_prompts: int) -> list[int] | None:
    if seed is None:
        return None
    if isinstance(seed, int):
        return [seed + i for i in range(num_prompts)]
    seeds = [int(s) for s in seed]
    if len(seeds) != num_prompts:
        raise ValueError(f"{len(seeds)} seeds for {num_prompts} prompts")
    return seeds
