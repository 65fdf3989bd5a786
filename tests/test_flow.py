"""Rectified-flow math against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from wildactor.diffusion.flow import (
    euler_step,
    flow_loss,
    loss_weight,
    model_timestep,
    noisy_latents,
    sample_timesteps,
    sampling_sigmas,
    shift_timesteps,
    velocity_target,
)


def test_z_t_endpoints_are_data_and_noise():
    z0 = torch.randn(2, 4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(2, 4, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(noisy_latents(z0, eps, torch.zeros(2)), z0)
    assert torch.equal(noisy_latents(z0, eps, torch.ones(2)), eps)


def test_z_t_and_target_hand_values():
    z0 = torch.tensor([[2.0, -1.0], [0.0, 4.0]])
    eps = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    t = torch.tensor([0.25, 0.5])
    # row 0: 0.75*[2,-1] + 0.25*[0,1] = [1.5, -0.5]; row 1: 0.5*[0,4] + 0.5*[2,0] = [1, 2]
    assert torch.allclose(noisy_latents(z0, eps, t), torch.tensor([[1.5, -0.5], [1.0, 2.0]]))
    assert torch.equal(velocity_target(z0, eps), torch.tensor([[-2.0, 2.0], [2.0, -4.0]]))


def test_following_the_target_velocity_moves_z_t_to_z_s():
    z0 = torch.randn(3, 5)
    eps = torch.randn(3, 5)
    zt = noisy_latents(z0, eps, torch.full((3,), 0.8))
    zs = euler_step(zt, velocity_target(z0, eps), 0.8, 0.3)
    assert torch.allclose(zs, noisy_latents(z0, eps, torch.full((3,), 0.3)), atol=1e-6)


def test_loss_hand_value_uniform_and_weighted():
    z0 = torch.zeros(2, 2)
    eps = torch.ones(2, 2)
    pred = torch.tensor([[1.0, 3.0], [0.0, 1.0]])  # errors^2: [0, 4] -> 2 ; [1, 0] -> 0.5
    t = torch.tensor([0.5, 0.0])
    assert flow_loss(pred, z0, eps, t).item() == pytest.approx((2.0 + 0.5) / 2)
    # cosmap: w(0.5) = 2/(pi*0.5) = 4/pi, w(0) = 2/pi
    expected = (4 / math.pi * 2.0 + 2 / math.pi * 0.5) / 2
    assert flow_loss(pred, z0, eps, t, weighting="cosmap").item() == pytest.approx(expected)


def test_loss_is_zero_for_the_exact_velocity():
    z0, eps = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    assert flow_loss(eps - z0, z0, eps, torch.rand(2)).item() == 0.0


def test_loss_weights():
    t = torch.tensor([0.5, 0.1])
    assert torch.equal(loss_weight(t, "uniform"), torch.ones(2))
    # logit-normal density at 0.5 with mean 0, std 1: 1 / (sqrt(2 pi) * 0.25)
    assert loss_weight(t, "logit_normal")[0].item() == pytest.approx(1 / (math.sqrt(2 * math.pi) * 0.25))
    with pytest.raises(ValueError, match="unknown loss weighting"):
        loss_weight(t, "nope")


def test_shift_hand_values():
    t = torch.tensor([0.0, 0.5, 1.0, 0.2])
    assert torch.allclose(shift_timesteps(t, 1.0), t)
    # s = 3: 3*0.5 / (1 + 2*0.5) = 0.75; 3*0.2 / 1.4 = 0.428571...
    assert torch.allclose(shift_timesteps(t, 3.0), torch.tensor([0.0, 0.75, 1.0, 0.6 / 1.4]))
    with pytest.raises(ValueError):
        shift_timesteps(t, 0.0)


def test_timestep_samplers_are_seeded_and_in_range():
    for mode in ("uniform", "logit_normal"):
        a = sample_timesteps(4096, torch.Generator().manual_seed(3), mode=mode, shift=5.0)
        b = sample_timesteps(4096, torch.Generator().manual_seed(3), mode=mode, shift=5.0)
        assert torch.equal(a, b)
        assert a.min() >= 0 and a.max() <= 1
    uniform = sample_timesteps(20000, torch.Generator().manual_seed(0))
    assert uniform.mean().item() == pytest.approx(0.5, abs=0.01)
    # the shift moves mass towards high noise: median of shifted uniform = 5*0.5/3 = 0.8333
    shifted = sample_timesteps(20000, torch.Generator().manual_seed(0), shift=5.0)
    assert shifted.median().item() == pytest.approx(5 * 0.5 / 3, abs=0.01)
    logit = sample_timesteps(20000, torch.Generator().manual_seed(0), mode="logit_normal", logit_mean=1.0)
    assert torch.logit(logit).mean().item() == pytest.approx(1.0, abs=0.03)
    with pytest.raises(ValueError, match="unknown timestep sampler"):
        sample_timesteps(2, mode="beta")


def test_sampling_sigmas_match_the_diffusers_flow_scheduler():
    from diffusers import UniPCMultistepScheduler

    sched = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
    sched.set_timesteps(50)
    ours = sampling_sigmas(50, shift=5.0)
    assert ours.shape == (51,)
    assert ours[-1] == 0.0
    # diffusers nudges a first sigma of exactly 1 down by 1e-6 and stores float32
    assert torch.allclose(ours.float(), sched.sigmas.float(), atol=2e-6)
    assert torch.all(ours[1:] < ours[:-1])
    assert torch.equal(model_timestep(torch.tensor([0.25])), torch.tensor([250.0]))


def test_channel_weights_measure_the_error_in_raw_latents():
    from wildactor.diffusion.flow import flow_loss, raw_latent_channel_weights

    g = torch.Generator().manual_seed(0)
    std = torch.tensor([2.0, 0.5, 1.0])
    z0, noise, pred = (torch.randn(2, 3, 2, 4, 4, generator=g) for _ in range(3))
    t = torch.rand(2, generator=g)
    w = raw_latent_channel_weights(std)
    assert torch.allclose(w.mean(), torch.tensor(1.0))
    weighted = flow_loss(pred, z0, noise, t, channel_weights=w)
    scale = std.view(1, 3, 1, 1, 1)
    raw = flow_loss(pred * scale, z0 * scale, noise * scale, t) / (std**2).mean()  # same error, raw units
    torch.testing.assert_close(weighted, raw)
    with pytest.raises(ValueError, match="channel weights"):
        flow_loss(pred, z0, noise, t, channel_weights=torch.ones(4))
