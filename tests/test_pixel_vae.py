"""The pixel-space stand-in VAE is an exact, invertible space-to-depth with AutoencoderKLWan's interface."""

import pytest
import torch

from wildactor.model.pixel_vae import PixelShuffleVAE


def test_encode_decode_is_lossless_and_shapes_follow_the_factor():
    vae = PixelShuffleVAE(scale_factor_spatial=4)
    x = torch.rand(2, 3, 5, 64, 32) * 2 - 1
    z = vae.encode(x).latent_dist.mode()
    assert z.shape == (2, 48, 5, 16, 8) and vae.config.z_dim == 48
    assert torch.equal(vae.decode(z).sample, x)
    assert torch.equal(z[:, 1], x[:, 0, :, 0::4, 1::4])  # channel (c=0, dy=0, dx=1)


def test_config_round_trip_and_checks(tmp_path):
    vae = PixelShuffleVAE(scale_factor_spatial=2, latents_mean=[0.5] * 12, latents_std=[2.0] * 12)
    vae.save_pretrained(tmp_path)
    again = PixelShuffleVAE.from_pretrained(tmp_path)
    assert again.config.z_dim == 12 and again.config.latents_mean == [0.5] * 12
    with pytest.raises(ValueError, match="multiple of the spatial factor"):
        vae.encode(torch.zeros(1, 3, 1, 7, 8))
    with pytest.raises(ValueError, match="z_dim=12"):
        PixelShuffleVAE(scale_factor_spatial=2, latents_std=[1.0] * 3)


def test_pca_projection_keeps_the_principal_blocks_and_round_trips(tmp_path):
    # Videos whose 2x2 blocks live in a 3-dimensional subspace (per-colour constant blocks): K = 3 is exact,
    # K = 2 is not, and the latents come out with the recorded per-channel std.
    g = torch.Generator().manual_seed(0)
    videos = [torch.rand(3, 2, 4, 4, generator=g).repeat_interleave(2, 2).repeat_interleave(2, 3) * 2 - 1]
    videos = [v[:, :, :8, :8] for v in videos * 3]
    vae, explained = PixelShuffleVAE.fit_pca(videos, latent_channels=3, scale_factor_spatial=2)
    assert vae.config.z_dim == 3 and explained[-1].item() > 0.999
    z = vae.encode(videos[0][None]).latent_dist.mode()
    assert z.shape == (1, 3, 2, 4, 4)
    assert torch.allclose(vae.decode(z).sample, videos[0][None], atol=1e-5)
    torch.testing.assert_close(torch.mm(vae.basis, vae.basis.T), torch.eye(3), atol=1e-5, rtol=0)
    std = z.movedim(1, -1).reshape(-1, 3).std(0, unbiased=False)
    torch.testing.assert_close(std, torch.tensor(vae.config.latents_std), atol=1e-3, rtol=1e-3)
    lossy, explained2 = PixelShuffleVAE.fit_pca(videos, latent_channels=2, scale_factor_spatial=2)
    assert explained2[-1].item() < 0.999
    err = (
        (lossy.decode(lossy.encode(videos[0][None]).latent_dist.mode()).sample - videos[0][None]).abs().max()
    )
    assert err > 1e-2
    vae.save_pretrained(tmp_path)  # the basis and block mean are weights: they survive save / load
    again = PixelShuffleVAE.from_pretrained(tmp_path)
    assert torch.equal(again.basis, vae.basis) and torch.equal(again.block_mean, vae.block_mean)
    assert torch.equal(again.encode(videos[0][None]).latent_dist.mode(), z)
    with pytest.raises(ValueError, match="latent_channels"):
        PixelShuffleVAE(scale_factor_spatial=2, latent_channels=13)
