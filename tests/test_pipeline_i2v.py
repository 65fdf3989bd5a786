"""Image-to-video (Wan2.2 TI2V, expand_timesteps) against diffusers' own Wan pipelines, and shot chaining."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from wildactor.default_model import TINY_TRANSFORMER_CONFIG, build_tiny_pipeline, synthetic_example_actor
from wildactor.pipeline import WildActorPipeline, last_frame

SIZE = dict(height=64, width=64, num_frames=5)
# The same model in fp32 through two code paths: only the order of float operations may differ.
TOLERANCE = dict(rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def pipe() -> WildActorPipeline:
    p = build_tiny_pipeline(0)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def first_image() -> Image.Image:
    rng = np.random.default_rng(5)
    smooth = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(smooth).resize((64, 64), Image.Resampling.BICUBIC)


def _stock_wan(pipe: WildActorPipeline):
    """diffusers' WanTransformer3DModel with the pipeline transformer's base weights (no reference LoRA)."""
    from diffusers import WanTransformer3DModel

    base = {k: v for k, v in TINY_TRANSFORMER_CONFIG.items() if k != "lora_rank"}
    stock = WanTransformer3DModel(**base).eval()
    state = {k: v for k, v in pipe.transformer.state_dict().items() if ".reference_lora." not in k}
    stock.load_state_dict(state, strict=True)
    return stock


def _inputs(pipe: WildActorPipeline, steps: int = 3) -> dict:
    gen = torch.Generator().manual_seed(11)
    return dict(
        prompt_embeds=pipe.encode_prompts(["a man walks to the door"], 16),
        negative_prompt_embeds=pipe.encode_prompts([""], 16),
        latents=torch.randn(1, 4, 2, 4, 4, generator=gen),
        num_inference_steps=steps,
        guidance_scale=4.0,
        output_type="latent",
        **SIZE,
    )


def _diffusers_pipeline(cls, pipe):
    """diffusers' own Wan pipeline (TI2V style, `expand_timesteps`) over the same weights as ``pipe``."""
    reference = cls(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        vae=pipe.vae,
        scheduler=copy.deepcopy(pipe.scheduler),
        transformer=_stock_wan(pipe),
        expand_timesteps=True,
    )
    reference.set_progress_bar_config(disable=True)
    return reference


def test_image_to_video_latents_match_diffusers_wan_image_to_video_pipeline(pipe, first_image):
    from diffusers import WanImageToVideoPipeline

    reference = _diffusers_pipeline(WanImageToVideoPipeline, pipe)
    inputs = _inputs(pipe)
    expected = reference(image=first_image, **inputs).frames
    ours = pipe(image=first_image, **inputs).frames[0]
    assert ours.shape == expected.shape == (1, 4, 2, 4, 4)
    torch.testing.assert_close(ours, expected, **TOLERANCE)
    # The first latent frame is the encoded image itself, and the rest was denoised away from the noise.
    torch.testing.assert_close(ours[:, :, :1], pipe.encode_first_frame(first_image, 64, 64), rtol=0, atol=0)
    assert not torch.allclose(ours[:, :, 1:], inputs["latents"][:, :, 1:], atol=1e-2)


def test_text_to_video_latents_match_diffusers_wan_pipeline_with_expand_timesteps(pipe):
    from diffusers import WanPipeline

    reference = _diffusers_pipeline(WanPipeline, pipe)
    inputs = _inputs(pipe)
    expected = reference(**inputs).frames
    ours = pipe(**inputs).frames[0]
    torch.testing.assert_close(ours, expected, **TOLERANCE)


def test_first_frame_tokens_get_timestep_zero_and_the_image_stays_clean(pipe, first_image, monkeypatch):
    seen = []
    forward = pipe.transformer.forward

    def recording(*args, **kwargs):
        if kwargs.get("video_shape") is None:  # a video pass (the reference stream runs through forward too)
            seen.append((kwargs["timestep"].clone(), kwargs["hidden_states"][:, :, 0].clone()))
        return forward(*args, **kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", recording)
    refs = synthetic_example_actor()
    out = pipe(
        ["a walk"], refs, image=first_image, seed=3, num_inference_steps=2, output_type="latent", **SIZE
    )
    condition = pipe.encode_first_frame(first_image, 64, 64)[:, :, 0]
    tokens_per_frame = (64 // 16 // 2) ** 2
    assert len(seen) == 4  # 2 steps x 2 guidance branches
    for timestep, frame0 in seen:
        assert timestep.shape == (1, 2 * tokens_per_frame)
        assert (timestep[:, :tokens_per_frame] == 0).all() and (timestep[:, tokens_per_frame:] > 0).all()
        torch.testing.assert_close(frame0, condition, rtol=0, atol=0)
    assert out.settings["image_conditioned"] == [True]


def test_first_decoded_frame_reconstructs_the_image(pipe, first_image):
    out = pipe(["a walk"], image=first_image, seed=3, num_inference_steps=2, **SIZE)
    first = out.frames[0][0].astype(np.float64)
    vae_only = pipe.decode_latents(pipe.encode_first_frame(first_image, 64, 64))[0, :, 0]
    vae_only = ((vae_only + 1) * 127.5).round().clamp(0, 255).permute(1, 2, 0).numpy()
    # The first frame is the VAE's reconstruction of the image, whatever the model does to the rest.
    np.testing.assert_array_equal(first, vae_only)


def test_chain_starts_each_shot_from_the_previous_shots_last_frame(pipe, first_image):
    prompts = ["she walks in", "she sits down", "she leaves"]
    chained = pipe(prompts, image=first_image, chain=True, seed=1, num_inference_steps=2, **SIZE)
    assert chained.settings["image_conditioned"] == [True, True, True]
    # Shot 2 alone, given shot 1's last frame as its image, is the chained shot 2.
    alone = pipe([prompts[1]], image=last_frame(chained.frames[0]), seed=[2], num_inference_steps=2, **SIZE)
    np.testing.assert_array_equal(alone.frames[0], chained.frames[1])
    unchained = pipe(prompts, image=first_image, seed=1, num_inference_steps=2, **SIZE)
    assert unchained.settings["image_conditioned"] == [True, False, False]
    np.testing.assert_array_equal(unchained.frames[0], chained.frames[0])
    assert not np.array_equal(unchained.frames[1], chained.frames[1])


def test_per_prompt_images_and_bad_image_lists(pipe, first_image):
    out = pipe(
        ["a", "b"], image=[None, first_image], seed=1, num_inference_steps=1, output_type="latent", **SIZE
    )
    assert out.settings["image_conditioned"] == [False, True]
    with pytest.raises(ValueError, match="1 images for 2 prompts"):
        pipe(["a", "b"], image=[first_image], seed=1, **SIZE)
    with pytest.raises(ValueError, match="num_videos_per_prompt=1"):
        pipe(["a"], image=first_image, chain=True, num_videos_per_prompt=2, seed=1, **SIZE)
