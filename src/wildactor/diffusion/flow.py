"""Rectified flow as small pure functions, shared by the trainer and the sampler.

Convention (the paper's, and Wan's): ``t`` in [0, 1] is the noise level,

    z_t = (1 - t) z_0 + t eps,        v* = dz_t/dt = eps - z_0,

and the loss is ``E_t[ w(t) ||v_theta(z_t, t) - (eps - z_0)||^2 ]``. The network sees
``t * num_train_timesteps`` (Wan: 1000). Training and inference use the same shift
``t' = s t / (1 + (s - 1) t)``, which moves mass to high noise for large videos (Wan2.2-TI2V-5B: s = 5).
"""

from __future__ import annotations

import math

import torch

TIMESTEP_SAMPLERS: tuple[str, ...] = ("uniform", "logit_normal")
LOSS_WEIGHTINGS: tuple[str, ...] = ("uniform", "cosmap", "logit_normal")


def _expand(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) with the rank of ``like``."""
    return t.reshape(t.shape[0], *([1] * (like.ndim - 1))).to(like.dtype)


def noisy_latents(z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """z_t = (1 - t) z_0 + t eps, with ``t`` of shape (B,) broadcast over the other axes."""
    tt = _expand(t, z0)
    return (1.0 - tt) * z0 + tt * noise


def velocity_target(z0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The regression target v* = eps - z_0."""
    return noise - z0


def shift_timesteps(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Time shift t' = s t / (1 + (s - 1) t); s = 1 is the identity, s > 1 favours high noise."""
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    return shift * t / (1.0 + (shift - 1.0) * t)


def sample_timesteps(
    batch_size: int,
    generator: torch.Generator | None = None,
    mode: str = "uniform",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    shift: float = 1.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Training noise levels t in (0, 1), shape (B,), float32.

    ``uniform``: t ~ U(0, 1); ``logit_normal`` (SD3): t = sigmoid(n), n ~ N(mean, std). Then the shift.
    """
    if mode == "uniform":
        t = torch.rand(batch_size, generator=generator, device=device)
    elif mode == "logit_normal":
        n = torch.randn(batch_size, generator=generator, device=device)
        t = torch.sigmoid(logit_mean + logit_std * n)
    else:
        raise ValueError(
            f"unknown timestep sampler {mode!r} (expected one of {', '.join(TIMESTEP_SAMPLERS)})"
        )
    return shift_timesteps(t, shift)


def loss_weight(
    t: torch.Tensor, weighting: str = "uniform", logit_mean: float = 0.0, logit_std: float = 1.0
) -> torch.Tensor:
    """w(t), shape of ``t``.

    ``uniform``: 1. ``cosmap`` (SD3): 2 / (pi (1 - 2t + 2t^2)), the density that makes a uniform draw of t
    act like a cosine schedule. ``logit_normal``: the logit-normal density at t, i.e. importance weights
    that emphasise mid-range noise without changing how t is drawn.
    """
    if weighting == "uniform":
        return torch.ones_like(t)
    if weighting == "cosmap":
        return 2.0 / (math.pi * (1.0 - 2.0 * t + 2.0 * t * t))
    if weighting == "logit_normal":
        tc = t.clamp(1e-6, 1.0 - 1e-6)
        logit = torch.log(tc / (1.0 - tc))
        z = (logit - logit_mean) / logit_std
        return torch.exp(-0.5 * z * z) / (logit_std * math.sqrt(2.0 * math.pi) * tc * (1.0 - tc))
    raise ValueError(f"unknown loss weighting {weighting!r} (expected one of {', '.join(LOSS_WEIGHTINGS)})")


def flow_loss(
    prediction: torch.Tensor,
    z0: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    weighting: str = "uniform",
    channel_weights: torch.Tensor | None = None,
    sample_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scalar loss mean_b[ w(t_b) * mean(||v_b - (eps_b - z0_b)||^2) ], computed in fp32.

    ``channel_weights`` (C,), if given, weight the squared error of each latent channel (axis 1), e.g.
    `raw_latent_channel_weights` to measure the error in the VAE's unnormalised latent space. ``sample_scale``
    (B,) multiplies each sample's mean, e.g. to average over the frames that count when some are excluded.
    """
    err = (prediction.float() - velocity_target(z0.float(), noise.float())) ** 2
    if channel_weights is not None:
        if channel_weights.numel() != err.shape[1]:
            raise ValueError(f"{channel_weights.numel()} channel weights for {err.shape[1]} latent channels")
        err = err * channel_weights.float().to(err.device).view(1, -1, *([1] * (err.ndim - 2)))
    per_sample = err.reshape(err.shape[0], -1).mean(dim=1)  # (B,)
    if sample_scale is not None:
        per_sample = per_sample * sample_scale.float().to(per_sample.device)
    return (loss_weight(t.float(), weighting) * per_sample).mean()


def raw_latent_channel_weights(latents_std) -> torch.Tensor:
    """Weights std_c^2 / mean(std^2): with them the loss on normalised latents equals (up to one scale) the loss
    on the VAE's raw latents, so channels count by their variance instead of equally. For an orthonormal linear
    codec (`PixelShuffleVAE` with ``latent_channels``) that is the pixel-space error of the kept components."""
    var = torch.as_tensor(latents_std, dtype=torch.float32) ** 2
    return var / var.mean()


def model_timestep(t: torch.Tensor, num_train_timesteps: int = 1000) -> torch.Tensor:
    """The timestep the transformer sees: t * num_train_timesteps (Wan's convention)."""
    return t * num_train_timesteps


def sampling_sigmas(num_steps: int, shift: float = 1.0, num_train_timesteps: int = 1000) -> torch.Tensor:
    """Inference noise levels, shape (num_steps + 1,), from ~1 down to a final 0, float64.

    The same grid as diffusers' flow schedulers with ``flow_shift=shift`` (linspace(1, 1/N) then the shift),
    so a pipeline stepping these sigmas sees the noise levels the model was trained with.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    base = torch.linspace(1.0, 1.0 / num_train_timesteps, num_steps + 1, dtype=torch.float64)[:-1]
    sigmas = shift_timesteps(base, shift)
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def euler_step(z: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One Euler step of dz/dt = v from noise level ``sigma`` to ``sigma_next``."""
    return z + (sigma_next - sigma) * velocity
