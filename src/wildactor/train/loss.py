"""The training objective: rectified-flow loss of one batch, the learning-rate curve, a fixed evaluation loss."""

from __future__ import annotations

from typing import Any

from wildactor.train.config import ScheduleConfig, TrainConfig


def flow_matching_loss(
    model, encoder, batch: dict[str, Any], cfg: TrainConfig, device, null_text: Any = None
) -> Any:
    """Encode the batch (or read cached latents), noise it per sample, predict the velocity, weighted MSE.

    Noise, timestep and condition dropout of each sample are seeded by (seed, stream position), so they do
    not depend on which process or micro-batch the sample lands in. ``null_text`` (1, L, D): the empty
    prompt's embedding, used by ``schedule.text_dropout`` (encoded here when not given).
    """
    import torch

    from wildactor.data.dataset import seed_for
    from wildactor.diffusion.flow import (
        flow_loss,
        model_timestep,
        noisy_latents,
        sample_timesteps,
        velocity_target,
    )
    from wildactor.diffusion.prompts import clean_prompt

    sc = cfg.schedule
    if "video_latents" in batch:
        z0 = batch["video_latents"].to(device)  # (B, C, F, H', W')
        refs = batch["reference_latents"].to(device)  # (B, C, R, h', w')
        text = batch["text_embeddings"].to(device)  # (B, L, D)
    else:
        z0 = encoder.encode_video(batch["video"].to(device))
        refs = encoder.encode_references(batch["references"].to(device))
        text = encoder.encode_text([clean_prompt(p) for p in batch["prompt"]])  # as the pipeline encodes
    noise, t = [], []
    for position in batch["position"].tolist():
        g = torch.Generator().manual_seed(seed_for(cfg.seed, position, 3))
        t.append(sample_timesteps(1, g, sc.timestep_sampling, sc.logit_mean, sc.logit_std, sc.shift))
        noise.append(torch.randn(z0.shape[1:], generator=g))
    t = torch.cat(t).to(device)  # (B,)
    noise = torch.stack(noise).to(device)  # (B, C, F, H', W')
    zt = noisy_latents(z0, noise, t)
    types = batch["reference_types"] or None
    positions = batch["position"].tolist()
    if sc.text_dropout > 0:
        drop = torch.tensor(
            [_coin(seed_for(cfg.seed, p, 4), sc.text_dropout) for p in positions], device=device
        )
        if drop.any():
            if null_text is None:
                null_text = encoder.encode_text([""])
            text = torch.where(drop.view(-1, 1, 1), null_text.to(device, text.dtype), text)  # (B, L, D)
    if (
        sc.reference_dropout > 0
        and types
        and _coin(seed_for(cfg.seed, positions[0], 5), sc.reference_dropout)
    ):
        types = None  # one reference count per batch: the whole batch goes without
    timestep = model_timestep(t, sc.num_train_timesteps)  # (B,)
    first = None
    if sc.first_frame_probability > 0:
        first = torch.tensor(
            [_coin(seed_for(cfg.seed, p, 6), sc.first_frame_probability) for p in positions], device=device
        )  # (B,) bool: these samples are image-to-video
        if first.any():
            zt, timestep = first_frame_condition(zt, z0, timestep, first, model_patch_size(model))
    pred = model(
        zt, timestep, text, reference_latents=refs if types else None, reference_types=types,
    ).sample  # fmt: skip
    weights = None
    if sc.loss_space == "raw_latent":
        from wildactor.diffusion.flow import raw_latent_channel_weights

        weights = raw_latent_channel_weights(encoder.vae.config.latents_std)
    if first is not None and first.any():  # the clean first frame is given, not predicted: no loss on it
        keep = torch.ones_like(z0[:, :1, :, :1, :1])  # (B, 1, F, 1, 1)
        keep[first, :, 0] = 0.0
        frames = keep.sum(dim=2, keepdim=True)  # (B, 1, 1, 1, 1): frames that count, per sample
        scale = z0.shape[2] / frames
        pred = torch.where(keep.bool(), pred, velocity_target(z0, noise).to(pred.dtype))
        return flow_loss(pred, z0, noise, t, sc.loss_weighting, weights, sample_scale=scale.flatten())
    return flow_loss(pred, z0, noise, t, sc.loss_weighting, weights)


def model_patch_size(model) -> tuple[int, int, int]:
    """The transformer's patch size through any wrapper (DDP, FSDP)."""
    inner = getattr(model, "module", model)
    return tuple(inner.config.patch_size)


def first_frame_condition(zt, z0, timestep, mask, patch_size):
    """Wan2.2 TI2V's image-to-video sample: for samples in ``mask`` the first latent frame of ``zt`` is the clean
    ``z0`` frame and its tokens get timestep 0; per-token timesteps (B, F'*H'*W') for the whole batch."""

    p_t, p_h, p_w = patch_size
    b, _, f, h, w = zt.shape
    grid = (f // p_t, h // p_h, w // p_w)
    zt = zt.clone()
    zt[mask, :, :p_t] = z0[mask, :, :p_t].to(zt.dtype)
    per_token = timestep.view(b, 1, 1, 1).expand(b, *grid).clone()  # (B, F', H', W')
    per_token[mask, 0] = 0.0
    return zt, per_token.flatten(1)  # (B, S)


def learning_rate(step: int, base: float, schedule: ScheduleConfig) -> float:
    """The rate of optimizer step ``step`` (0-based): linear warm-up, constant, then linear decay to 0 over the
    last ``decay_steps`` of ``schedule.max_steps`` (not of a --max-steps override: a run stopped early and
    resumed follows the same curve)."""
    rate = base
    if schedule.warmup_steps:
        rate *= min(1.0, (step + 1) / schedule.warmup_steps)
    if schedule.decay_steps:
        rate *= min(1.0, max(0.0, (schedule.max_steps - step) / schedule.decay_steps))
    return rate


def _coin(seed: int, p: float) -> bool:
    import torch

    return bool(torch.rand(1, generator=torch.Generator().manual_seed(seed)).item() < p)


def evaluation_loss(model, encoder, dataset, cfg: TrainConfig, positions: list[int], device="cpu") -> float:
    """Mean flow loss over fixed stream positions: fixed clips, references, noise and timesteps, so values
    are comparable between checkpoints of one run (an overfit check, or a validation curve)."""
    import torch

    from wildactor.data.dataset import collate

    was_training = model.training
    model.eval()
    with torch.no_grad():
        losses = [
            flow_matching_loss(model, encoder, collate([dataset[p]]), cfg, device).item() for p in positions
        ]
    model.train(was_training)
    return sum(losses) / len(losses)
