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
