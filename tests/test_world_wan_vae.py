"""`wildactor world fit-vae --kind wan`: a real AutoencoderKLWan at toy width, Wan's 4x temporal compression,
exact resume, a folder the pipeline's loader reads, and codec evaluation against real frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wildactor.cli import main as cli_main
from wildactor.world.make import WorldConfig, make_world
from wildactor.world.vae_training import (
    WanVAEFitConfig,
    from_pixels,
    latest_checkpoint,
    load_world_pixels,
    to_pixels,
    train_wan_vae,
)

TOY = dict(base_dim=4, z_dim=4, crop=16, clip_batch=2, image_batch=2, warmup_steps=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    make_world(
        WorldConfig(actors=3, clips_per_actor=1, num_frames=9, size=32, ref_size=32, heldout_fraction=0.34),
        out,
        progress=False,
    )
    return out


def test_fitted_codec_is_a_wan_vae_with_4x_time_and_measured_latent_scale(world, tmp_path):
    from diffusers import AutoencoderKLWan

    from wildactor.diffusion.encode import load_vae

    pixels = load_world_pixels(world, "train")
    cfg = WanVAEFitConfig(**TOY, steps=2, checkpoint_every=2)
    train_wan_vae(cfg, pixels, tmp_path / "vae", progress=False)
    vae = load_vae(tmp_path / "vae")
    assert isinstance(vae, AutoencoderKLWan)
    x = to_pixels(pixels.clips[:1])  # (1, 3, 9, 32, 32)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        y = vae.decode(z).sample
    assert tuple(z.shape) == (1, 4, 3, 8, 8)  # 9 frames -> 1 + 8/4; 32 px -> 8
    assert tuple(y.shape) == tuple(x.shape)
    std = np.array(vae.config.latents_std)
    assert std.shape == (4,) and (std > 0).all() and not np.allclose(std, 1.0)
    log = json.loads((tmp_path / "vae" / "fit_vae.json").read_text())["log"]
    assert [row["step"] for row in log] == [2]


def test_resumed_training_matches_an_uninterrupted_run_bit_for_bit(world, tmp_path):
    pixels = load_world_pixels(world, "train")
    straight = WanVAEFitConfig(**TOY, steps=2, checkpoint_every=1)
    train_wan_vae(straight, pixels, tmp_path / "a", progress=False)
    train_wan_vae(WanVAEFitConfig(**TOY, steps=1, checkpoint_every=1), pixels, tmp_path / "b", progress=False)
    assert latest_checkpoint(tmp_path / "b").name == "step-000001"
    train_wan_vae(straight, pixels, tmp_path / "b", progress=False)  # resumes at step 1
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "a" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_architecture(world, tmp_path):
    from wildactor.errors import WildActorError

    pixels = load_world_pixels(world, "train")
    train_wan_vae(WanVAEFitConfig(**TOY, steps=1, checkpoint_every=1), pixels, tmp_path, progress=False)
    other = {**TOY, "z_dim": 8}
    with pytest.raises(WildActorError, match="other settings"):
        train_wan_vae(WanVAEFitConfig(**other, steps=2), pixels, tmp_path, progress=False)


def test_pixels_round_trip_exactly():
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, size=(2, 5, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(from_pixels(to_pixels(clips)), clips)


@pytest.mark.parametrize(
    "bad", [dict(clip_frames=4), dict(crop=30), dict(temperal_downsample=(True,)), dict(lr=0.0)]
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        WanVAEFitConfig(**bad)


def test_cli_fit_vae_wan_without_a_world_is_one_error_line(tmp_path, capsys):
    code = cli_main(
        ["world", "fit-vae", "--kind", "wan", "--data", str(tmp_path), "--out", str(tmp_path / "v")]
    )
    err = capsys.readouterr().err
    assert (
        code != 0 and err.startswith("error:") and "world make" in err and len(err.strip().splitlines()) == 1
    )
