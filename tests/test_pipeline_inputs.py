"""The inputs diffusers users pass to Wan pipelines, on WildActorPipeline; loading through DiffusionPipeline;
text-only generation from a stock Wan folder; reference_fit."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch

from wildactor.default_model import TINY_TRANSFORMER_CONFIG, build_tiny_pipeline, synthetic_example_actor
from wildactor.diffusion.prompts import WAN_NEGATIVE_PROMPT, clean_prompt
from wildactor.errors import WildActorError
from wildactor.pipeline import WildActorPipeline

CALL = dict(height=64, width=64, num_frames=5, num_inference_steps=2, max_sequence_length=16, seed=7)


@pytest.fixture(scope="module")
def pipe() -> WildActorPipeline:
    p = build_tiny_pipeline(0, max_sequence_length=16)
    p.set_progress_bar_config(disable=True)
    return p


def test_prompt_embeds_give_the_frames_of_the_prompts(pipe):
    refs = synthetic_example_actor()
    by_text = pipe(["a man runs", "he stops"], refs, negative_prompt="blurry", **CALL)
    embeds = pipe.encode_prompts(["a man runs", "he stops", "blurry"])
    by_embeds = pipe(prompt_embeds=embeds[:2], negative_prompt_embeds=embeds[2:], references=refs, **CALL)
    for a, b in zip(by_text.frames, by_embeds.frames):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="prompts or prompt_embeds, not both"):
        pipe("a", prompt_embeds=embeds[:1], **CALL)


def test_callback_on_step_end_sees_every_step_and_can_replace_the_latents(pipe):
    seen = []

    def callback(p, step, t, tensors):
        seen.append((step, int(t), sorted(tensors)))
        return {"latents": torch.zeros_like(tensors["latents"])} if step == 1 else {}

    out = pipe(
        "a man runs",
        output_type="latent",
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"],
        **CALL,
    )
    assert [s for s, _, _ in seen] == [0, 1] and seen[0][1] > seen[1][1]
    assert seen[0][2] == ["latents", "prompt_embeds"]
    assert torch.count_nonzero(out.frames[0]) == 0  # the replaced latents are the result
    with pytest.raises(ValueError, match="not in"):
        pipe("a", callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["noise"], **CALL)


def test_num_videos_per_prompt_and_given_latents(pipe):
    one = pipe(["a man runs", "he stops"], output_type="latent", **CALL).frames
    two = pipe(["a man runs", "he stops"], output_type="latent", num_videos_per_prompt=2, **CALL).frames
    assert len(two) == 4 and all(f.shape == (1, 4, 2, 4, 4) for f in two)
    # Video 0 of each prompt starts from that prompt's single-video noise; video 1 from fresh noise.
    torch.testing.assert_close(two[0], one[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(two[2], one[1], rtol=0, atol=1e-5)
    assert not torch.allclose(two[0], two[1], atol=1e-2)
    noise = torch.randn(2, 4, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    given = pipe(["a", "b"], output_type="latent", latents=noise, **{**CALL, "seed": None}).frames
    again = pipe(["a", "b"], output_type="latent", latents=noise, **{**CALL, "seed": None}).frames
    torch.testing.assert_close(given[1], again[1], rtol=0, atol=0)
    with pytest.raises(ValueError, match="latents must have shape"):
        pipe(["a"], latents=noise, **CALL)


def test_prompt_cleaning_is_wans():
    assert clean_prompt("  a  man &amp;amp; his\n dog ") == "a man & his dog"
    assert clean_prompt("cafÃ©") == "café"  # mis-decoded UTF-8 repaired (ftfy)


def test_cleaned_prompts_give_the_same_video(pipe):
    tidy = pipe("a man & his dog", output_type="latent", **CALL).frames[0]
    messy = pipe("  a   man &amp; his\tdog ", output_type="latent", **CALL).frames[0]
    torch.testing.assert_close(messy, tidy, rtol=0, atol=0)
    raw = pipe("  a   man &amp; his\tdog ", output_type="latent", clean_prompts=False, **CALL).frames[0]
    assert not torch.equal(raw, tidy)


def _stock_wan_folder(pipe: WildActorPipeline, root):
    """A diffusers Wan2.2 folder as released: stock transformer, `WanPipeline` model index."""
    from diffusers import WanTransformer3DModel

    pipe.save_pretrained(root)
    shutil.rmtree(root / "transformer")
    base = {k: v for k, v in TINY_TRANSFORMER_CONFIG.items() if k != "lora_rank"}
    stock = WanTransformer3DModel(**base)
    stock.load_state_dict(
        {k: v for k, v in pipe.transformer.state_dict().items() if ".reference_lora." not in k}
    )
    stock.save_pretrained(root / "transformer")
    index = json.loads((root / "model_index.json").read_text())
    for key in ("negative_prompt", "reference_fit", "max_sequence_length"):
        index.pop(key)
    index.update(
        _class_name="WanPipeline", transformer=["diffusers", "WanTransformer3DModel"], expand_timesteps=True
    )
    (root / "model_index.json").write_text(json.dumps(index))
    return stock


def test_text_only_generation_from_a_stock_wan_folder_is_diffusers_wan(pipe, tmp_path):
    from diffusers import WanPipeline

    stock = _stock_wan_folder(pipe, tmp_path / "wan")
    loaded = WildActorPipeline.from_pretrained(tmp_path / "wan", transformer_kwargs={"lora_rank": 4})
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.negative_prompt == WAN_NEGATIVE_PROMPT and loaded.config.reference_fit == "pad"
    embeds = loaded.encode_prompts(["a man runs", WAN_NEGATIVE_PROMPT], 16)
    noise = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    call = dict(height=64, width=64, num_frames=5, num_inference_steps=2, output_type="latent", latents=noise)
    ours = loaded(prompt_embeds=embeds[:1], negative_prompt_embeds=embeds[1:], **call).frames[0]
    wan = WanPipeline(
        tokenizer=loaded.tokenizer,
        text_encoder=loaded.text_encoder,
        vae=loaded.vae,
        scheduler=copy.deepcopy(loaded.scheduler),
        transformer=stock.eval(),
    )
    wan.set_progress_bar_config(disable=True)
    expected = wan(prompt_embeds=embeds[:1], negative_prompt_embeds=embeds[1:], **call).frames
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    # Without arguments the pipeline uses Wan's negative prompt, as WanPipeline's users expect.
    out = loaded("a man runs", **{**CALL, "num_inference_steps": 1})
    assert out.settings["negative_prompt"] == WAN_NEGATIVE_PROMPT


def test_diffusion_pipeline_from_pretrained_loads_a_saved_wildactor_folder(pipe, tmp_path):
    from diffusers import DiffusionPipeline

    pipe.save_pretrained(tmp_path / "m")
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "m", trust_remote_code=True)
    assert type(loaded) is WildActorPipeline
    assert loaded.config.max_sequence_length == 16 and loaded.config.reference_fit == "pad"
    loaded.set_progress_bar_config(disable=True)
    refs = synthetic_example_actor()
    expected = pipe("a man runs", refs, output_type="latent", **CALL).frames[0]
    got = loaded("a man runs", refs, output_type="latent", **CALL).frames[0]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert WildActorPipeline.from_pretrained(tmp_path / "m").config.negative_prompt == ""


def test_reference_fit_stretch_fills_the_frame_and_is_saved(pipe, tmp_path):
    from wildactor.pipeline import Reference

    tall = np.random.default_rng(1).integers(0, 200, (96, 40, 3), dtype=np.uint8)  # no white in it
    refs = [Reference(tall, "body")]
    padded = pipe("a man runs", refs, output_type="latent", **CALL)
    stretched = pipe("a man runs", refs, output_type="latent", reference_fit="stretch", **CALL)
    body_pad, body_stretch = (np.asarray(out.reference_images[0]) for out in (padded, stretched))
    assert (body_pad[:, :4] == 255).all() and not (body_stretch == 255).all(axis=-1).any()
    assert stretched.settings["reference_fit"] == "stretch" and padded.settings["reference_fit"] == "pad"
    assert not torch.equal(padded.frames[0], stretched.frames[0])
    with pytest.raises(WildActorError, match="unknown reference fit 'crop'"):
        pipe("a", refs, reference_fit="crop", **CALL)
    official = build_tiny_pipeline(0, max_sequence_length=16)
    official.register_to_config(reference_fit="stretch")
    official.save_pretrained(tmp_path / "m")
    assert WildActorPipeline.from_pretrained(tmp_path / "m").config.reference_fit == "stretch"


def test_training_references_are_fitted_as_the_pipeline_fits_them(pipe, tmp_path):
    from PIL import Image

    from wildactor.data.dataset import ClipSpec, load_reference
    from wildactor.pipeline import Reference

    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (90, 50, 3), dtype=np.uint8)).save(tmp_path / "r.png")
    for fit in ("pad", "stretch"):
        images, _ = pipe.prepare_references([Reference(tmp_path / "r.png")], 64, 96, fit)
        ours = torch.from_numpy(np.asarray(images[0]).copy()).permute(2, 0, 1).float() / 127.5 - 1.0
        torch.testing.assert_close(ours, load_reference(tmp_path / "r.png", 64, 96, fit), rtol=0, atol=0)
    assert ClipSpec().reference_fit == "pad"
    with pytest.raises(ValueError, match="reference_fit must be one of"):
        ClipSpec(reference_fit="crop")
