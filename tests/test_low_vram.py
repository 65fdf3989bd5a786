"""Low-VRAM generation on CPU: offload modes give the frames of no offload; VAE tiling; 8-bit weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wildactor.default_model import build_tiny_pipeline, synthetic_example_actor
from wildactor.errors import WildActorError
from wildactor.low_vram import OFFLOAD_MODES, weight_bytes

CALL = dict(height=64, width=64, num_frames=5, num_inference_steps=2, max_sequence_length=16, seed=7)
FIRST = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _pipe():
    p = build_tiny_pipeline(0)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def plain_frames() -> np.ndarray:
    return _pipe()(["a man runs"], synthetic_example_actor(), image=FIRST, **CALL).frames[0]


@pytest.mark.parametrize(
    "mode",
    [
        "none",
        "model",
        "sequential",
        "group",
    ],
)
def test_offload_mode_generates_the_frames_of_no_offload(mode, plain_frames):
    pipe = _pipe()
    pipe.enable_offload(mode, device="cpu")
    if mode == "model":
        assert pipe.transformer._hf_hook is not None
    if mode == "group":
        from diffusers.hooks.group_offloading import _is_group_offload_enabled

        assert _is_group_offload_enabled(pipe.transformer)
    out = pipe(["a man runs"], synthetic_example_actor(), image=FIRST, **CALL)
    np.testing.assert_array_equal(out.frames[0], plain_frames)


def test_unknown_offload_mode_and_untileable_vae_are_one_line_errors():
    pipe = _pipe()
    with pytest.raises(WildActorError, match="unknown offload mode 'disk'"):
        pipe.enable_offload("disk")
    assert OFFLOAD_MODES == ("none", "model", "sequential", "group")
    from wildactor.model.pixel_vae import PixelShuffleVAE

    pipe.register_modules(vae=PixelShuffleVAE(scale_factor_spatial=2))
    with pytest.raises(WildActorError, match="PixelShuffleVAE has no tiled mode"):
        pipe.enable_vae_tiling()


def test_vae_tiling_decodes_large_frames_in_tiles_and_only_then():
    pipe = _pipe()
    latents = torch.randn(1, 4, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    whole = pipe.decode_latents(latents)
    calls = []
    tiled_decode = pipe.vae.tiled_decode

    def counting(*args, **kwargs):
        calls.append(1)
        return tiled_decode(*args, **kwargs)

    pipe.vae.tiled_decode = counting
    pipe.enable_vae_tiling(
        tile_sample_min_height=64,
        tile_sample_min_width=64,
        tile_sample_stride_height=48,
        tile_sample_stride_width=48,
    )
    tiled = pipe.decode_latents(latents)  # 128x128 frames: 3x3 overlapping tiles
    assert calls == [1] and tiled.shape == whole.shape == (1, 3, 5, 128, 128)
    assert not torch.equal(tiled, whole)  # seams are blended (a random VAE shows them plainly)
    small = pipe.decode_latents(latents[..., :4, :4])  # 64x64 frames fit in one tile: decoded whole
    assert calls == [1] and small.shape == (1, 3, 5, 64, 64)
    pipe.vae.disable_tiling()
    torch.testing.assert_close(pipe.decode_latents(latents), whole, rtol=0, atol=0)


@pytest.mark.parametrize("weights", ["int8", "fp8"])
def test_eight_bit_weights_keep_the_reference_lora_and_stay_close(weights):
    pytest.importorskip("optimum.quanto")
    from optimum.quanto import QLinear

    refs = synthetic_example_actor()
    full = _pipe()
    call = {**CALL, "output_type": "latent"}
    expected = full(["a man runs"], refs, **call).frames[0]
    small = _pipe()
    before = weight_bytes(small.transformer)
    small.quantize_transformer(weights)
    assert isinstance(small.transformer.blocks[0].attn1.to_q, QLinear)
    assert isinstance(small.transformer.blocks[0].ffn.net[2], QLinear)
    assert all(
        type(m) is torch.nn.Linear
        for block in small.transformer.blocks
        for m in block.reference_lora.modules()
        if "Linear" in type(m).__name__
    )
    assert weight_bytes(small.transformer) < before
    got = small(["a man runs"], refs, **call).frames[0]
    # Rounded weights, same model: the latent moves by a few percent of its scale, not more.
    assert (got - expected).abs().mean() < 0.1 * expected.abs().mean()
    assert not torch.equal(got, expected)
