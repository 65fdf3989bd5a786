"""WildActorPipeline: reference images of one actor + a list of prompts -> one clip per prompt, same actor.

Sampling is rectified flow with a diffusers flow scheduler (UniPC or Euler, with its own ``flow_shift`` /
``shift``), stepping through the same noise levels as training (`wildactor.diffusion.flow.sampling_sigmas`).
The reference stream is run once per call (`encode_references`) and its K/V cache is reused by every denoising
step, both classifier-free-guidance branches and every prompt.

Image-to-video is Wan2.2 TI2V's (diffusers' ``expand_timesteps``): the first latent frame is the encoded image,
kept clean at every step, and its tokens get timestep 0 (per-token timesteps of shape (B, S)).
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
from diffusers.loaders import WanLoraLoaderMixin
from diffusers.utils import BaseOutput
from PIL import Image

from wildactor.diffusion.encode import VAETextEncoder
from wildactor.diffusion.prompts import WAN_NEGATIVE_PROMPT, clean_prompt
from wildactor.errors import WildActorError
from wildactor.low_vram import is_offloaded, onload
from wildactor.media import REFERENCE_FITS, fit_image, frames_to_pixels, load_image, to_rgb
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
# What `save_pretrained` writes beside model_index.json so that `DiffusionPipeline.from_pretrained(folder)`
# resolves the class (diffusers loads a custom pipeline class from a file named in `_class_name`).
CUSTOM_PIPELINE_FILE = "wildactor_pipeline"
_CUSTOM_PIPELINE_SOURCE = (
    '"""Lets `diffusers.DiffusionPipeline.from_pretrained` load this folder (needs the wildactor package)."""\n\n'
    "import wildactor.diffusers_loading  # noqa: F401  (the components' library, imported before they load)\n"
    "from wildactor.pipeline import WildActorPipeline\n\n"
    '__all__ = ["WildActorPipeline"]\n'
)

# The library diffusers imports for WildActor's own component classes (it must also expose ModelMixin).
COMPONENTS_MODULE = "wildactor.diffusers_loading"

ImageInput = str | os.PathLike | Image.Image | np.ndarray


def load_rgb(image: ImageInput, what: str = "image") -> Image.Image:
    """A path, PIL image or (H, W[, C]) uint8 array as 8-bit RGB (RGBA/grey/16-bit converted)."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise WildActorError(f"{what} arrays must be uint8 (H, W[, C]), got {image.dtype} {image.shape}")
        return to_rgb(Image.fromarray(image))
    return load_image(image)


def last_frame(clip: Any) -> np.ndarray:
    """The last frame of a clip as the pipeline returns it (``"np"`` array or ``"pil"`` list): (H, W, 3) uint8.

    The image of the next shot when shots are chained (`WildActorPipeline.__call__(chain=True)`, or a shot
    generated in a later call)."""
    if isinstance(clip, np.ndarray) and clip.ndim == 4:
        return np.ascontiguousarray(clip[-1])
    if isinstance(clip, (list, tuple)) and clip and isinstance(clip[-1], Image.Image):
        return np.asarray(to_rgb(clip[-1])).copy()
    raise ValueError("last_frame needs a clip of (F, H, W, 3) frames or a list of PIL images")


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
        return load_rgb(self.image, "reference")


