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
    from wildactor.diffusion.flow import flow_loss, model_timestep, noisy_latents, sample_timesteps

    sc = cfg.schedule
    if "video_latents" in batch:
        z0 = batch["video_latents"].to(device)  # (B, C, F, H', W')
        refs = batch["reference_latents"].to(device)  # (B, C, R, h', w')
        text = batch["text_embeddings"].to(device)  # (B, L, D)
    else:
        z0 = encoder.encode_video(batch["video"].to(device))
        refs = encoder.encode_references(batch["references"].to(device))
        text = encoder.encode_text(batch["prompt"])
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
    pred = model(
        zt, model_timestep(t, sc.num_train_timesteps), text,
        reference_latents=refs if types else None, reference_types=types,
    ).sample  # fmt: skip
    weights = None
    if sc.loss_space == "raw_latent":
        from wildactor.diffusion.flow import raw_latent_channel_weights

        weights = raw_latent_channel_weights(encoder.vae.config.latents_std)
    return flow_loss(pred, z0, noise, t, sc.loss_weighting, weights)


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
