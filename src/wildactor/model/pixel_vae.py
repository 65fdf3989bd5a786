"""A pixel-space stand-in for AutoencoderKLWan: space-to-depth, optionally projected, for the ActorWorld model.

It has the interface WildActor's pipeline and trainer use from `AutoencoderKLWan` — `encode(x).latent_dist`
(`.mode()`, `.sample()`), `decode(z).sample`, and config fields `z_dim`, `scale_factor_spatial`,
`scale_factor_temporal`, `latents_mean`, `latents_std` — but no learned network: a (B, 3, T, H, W) video in
[-1, 1] becomes (B, 3*s*s, T, H/s, W/s) latents by rearranging each s x s pixel block into channels, and back.

Plain space-to-depth is lossless. With ``latent_channels=K`` each 3*s*s block vector is instead projected onto K
orthonormal directions (`fit_pca`: the principal components of blocks of real frames), so the codec is linear and
lossy like a VAE is: fitted on ActorWorld clips and references, K = 20 of 48 keeps 99.6 % of the block variance
(36 dB PSNR on held-out clips). It matters for a small transformer: a token of patch 1x2x2 carries 4*z_dim numbers, and a width
below that cannot pass the noisy input through to its velocity output (48 lossless channels = 192 numbers).
"""

from __future__ import annotations

from collections.abc import Iterable
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
    """Space-to-depth "autoencoder": (B, 3, T, H, W) <-> (B, z_dim, T, H/s, W/s); T unchanged.

    z_dim = 3*s*s (lossless), or ``latent_channels`` (projection onto the rows of the ``basis`` buffer, after
    subtracting ``block_mean``; set both with `fit_pca`).
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        scale_factor_spatial: int = 4,
        scale_factor_temporal: int = 1,
        z_dim: int | None = None,
        latents_mean: list[float] | None = None,
        latents_std: list[float] | None = None,
        latent_channels: int | None = None,
    ) -> None:
        super().__init__()
        if scale_factor_temporal != 1:
            raise ValueError("PixelShuffleVAE keeps every frame: scale_factor_temporal must be 1")
        if scale_factor_spatial < 1:
            raise ValueError(f"scale_factor_spatial must be >= 1, got {scale_factor_spatial}")
        block = in_channels * scale_factor_spatial**2
        if latent_channels is not None and not 1 <= latent_channels <= block:
            raise ValueError(f"latent_channels must be in [1, {block}], got {latent_channels}")
        expected = block if latent_channels is None else latent_channels
        if z_dim is not None and z_dim != expected:
            raise ValueError(
                f"z_dim must be latent_channels or in_channels * scale_factor_spatial**2 ({expected}), got {z_dim}"
            )
        z_dim = expected
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
        if latent_channels is not None:  # until fitted: the first K block channels
            self.register_buffer("basis", torch.eye(block)[:latent_channels].clone(), persistent=True)
            self.register_buffer("block_mean", torch.zeros(block), persistent=True)

    @classmethod
    def fit_pca(
        cls,
        videos: Iterable[torch.Tensor],
        latent_channels: int,
        scale_factor_spatial: int = 4,
        in_channels: int = 3,
    ) -> tuple[PixelShuffleVAE, torch.Tensor]:
        """Fit the projection on (3, T, H, W) videos in [-1, 1]: the top principal components of their blocks.

        Latents come out with zero mean and per-channel std ``latents_std`` (sqrt of the eigenvalues), so the
        normalised latents the transformer sees have unit variance. Returns the VAE and the fraction of block
        variance each kept component explains, cumulatively.
        """
        lossless = cls(in_channels=in_channels, scale_factor_spatial=scale_factor_spatial)
        block = lossless.config.z_dim
        total, outer, count = (
            torch.zeros(block, dtype=torch.float64),
            torch.zeros(block, block, dtype=torch.float64),
            0,
        )
        for video in videos:
            z = lossless.encode(video[None].float()).latent_dist.mode()  # (1, D, T, h, w)
            flat = z.movedim(1, -1).reshape(-1, block).double()
            total += flat.sum(0)
            outer += flat.T @ flat
            count += flat.shape[0]
        if count < 2:
            raise ValueError("fit_pca needs at least one video with two blocks")
        mean = total / count
        cov = outer / count - torch.outer(mean, mean)
        eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
        eigvals, eigvecs = eigvals.flip(0).clamp_min(0.0), eigvecs.flip(1)
        basis = eigvecs[:, :latent_channels].T.clone()  # (K, D)
        signs = torch.sign(basis.gather(1, basis.abs().argmax(1, keepdim=True)))  # deterministic orientation
        basis = basis * signs
        std = eigvals[:latent_channels].sqrt().clamp_min(1e-6)
        vae = cls(
            in_channels=in_channels,
            scale_factor_spatial=scale_factor_spatial,
            latent_channels=latent_channels,
            latents_mean=[0.0] * latent_channels,
            latents_std=[round(float(v), 6) for v in std],
        )
        vae.basis.copy_(basis.float())
        vae.block_mean.copy_(mean.float())
        explained = (eigvals.cumsum(0) / eigvals.sum().clamp_min(1e-12))[:latent_channels].float()
        return vae, explained

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> EncoderOutput | tuple[PointDistribution]:
        """(B, C, T, H, W) pixels in [-1, 1] -> latent_dist over (B, z_dim, T, H/s, W/s)."""
        s = self.config.scale_factor_spatial
        b, c, t, h, w = x.shape
        if h % s or w % s:
            raise ValueError(f"frame size {h}x{w} is not a multiple of the spatial factor {s}")
        z = x.reshape(b, c, t, h // s, s, w // s, s)  # (B, C, T, H/s, s, W/s, s)
        z = z.permute(0, 1, 4, 6, 2, 3, 5).reshape(b, c * s * s, t, h // s, w // s)  # (B, C*s*s, T, H/s, W/s)
        if self.config.latent_channels is not None:
            z = z - self.block_mean.to(z.dtype).view(1, -1, 1, 1, 1)
            z = torch.einsum("kd,bdthw->bkthw", self.basis.to(z.dtype), z)  # (B, K, T, H/s, W/s)
        dist = PointDistribution(z)
        return EncoderOutput(dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple[torch.Tensor]:
        """(B, z_dim, T, h, w) latents -> (B, C, T, h*s, w*s) pixels."""
        s = self.config.scale_factor_spatial
        if self.config.latent_channels is not None:
            z = torch.einsum("kd,bkthw->bdthw", self.basis.to(z.dtype), z)
            z = z + self.block_mean.to(z.dtype).view(1, -1, 1, 1, 1)
        b, zc, t, h, w = z.shape
        c = zc // (s * s)
        x = z.reshape(b, c, s, s, t, h, w).permute(0, 1, 4, 5, 2, 6, 3)  # (B, C, T, h, s, w, s)
        x = x.reshape(b, c, t, h * s, w * s)
        return DecoderOutput(x) if return_dict else (x,)