@dataclass
class WildActorPipelineOutput(BaseOutput):
    """frames: one entry per video (prompt-major: prompt i's j-th video at ``i * num_videos_per_prompt + j``),
    each (F, H, W, 3) uint8 (``output_type="np"``), a list of PIL images (``"pil"``) or the (1, C, F, h, w)
    latent (``"latent"``); empty with ``keep_frames=False``.
    reference_images: the references as the model saw them (fitted).
    settings: what the call resolved that a caller should record (reference_fit, negative_prompt,
    image_conditioned per prompt)."""

    frames: list[Any]
    reference_images: list[Image.Image] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def nearest_multiple(value: int, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


class WildActorPipeline(DiffusionPipeline, WanLoraLoaderMixin):
    """Any-view reference images + prompts -> videos of one consistent actor (Wan2.2 + AIPA + I-RoPE)."""

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        tokenizer,
        text_encoder,
        vae,
        transformer: WildActorTransformer3DModel,
        scheduler,
        max_sequence_length: int = 512,
        negative_prompt: str = "",
        reference_fit: str = "pad",
    ) -> None:
        """max_sequence_length: the text length the transformer was trained with (padding is part of the
        condition: Wan embeds every position). negative_prompt: the default of `__call__` ("" for models
        trained here, `WAN_NEGATIVE_PROMPT` for a stock Wan folder). reference_fit: how references are fitted
        into the frame, as the model was trained ("pad" or "stretch"). All three are saved in model_index.json."""
        super().__init__()
        if max_sequence_length < 1:
            raise ValueError(f"max_sequence_length must be >= 1, got {max_sequence_length}")
        _check_fit(reference_fit)
        self.register_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
        )
        self.register_to_config(
            max_sequence_length=int(max_sequence_length),
            negative_prompt=str(negative_prompt),
            reference_fit=reference_fit,
        )

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
            input_device=self._execution_device if is_offloaded(self.text_encoder) else None,
        )

    def _input_device(self, module: torch.nn.Module) -> torch.device:
        """Where inputs of ``module`` must go: its weights' device, or the execution device under offloading."""
        if is_offloaded(module):
            return self._execution_device
        return _module_device(module, self._execution_device)

    def prepare_references(
        self, references: Sequence[Reference], height: int, width: int, fit: str | None = None
    ) -> tuple[list[Image.Image], list[str]]:
        """Load, convert and fit each reference into the frame; their model types.

        fit: "pad" (inside, white padding) or "stretch"; default the pipeline's ``reference_fit``."""
        fit = _check_fit(fit or self.config.reference_fit)
        images = [fit_image(ref.load(), width, height, fit) for ref in references]
        return images, [ref.reference_type for ref in references]

    @torch.no_grad()
    def encode_reference_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """R images of the video size -> (1, C, R, h, w) normalised latents, one latent frame per image."""
        pixels = frames_to_pixels(np.stack([np.asarray(im) for im in images]))  # (1, 3, R, H, W)
        return self._encoder().encode_references(pixels.to(self._input_device(self.vae)))

    @torch.no_grad()
    def encode_video_frames(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 frames -> (1, C, F, h, w) normalised latents, as the trainer encodes clips."""
        return self._encoder().encode_video(frames_to_pixels(frames).to(self._input_device(self.vae)))

    @torch.no_grad()
    def encode_first_frame(self, image: ImageInput, height: int, width: int) -> torch.Tensor:
        """An image -> (1, C, 1, h, w) normalised latent of a one-frame video (cover-fitted to the size)."""
        frame = fit_image(load_rgb(image, "first-frame image"), width, height, "cover")
        return self.encode_video_frames(np.asarray(frame)[None])

    @torch.no_grad()
    def encode_prompts(
        self, prompts: Sequence[str], max_sequence_length: int | None = None, clean: bool = False
    ) -> torch.Tensor:
        """B prompts -> (B, L, text_dim) float32 embeddings, zero past each prompt's end.

        clean: apply Wan's prompt cleaning first (`wildactor.diffusion.prompts.clean_prompt`)."""
        texts = [clean_prompt(p) for p in prompts] if clean else list(prompts)
        return self._encoder(max_sequence_length).encode_text(texts)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(1, C, F, h, w) normalised latents -> (1, 3, T, H, W) pixels in [-1, 1]."""
        cfg = self.vae.config
        vae_device = (
            self._input_device(self.vae)
            if is_offloaded(self.vae)
            else _module_device(self.vae, latents.device)
        )
        mean = torch.tensor(cfg.latents_mean, dtype=torch.float32, device=vae_device).view(1, -1, 1, 1, 1)
        std = torch.tensor(cfg.latents_std, dtype=torch.float32, device=vae_device).view(1, -1, 1, 1, 1)
        z = latents.to(vae_device, torch.float32) * std + mean
        return self.vae.decode(z.to(self.vae.dtype), return_dict=False)[0].float().clamp(-1.0, 1.0)

    # ------------------------------------------------------------------ sampling

    def _velocity(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        refs: dict[str, Any],
        attention_kwargs: dict[str, Any] | None,
    ) -> torch.Tensor:
        dtype = self.transformer.dtype
        out = self.transformer(
            hidden_states=latents.to(dtype),
            timestep=timestep,
            encoder_hidden_states=text.to(dtype),
            attention_kwargs=attention_kwargs,
            return_dict=False,
            **refs,
        )[0]
        return out.float()

    def first_frame_mask(self, latent_shape: Sequence[int], device: torch.device | str) -> torch.Tensor:
        """(1, 1, F, h, w) float32: 0 on the first latent frame (the clean image), 1 elsewhere."""
        mask = torch.ones(1, 1, *latent_shape[1:], dtype=torch.float32, device=device)
        mask[:, :, 0] = 0
        return mask

    def token_timesteps(self, mask: torch.Tensor, t: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Per-token timesteps (B, S): t on noisy tokens, 0 on the first frame's (Wan2.2 TI2V)."""
        p_t, p_h, p_w = self.transformer.config.patch_size
        per_token = (mask[0, 0][::p_t, ::p_h, ::p_w] * t).flatten()  # (S,)
        return per_token.unsqueeze(0).expand(batch_size, -1)

    @torch.no_grad()
    def __call__(
        self,
        prompts: str | Sequence[str] | None = None,
        references: Sequence[Reference] | None = None,
        height: int = 704,
        width: int = 1280,
        num_frames: int = 121,
        num_inference_steps: int = 50,
        guidance_scale: float = 5.0,
        reference_guidance_scale: float | None = None,
        reference_size: tuple[int, int] | None = None,
        negative_prompt: str | None = None,
        seed: int | Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        use_reference_cache: bool | None = None,
        max_sequence_length: int | None = None,
        output_type: str = "np",
        attention_kwargs: dict[str, Any] | None = None,
        on_shot_end: Callable[[int, Any], None] | None = None,
        keep_frames: bool = True,
        image: ImageInput | Sequence[ImageInput | None] | None = None,
        chain: bool = False,
        reference_fit: str | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        num_videos_per_prompt: int = 1,
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        clean_prompts: bool = True,
    ) -> WildActorPipelineOutput:
        """Generate one clip per prompt (a sequential narrative), all of the same referenced actor.

        references: any number of face / body / three-view images (none = plain text-to-video).
        reference_size: (width, height) the references are fitted into; default the video size (as the released
            model is trained). Smaller references mean fewer reference tokens; use the size training used.
        reference_fit: "pad" or "stretch"; default the pipeline's (as its model was trained).
        guidance_scale: text classifier-free guidance (> 1 enables it; both branches see the references).
        reference_guidance_scale: if set, a third branch without references is added and
            v = v(neg, no refs) + s_ref [v(neg, refs) - v(neg, no refs)] + s_text [v(text, refs) - v(neg, refs)].
        negative_prompt: default the pipeline's ``config.negative_prompt``.
        seed: an int (prompt i uses seed + i, so one shot can be regenerated alone) or one seed per prompt;
            otherwise ``generator`` is drawn from in prompt order.
        use_reference_cache: None = whenever the transformer allows it (AIPA); False recomputes the
            reference stream in every forward (same result, slower; for checks and benchmarks).
        max_sequence_length: text length; default: the pipeline's (its training length).
        on_shot_end: called as ``on_shot_end(index, frames)`` as soon as each clip is decoded (index as in
            ``frames`` of the output).
        keep_frames: False returns no frames (each clip only goes to ``on_shot_end``), so a long narrative
            at 720p need not sit in memory.
        image: a first frame (path, PIL image or uint8 array) for the first prompt, or a list with one entry
            (or None) per prompt: image-to-video, cover-fitted to the video size.
        chain: a prompt without an image of its own starts from the last decoded frame of the previous one.
        latents: (P * num_videos_per_prompt, C, F, h, w) initial noise instead of drawing it.
        prompt_embeds: (P, L, text_dim) instead of ``prompts``; negative_prompt_embeds: (1 or P, L, text_dim).
        num_videos_per_prompt: videos per prompt, denoised as one batch from the prompt's seed.
        callback_on_step_end: ``callback(pipe, step, t, tensors) -> dict`` after each step, as in diffusers;
            ``tensors`` holds the names in ``callback_on_step_end_tensor_inputs``; a returned ``latents``,
            ``prompt_embeds`` or ``negative_prompt_embeds`` replaces the current one.
        clean_prompts: Wan's prompt cleaning (ftfy, HTML unescape, whitespace) before encoding.
        Returns `WildActorPipelineOutput`.
        """
        if prompt_embeds is not None:
            if prompts is not None:
                raise ValueError("pass prompts or prompt_embeds, not both")
            if prompt_embeds.ndim != 3:
                raise ValueError(f"prompt_embeds must be (P, L, D), got {tuple(prompt_embeds.shape)}")
            num_prompts = int(prompt_embeds.shape[0])
            check_size(width, height, self.size_multiple)
            check_num_frames(num_frames, self.vae_scale_factor_temporal)
        else:
            prompts = [prompts] if isinstance(prompts, str) else list(prompts or [])
            self.check_inputs(prompts, height, width, num_frames)
            num_prompts = len(prompts)
        references = list(references or [])
        if reference_size is not None:
            check_size(*reference_size, self.size_multiple, what="reference size")
        if output_type not in ("np", "pil", "latent"):
            raise ValueError(f"output_type must be 'np', 'pil' or 'latent', got {output_type!r}")
        if num_videos_per_prompt < 1:
            raise ValueError(f"num_videos_per_prompt must be >= 1, got {num_videos_per_prompt}")
        if chain and num_videos_per_prompt != 1:
            raise ValueError("chain=True needs num_videos_per_prompt=1 (one last frame per shot)")
        unknown = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(f"callback tensors {sorted(unknown)} not in {self._callback_tensor_inputs}")
        fit = _check_fit(reference_fit or self.config.reference_fit)
        negative_prompt = self.config.negative_prompt if negative_prompt is None else negative_prompt
        shot_images = _shot_images(image, num_prompts)
        seeds = _shot_seeds(seed, num_prompts)
        if seeds is None and generator is None and latents is None:
            raise ValueError("pass seed, generator or latents so that generation is reproducible")
        full_attention = self.transformer.config.attention_mode == "full"
        if use_reference_cache is None:
            use_reference_cache = not full_attention
        if use_reference_cache and full_attention:
            raise ValueError('attention_mode="full" has no reference cache: pass use_reference_cache=False')
        device = self._execution_device
        n = num_videos_per_prompt
        latent_shape = self._latent_shape(height, width, num_frames)
        if latents is not None and tuple(latents.shape) != (num_prompts * n, *latent_shape):
            raise ValueError(
                f"latents must have shape {(num_prompts * n, *latent_shape)}, got {tuple(latents.shape)}"
            )

        # Text: all prompts and the negative prompt in one batch (unless given as embeddings).
        if prompt_embeds is None and negative_prompt_embeds is None:
            embeds = self.encode_prompts(prompts + [negative_prompt], max_sequence_length, clean_prompts)
            prompt_embeds, negative_prompt_embeds = embeds[:-1], embeds[-1:]
        elif prompt_embeds is None:
            prompt_embeds = self.encode_prompts(prompts, max_sequence_length, clean_prompts)
        elif negative_prompt_embeds is None:
            negative_prompt_embeds = self.encode_prompts(
                [negative_prompt], max_sequence_length, clean_prompts
            )
        prompt_embeds = prompt_embeds.to(device)
        negative_prompt_embeds = negative_prompt_embeds.to(device)
        if negative_prompt_embeds.shape[0] not in (1, num_prompts):
            raise ValueError(
                f"negative_prompt_embeds has {negative_prompt_embeds.shape[0]} rows for {num_prompts} prompts"
            )

        # References: fitted, VAE-encoded once; the reference stream runs once for the whole call.
        reference_images: list[Image.Image] = []
        with_refs: dict[str, Any] = {}
        if references:
            ref_width, ref_height = reference_size or (width, height)
            reference_images, reference_types = self.prepare_references(
                references, ref_height, ref_width, fit
            )
            ref_latents = self.encode_reference_images(reference_images)
            ref_latents = ref_latents.to(device, self.transformer.dtype)
            if use_reference_cache:
                onload(self.transformer)  # encode_references is not forward: run the offload hook first
                cache: ReferenceCache = self.transformer.encode_references(
                    ref_latents, reference_types, latent_shape[1:]
                )
                with_refs = {"reference_cache": cache}
            else:
                with_refs = {"reference_latents": ref_latents, "reference_types": reference_types}
        do_cfg = guidance_scale > 1.0
        ref_cfg = reference_guidance_scale is not None and bool(references)

        frames: list[Any] = []
        conditioned: list[bool] = []
        previous_last: np.ndarray | None = None
        with self.progress_bar(total=num_inference_steps * num_prompts) as progress:
            for i in range(num_prompts):
                text = prompt_embeds[i : i + 1].expand(n, -1, -1)  # (n, L, D)
                negative = negative_prompt_embeds[i if negative_prompt_embeds.shape[0] > 1 else 0][None]
                negative = negative.expand(n, -1, -1)
                if latents is not None:
                    x = latents[i * n : (i + 1) * n].to(device, torch.float32)
                else:
                    gen = torch.Generator("cpu").manual_seed(seeds[i]) if seeds is not None else generator
                    x = torch.randn((n, *latent_shape), generator=gen, dtype=torch.float32, device=gen.device)
                    x = x.to(device)
                first = shot_images[i] if shot_images[i] is not None else (previous_last if chain else None)
                conditioned.append(first is not None)
                condition = mask = None
                if first is not None:
                    condition = self.encode_first_frame(first, height, width).to(device)  # (1, C, 1, h, w)
                    mask = self.first_frame_mask(latent_shape, device)  # (1, 1, F, h, w)

                self.set_timesteps(num_inference_steps, device)
                for step, t in enumerate(self.scheduler.timesteps):
                    if condition is None:
                        model_input, timestep = x, t.expand(n)
                    else:
                        model_input = (1 - mask) * condition + mask * x
                        timestep = self.token_timesteps(mask, t, n)
                    v = self._velocity(model_input, timestep, text, with_refs, attention_kwargs)
                    if ref_cfg:
                        v_neg = self._velocity(model_input, timestep, negative, with_refs, attention_kwargs)
                        v_bare = self._velocity(model_input, timestep, negative, {}, attention_kwargs)
                        v = (
                            v_bare
                            + reference_guidance_scale * (v_neg - v_bare)
                            + guidance_scale * (v - v_neg)
                        )
                    elif do_cfg:
                        v_neg = self._velocity(model_input, timestep, negative, with_refs, attention_kwargs)
                        v = v_neg + guidance_scale * (v - v_neg)
                    x = self.scheduler.step(v, t, x, return_dict=False)[0]
                    if callback_on_step_end is not None:
                        current = {"latents": x, "prompt_embeds": text, "negative_prompt_embeds": negative}
                        returned = callback_on_step_end(
                            self, step, t, {k: current[k] for k in callback_on_step_end_tensor_inputs}
                        )
                        returned = returned or {}
                        x = returned.pop("latents", x)
                        text = returned.pop("prompt_embeds", text)
                        negative = returned.pop("negative_prompt_embeds", negative)
                    progress.update()
                if condition is not None:
                    x = (1 - mask) * condition + mask * x
                for j in range(n):
                    clip = self._finish(x[j : j + 1], output_type)
                    if chain and j == 0:
                        previous_last = (
                            self._finish(x[:1], "np")[-1] if output_type == "latent" else last_frame(clip)
                        )
                    if on_shot_end is not None:
                        on_shot_end(i * n + j, clip)
                    if keep_frames:
                        frames.append(clip)
                    del clip
        self.maybe_free_model_hooks()
        settings = {
            "reference_fit": fit,
            "negative_prompt": negative_prompt,
            "image_conditioned": conditioned,
        }
        return WildActorPipelineOutput(frames=frames, reference_images=reference_images, settings=settings)

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
        negative_prompt: str | None = None,
        reference_fit: str | None = None,
        **kwargs: Any,
    ) -> WildActorPipeline:
        """Load a local diffusers folder: Wan2.2-TI2V-5B (base weights; LoRA starts at zero) or a folder
        written by `save_pretrained`. ``lora``: a reference LoRA file in any layout `wildactor lora convert`
        reads (WildActor, the official release's, Stand-In's). The VAE stays float32.
        ``device``: where the modules go (default: CPU). ``max_sequence_length``: default from
        model_index.json (written by `save_pretrained`), else 512 (Wan's). ``negative_prompt``: default from
        model_index.json, else Wan's for a stock Wan folder, else "". ``reference_fit``: default from the LoRA
        file's metadata (official files: "stretch"), else model_index.json, else "pad".

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
        lora_fit = None
        if lora is not None:
            lora_fit = load_any_reference_lora(transformer, lora)
        for module in (text_encoder, vae, transformer):
            module.eval().requires_grad_(False)
            if device is not None:
                module.to(device)
            own_cpu_storage(module)
        index_path = root / "model_index.json"
        index = json.loads(index_path.read_text()) if index_path.is_file() else {}
        if max_sequence_length is None:
            max_sequence_length = int(index.get("max_sequence_length") or 512)
        if negative_prompt is None:
            stock_wan = str(index.get("_class_name", "")).startswith("Wan")
            negative_prompt = index.get("negative_prompt", WAN_NEGATIVE_PROMPT if stock_wan else "")
        return cls(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
            max_sequence_length=max_sequence_length,
            negative_prompt=negative_prompt,
            reference_fit=reference_fit or lora_fit or index.get("reference_fit") or "pad",
        )

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> None:
        """diffusers' `save_pretrained`, plus what `DiffusionPipeline.from_pretrained(folder,
        trust_remote_code=True)` needs: a one-line class file (``_class_name`` = [file, class], diffusers'
        custom-pipeline layout) and `COMPONENTS_MODULE` as the library of WildActor's own components."""
        super().save_pretrained(save_directory, **kwargs)
        root = Path(save_directory)
        (root / f"{CUSTOM_PIPELINE_FILE}.py").write_text(_CUSTOM_PIPELINE_SOURCE)
        index_path = root / "model_index.json"
        index = json.loads(index_path.read_text())
        index["_class_name"] = [CUSTOM_PIPELINE_FILE, type(self).__name__]
        for name, entry in index.items():
            if isinstance(entry, list) and len(entry) == 2 and str(entry[0]).startswith("wildactor."):
                index[name] = [COMPONENTS_MODULE, entry[1]]
        index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    # ------------------------------------------------------------------ low VRAM

    def enable_offload(
        self, mode: str, device: torch.device | str | None = None, group_offload_type: str = "leaf_level"
    ) -> None:
        """Offload ``"none" | "model" | "sequential" | "group"`` (diffusers' mechanisms, `wildactor.low_vram`);
        ``device``: where the work runs (default CUDA if present, else the CPU)."""
        from wildactor.low_vram import apply_offload

        apply_offload(self, mode, device, group_offload_type)

    def enable_vae_tiling(self, **tile_sizes: Any) -> None:
        """Encode and decode in tiles (`AutoencoderKLWan.enable_tiling` arguments); a one-line error for a VAE
        without a tiled mode."""
        from wildactor.low_vram import enable_vae_tiling

        enable_vae_tiling(self.vae, **tile_sizes)

    def quantize_transformer(self, weights: str = "int8") -> None:
        """8-bit ``"int8" | "fp8"`` transformer weights through optimum-quanto (reference LoRA left as it is);
        call before `enable_offload`."""
        from wildactor.low_vram import quantize_transformer

        quantize_transformer(self.transformer, weights)

    # ------------------------------------------------------------------ ordinary (community) LoRAs

    def load_lora_weights(
        self, pretrained_model_name_or_path_or_dict: Any, *args: Any, **kwargs: Any
    ) -> None:
        """Load an ordinary Wan LoRA (a style/community LoRA) into the base transformer, as `WanPipeline` does.

        It changes the shared q/k/v/o (and whatever else it targets) of video tokens and also of the reference
        stream, which runs the same projections plus the reference LoRA. A reference LoRA (any layout `wildactor
        lora convert` reads) is refused: it belongs to the reference stream only (`from_pretrained(lora=...)`).
        """
        from wildactor.lora_formats import is_reference_lora

        source = pretrained_model_name_or_path_or_dict
        what = is_reference_lora(source, kwargs.get("weight_name"))
        if what is not None:
            raise WildActorError(
                f"this is a reference LoRA ({what} layout): it must not be loaded as an ordinary LoRA, which "
                "would also change video tokens; load it with from_pretrained(..., lora=PATH)"
            )
        super().load_lora_weights(source, *args, **kwargs)


def load_any_reference_lora(
    transformer: WildActorTransformer3DModel, path: str | os.PathLike[str]
) -> str | None:
    """Load a reference LoRA file of any known layout into ``transformer``; the ``reference_fit`` the file's
    metadata names (None if it names none)."""
    import tempfile

    from wildactor.lora_formats import (
        convert_lora_file,
        detect_lora_format,
        read_lora_file,
        reference_fit_of,
    )

    path = Path(path)
    tensors, meta = read_lora_file(path)
    layout = detect_lora_format(tensors, path)
    if layout == "wildactor":
        transformer.load_reference_lora(path)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            converted = convert_lora_file(path, Path(tmp) / "reference_lora.safetensors", "wildactor")
            transformer.load_reference_lora(converted)
    fit = reference_fit_of(meta, layout)
    return _check_fit(fit) if fit else None


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
    check_num_frames(num_frames, temporal_factor)


def check_num_frames(num_frames: int, temporal_factor: int) -> None:
    """The frame count must be temporal_factor * k + 1; the error names the nearest valid count."""
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


def _check_fit(fit: str) -> str:
    if fit not in REFERENCE_FITS:
        raise WildActorError(f"unknown reference fit {fit!r} (use one of {', '.join(REFERENCE_FITS)})")
    return fit


def _shot_images(image: Any, num_prompts: int) -> list[Any]:
    """One first-frame image (or None) per prompt: a single image conditions the first prompt only."""
    if image is None:
        return [None] * num_prompts
    if isinstance(image, (list, tuple)):
        if len(image) != num_prompts:
            raise ValueError(f"{len(image)} images for {num_prompts} prompts (use None for a text-only shot)")
        return list(image)
    return [image] + [None] * (num_prompts - 1)
