"""A pixel-space stand-in for AutoencoderKLWan: exact space-to-depth, for the small ActorWorld model.

It has the interface WildActor's pipeline and trainer use from `AutoencoderKLWan` — `encode(x).latent_dist`
(`.mode()`, `.sample()`), `decode(z).sample`, and config fields `z_dim`, `scale_factor_spatial`,
`scale_factor_temporal`, `latents_mean`, `latents_std` — but no learned weights: a (B, 3, T, H, W) video in
[-1, 1] becomes (B, 3*s*s, T, H/s, W/s) latents by rearranging each s x s pixel block into channels, and back.
Encoding is lossless, so a model trained on these latents is judged on what it generates, not on a codec.
With s = 4, latents have 48 channels, as Wan2.2's VAE does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


@dataclass
class PointDistribution:
    """A degenerate latent distribution (the encoding is deterministic); mirrors diffusers' `latent_dist`."""

    mean: torch.Tensor

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mean


@dataclass
class EncoderOutput:
    latent_dist: PointDistribution


@dataclass
class DecoderOutput:
    sample: torch.Tensor


class PixelShuffleVAE(ModelMixin, ConfigMixin):
    """Lossless space-to-depth "autoencoder": (B, 3, T, H, W) <-> (B, 3*s*s, T, H/s, W/s); T unchanged."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        scale_factor_spatial: int = 4,
        scale_factor_temporal: int = 1,
        z_dim: int | None = None,
        latents_mean: list[float] | None = None,
        latents_std: list[float] | None = None,
    ) -> None:
        super().__init__()
        if scale_factor_temporal != 1:
            raise ValueError("PixelShuffleVAE keeps every frame: scale_factor_temporal must be 1")
        if scale_factor_spatial < 1:
            raise ValueError(f"scale_factor_spatial must be >= 1, got {scale_factor_spatial}")
        if z_dim is not None and z_dim != in_channels * scale_factor_spatial**2:
            raise ValueError(f"z_dim must be in_channels * scale_factor_spatial**2, got {z_dim}")
        z_dim = in_channels * scale_factor_spatial**2
        self.register_to_config(z_dim=z_dim)
        for name, values in (("latents_mean", latents_mean), ("latents_std", latents_std)):
            if values is not None and len(values) != z_dim:
                raise ValueError(f"{name} must have z_dim={z_dim} entries, got {len(values)}")
        if latents_mean is None:
            self.register_to_config(latents_mean=[0.0] * z_dim)
        if latents_std is None:
            self.register_to_config(latents_std=[1.0] * z_dim)
        # A parameter-free model still needs a dtype/device anchor, and a tensor for save_pretrained to write.
        self.register_buffer("_anchor", torch.zeros(()), persistent=True)

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> EncoderOutput | tuple[PointDistribution]:
        """(B, C, T, H, W) pixels in [-1, 1] -> latent_dist over (B, C*s*s, T, H/s, W/s)."""
        s = self.config.scale_factor_spatial
        b, c, t, h, w = x.shape
        if h % s or w % s:
            raise ValueError(f"frame size {h}x{w} is not a multiple of the spatial factor {s}")
        z = x.reshape(b, c, t, h // s, s, w // s, s)  # (B, C, T, H/s, s, W/s, s)
        z = z.permute(0, 1, 4, 6, 2, 3, 5).reshape(b, c * s * s, t, h // s, w // s)  # (B, C*s*s, T, H/s, W/s)
        dist = PointDistribution(z)
        return EncoderOutput(dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple[torch.Tensor]:
        """(B, C*s*s, T, h, w) latents -> (B, C, T, h*s, w*s) pixels."""
        s = self.config.scale_factor_spatial
        b, zc, t, h, w = z.shape
        c = zc // (s * s)
        x = z.reshape(b, c, s, s, t, h, w).permute(0, 1, 4, 5, 2, 6, 3)  # (B, C, T, h, s, w, s)
        x = x.reshape(b, c, t, h * s, w * s)
        return DecoderOutput(x) if return_dict else (x,)
