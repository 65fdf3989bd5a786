"""The "encode" step between pixels/prompts and the transformer: VAE + text encoder -> latents.

The trainer, the latent cache and the pipeline only talk to a `LatentEncoder`:

- ``encode_video(video)``: (B, 3, T, H, W) pixels in [-1, 1] -> (B, C, F, h, w) normalised latents;
- ``encode_references(images)``: (B, 3, R, H, W) reference images in [-1, 1] -> (B, C, R, h, w), one latent
  frame per image (each image is encoded alone as a one-frame video, as the paper does);
- ``encode_text(prompts)``: list of B strings -> (B, L, text_dim) embeddings, zero past each prompt's end.

`VAETextEncoder` implements it for any VAE with the `AutoencoderKLWan` interface (``encode(x).latent_dist``
and config ``latents_mean`` / ``latents_std``): the real Wan VAE, a tiny random one in tests, or the lossless
pixel-space `wildactor.model.pixel_vae.PixelShuffleVAE` of the ActorWorld model. Another stand-in only needs
those three methods (see `LatentEncoder`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from wildactor.errors import WildActorError


@runtime_checkable
class LatentEncoder(Protocol):
    """What the trainer needs from the frozen encoders."""

    def encode_video(self, video: torch.Tensor) -> torch.Tensor: ...

    def encode_references(self, images: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor: ...


class VAETextEncoder:
    """`LatentEncoder` over a Wan-style VAE and a UMT5-style text encoder (frozen, eval mode, no grad)."""

    def __init__(
        self,
        vae: torch.nn.Module,
        text_encoder: torch.nn.Module,
        tokenizer: Any,
        max_text_length: int = 512,
        input_device: torch.device | None = None,
    ) -> None:
        """input_device: where token ids go; default the text encoder's (set it when offload hooks move the
        encoder's weights, whose own device then says nothing about where it runs)."""
        self.vae = vae.eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_text_length = max_text_length
        self.input_device = input_device

    @property
    def device(self) -> torch.device:
        if self.input_device is not None:
            return self.input_device
        return next(self.text_encoder.parameters()).device

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> VAETextEncoder:
        kwargs = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
        self.vae.to(**kwargs)
        self.text_encoder.to(**kwargs)
        return self

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.z_dim)

    def _normalise(self, z: torch.Tensor) -> torch.Tensor:
        """Wan's latent normalisation: (z - mean) / std per channel."""
        cfg = self.vae.config
        mean = torch.tensor(cfg.latents_mean, dtype=torch.float32, device=z.device).view(1, -1, 1, 1, 1)
        std = torch.tensor(cfg.latents_std, dtype=torch.float32, device=z.device).view(1, -1, 1, 1, 1)
        return (z.float() - mean) / std

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> (B, C, F, h, w) float32 normalised latents (posterior mode)."""
        param = next(self.vae.parameters(), None)
        dtype = param.dtype if param is not None else video.dtype
        z = self.vae.encode(video.to(dtype)).latent_dist.mode()
        return self._normalise(z)

    @torch.no_grad()
    def encode_references(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, H, W) in [-1, 1] -> (B, C, R, h, w): each image alone as a one-frame video."""
        b, c, r, h, w = images.shape
        frames = images.permute(0, 2, 1, 3, 4).reshape(b * r, c, 1, h, w)  # (B*R, 3, 1, H, W)
        # One image per VAE call: a reference's latent must not depend on what it is batched with (a batched
        # convolution may round differently), so the latent cache and the pipeline agree bitwise.
        z = torch.cat([self.encode_video(frame[None]) for frame in frames])  # (B*R, C, 1, h', w')
        return z.reshape(b, r, *z.shape[1:]).squeeze(3).permute(0, 2, 1, 3, 4)  # (B, C, R, h', w')

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """B prompts -> (B, L, D) float32; positions past each prompt's last token are zero (as in Wan)."""
        tokens = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.max_text_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids = tokens.input_ids.to(self.device)
        mask = tokens.attention_mask.to(self.device)
        hidden = self.text_encoder(ids, attention_mask=mask).last_hidden_state  # (B, L, D)
        return hidden.float() * mask.unsqueeze(-1).float()


def load_vae(folder: str | Path) -> torch.nn.Module:
    """A VAE from a diffusers folder: `AutoencoderKLWan`, or `PixelShuffleVAE` (by ``_class_name``)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise WildActorError(f"no VAE at {folder} (config.json missing)")
    class_name = json.loads(config_path.read_text()).get("_class_name", "AutoencoderKLWan")
    if class_name == "PixelShuffleVAE":
        from wildactor.model.pixel_vae import PixelShuffleVAE

        return PixelShuffleVAE.from_pretrained(folder)
    if class_name == "AutoencoderKLWan":
        from diffusers import AutoencoderKLWan

        return AutoencoderKLWan.from_pretrained(folder)
    raise WildActorError(
        f"{folder}: unsupported VAE class {class_name!r} (AutoencoderKLWan or PixelShuffleVAE)"
    )


def load_text_side(pretrained: str | Path) -> tuple[torch.nn.Module, Any]:
    """Text encoder (UMT5) and tokenizer from ``text_encoder/`` and ``tokenizer/`` of a diffusers folder."""
    from transformers import AutoTokenizer, UMT5EncoderModel

    pretrained = Path(pretrained)
    for sub in ("text_encoder", "tokenizer"):
        if not (pretrained / sub).is_dir():
            raise WildActorError(f"{pretrained} has no {sub}/ folder (expected a diffusers Wan folder)")
    text_encoder = UMT5EncoderModel.from_pretrained(pretrained / "text_encoder")
    tokenizer = AutoTokenizer.from_pretrained(pretrained / "tokenizer")
    return text_encoder, tokenizer
