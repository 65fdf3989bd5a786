"""WildActorPipeline on tiny random components: reproducibility, the reference cache, loading, input checks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from wildactor.default_model import TINY_TRANSFORMER_CONFIG, build_tiny_pipeline, synthetic_example_actor
from wildactor.errors import WildActorError
from wildactor.pipeline import Reference, WildActorPipeline

CALL = dict(height=64, width=64, num_frames=5, num_inference_steps=2, max_sequence_length=16, seed=7)


@pytest.fixture(scope="module")
def pipe() -> WildActorPipeline:
    p = build_tiny_pipeline(0)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def refs() -> list[Reference]:
    face, body = synthetic_example_actor()
    return [face, body, Reference(np.asarray(body.load())[:, ::-1].copy(), "three_view")]


def _count_calls(monkeypatch, transformer):
    """Record every encode_references call and the reference arguments of every forward."""
    builds, forwards = [], []
    encode, forward = transformer.encode_references, transformer.forward

    def counting_encode(*args, **kwargs):
        cache = encode(*args, **kwargs)
        builds.append(cache)
        return cache

    def recording_forward(*args, **kwargs):
        forwards.append({k: kwargs.get(k) for k in ("reference_cache", "reference_latents", "video_shape")})
        return forward(*args, **kwargs)

    monkeypatch.setattr(transformer, "encode_references", counting_encode)
    monkeypatch.setattr(transformer, "forward", recording_forward)
    return builds, forwards


def test_saved_and_reloaded_pipeline_generates_identical_frames(pipe, refs, tmp_path):
    out = pipe(["a woman walks in the rain"], refs, **CALL)
    pipe.save_pretrained(tmp_path / "saved")
    reloaded = WildActorPipeline.from_pretrained(tmp_path / "saved")
    reloaded.set_progress_bar_config(disable=True)
    again = reloaded(["a woman walks in the rain"], refs, **CALL)
    frames = out.frames[0]
    assert frames.shape == (5, 64, 64, 3) and frames.dtype == np.uint8
    assert frames.std() > 1.0  # not a blank video
    np.testing.assert_array_equal(again.frames[0], frames)


def test_three_prompt_narrative_builds_reference_cache_once_and_reuses_it_everywhere(pipe, refs, monkeypatch):
    builds, forwards = _count_calls(monkeypatch, pipe.transformer)
    prompts = ["she enters the room", "she sits at the desk", "she looks out of the window"]
    out = pipe(prompts, refs, guidance_scale=5.0, **CALL)
    assert len(out.frames) == 3
    assert all(f.shape == (5, 64, 64, 3) for f in out.frames)
    assert len(builds) == 1
    # The reference stream runs through the model's own call once (so offloading hooks see it) ...
    streams = [f for f in forwards if f["video_shape"] is not None]
    assert len(streams) == 1
    # ... then 3 prompts x 2 steps x 2 CFG branches, every one with that same cache object and no raw latents
    video = [f for f in forwards if f["video_shape"] is None]
    assert len(video) == 3 * 2 * 2
    assert all(f["reference_cache"] is builds[0] and f["reference_latents"] is None for f in video)
    assert not np.array_equal(out.frames[0], out.frames[1])  # different prompts and seeds, different clips


def test_reference_cache_and_recomputed_references_give_identical_frames(pipe, refs):
    cached = pipe(["a man runs"], refs, use_reference_cache=True, **CALL)
    recomputed = pipe(["a man runs"], refs, use_reference_cache=False, **CALL)
    np.testing.assert_array_equal(cached.frames[0], recomputed.frames[0])
    no_refs = pipe(["a man runs"], None, **CALL)
    assert not np.array_equal(no_refs.frames[0], cached.frames[0])  # the references do condition the video


def test_no_cache_mode_reruns_the_reference_stream_in_every_forward(pipe, refs, monkeypatch):
    builds, forwards = _count_calls(monkeypatch, pipe.transformer)
    pipe(["a man runs"], refs, use_reference_cache=False, **CALL)
    assert len(forwards) == 4 and all(f["reference_latents"] is not None for f in forwards)
    assert builds == []  # no cache: each forward runs the reference stream inside its block calls


def test_reference_guidance_adds_one_branch_without_references(pipe, refs, monkeypatch):
    builds, forwards = _count_calls(monkeypatch, pipe.transformer)
    out = pipe(["a man runs"], refs, reference_guidance_scale=2.0, **CALL)
    assert len(builds) == 1
    video = [f for f in forwards if f["video_shape"] is None]
    assert len(video) == 2 * 3
    assert sum(f["reference_cache"] is None for f in video) == 2  # one bare branch per step
    plain = pipe(["a man runs"], refs, **CALL)
    assert not np.array_equal(out.frames[0], plain.frames[0])


def test_shot_seeds_let_one_shot_be_regenerated_alone(pipe, refs):
    story = pipe(["one", "two"], refs, **CALL)
    second_alone = pipe(["two"], refs, **{**CALL, "seed": [CALL["seed"] + 1]})
    np.testing.assert_array_equal(story.frames[1], second_alone.frames[0])


def test_full_attention_ablation_generates_without_a_cache(refs, monkeypatch):
    full = build_tiny_pipeline(0, attention_mode="full")
    full.set_progress_bar_config(disable=True)
    builds, forwards = _count_calls(monkeypatch, full.transformer)
    out = full(["a man runs"], refs, **CALL)
    assert out.frames[0].shape == (5, 64, 64, 3)
    assert builds == [] and all(f["reference_latents"] is not None for f in forwards)
    with pytest.raises(ValueError, match="no reference cache"):
        full(["a man runs"], refs, use_reference_cache=True, **CALL)


def test_euler_scheduler_also_samples(refs):
    euler = build_tiny_pipeline(0, scheduler="euler")
    euler.set_progress_bar_config(disable=True)
    out = euler(["a man runs"], refs, **CALL)
    assert out.frames[0].shape == (5, 64, 64, 3) and out.frames[0].std() > 1.0


@pytest.mark.parametrize("scheduler", ["unipc", "euler"])
def test_both_samplers_use_the_training_noise_levels(scheduler):
    from wildactor.diffusion.flow import sampling_sigmas

    pipe = build_tiny_pipeline(0, scheduler=scheduler)
    pipe.set_timesteps(10)
    expected = sampling_sigmas(10, shift=5.0).float()
    torch.testing.assert_close(pipe.scheduler.sigmas.float(), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(pipe.scheduler.timesteps.float(), 1000 * expected[:-1], rtol=0, atol=1.0)


def test_references_are_fitted_into_the_video_frame_with_white_padding(pipe, refs):
    out = pipe(["a man runs"], refs[:2], output_type="latent", **CALL)
    face, body = out.reference_images
    assert face.size == body.size == (64, 64)
    body_px = np.asarray(body)
    assert (body_px[:, :8] == 255).all() and (body_px[:, -8:] == 255).all()  # tall image: white side bars
    assert out.frames[0].shape == (1, 4, 2, 4, 4)  # latent (1, C, F, h, w)


def test_three_view_is_a_body_reference_and_regions_are_checked():
    assert Reference("sheet.png", "three_view").reference_type == "body"
    assert Reference("face.png", "face").reference_type == "face"
    with pytest.raises(WildActorError, match="unknown reference region 'hand'"):
        Reference("x.png", "hand")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(prompts=[]), "no prompt given"),
        (dict(prompts=["ok", "  "]), "prompt 2 is empty"),
        (dict(width=70), "nearest valid size: 64x64"),
        (dict(height=100, width=200), "nearest valid size: 192x96"),
        (dict(num_frames=6), "nearest valid count: 5"),
    ],
)
def test_bad_inputs_raise_one_line_errors(pipe, kwargs, message):
    call = {**CALL, "prompts": ["a man runs"], **kwargs}
    with pytest.raises(WildActorError, match=message) as info:
        pipe(**call)
    assert "\n" not in str(info.value)


def _write_base_wan_folder(root):
    """A diffusers Wan folder with a stock WanTransformer3DModel (no reference LoRA in the checkpoint)."""
    from diffusers import WanTransformer3DModel

    pipe = build_tiny_pipeline(0)
    pipe.save_pretrained(root)
    base = {k: v for k, v in TINY_TRANSFORMER_CONFIG.items() if k != "lora_rank"}
    shutil.rmtree(root / "transformer")
    WanTransformer3DModel(**base).save_pretrained(root / "transformer")
    return pipe


def test_base_wan_folder_loads_with_zero_lora_then_a_trained_lora(tmp_path):
    _write_base_wan_folder(tmp_path / "wan")
    base = WildActorPipeline.from_pretrained(tmp_path / "wan", transformer_kwargs={"lora_rank": 4})
    ups = [
        p
        for n, p in base.transformer.named_parameters()
        if ".reference_lora." in n and n.endswith("up.weight")
    ]
    trained = build_tiny_pipeline(1).transformer
    trained.save_reference_lora(tmp_path / "ref_lora.safetensors")
    tuned = WildActorPipeline.from_pretrained(
        tmp_path / "wan", lora=tmp_path / "ref_lora.safetensors", transformer_kwargs={"lora_rank": 4}
    )
    for key, value in trained.reference_lora_state_dict().items():
        torch.testing.assert_close(tuned.transformer.reference_lora_state_dict()[key], value, rtol=0, atol=0)
    assert ups and all(float(p.abs().max()) == 0.0 for p in ups)


@pytest.mark.parametrize("component", ["vae", "transformer", "scheduler", "tokenizer", "text_encoder"])
def test_model_folder_missing_a_component_is_named(pipe, tmp_path, component):
    pipe.save_pretrained(tmp_path / "m")
    shutil.rmtree(tmp_path / "m" / component)
    with pytest.raises(WildActorError, match=f"missing the '{component}' component"):
        WildActorPipeline.from_pretrained(tmp_path / "m")


def test_missing_model_folder_and_non_flow_scheduler_are_refused(pipe, tmp_path):
    with pytest.raises(WildActorError, match="model folder not found"):
        WildActorPipeline.from_pretrained(tmp_path / "nowhere")
    pipe.save_pretrained(tmp_path / "m")
    config_path = tmp_path / "m" / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config["_class_name"] = "DDIMScheduler"
    config_path.write_text(json.dumps(config))
    with pytest.raises(WildActorError, match="not a flow scheduler"):
        WildActorPipeline.from_pretrained(tmp_path / "m")


def test_text_length_is_part_of_the_saved_pipeline(tmp_path):
    short = build_tiny_pipeline(0, max_sequence_length=24)
    assert short.encode_prompts(["a man runs"]).shape == (1, 24, 16)
    short.save_pretrained(tmp_path / "m")
    reloaded = WildActorPipeline.from_pretrained(tmp_path / "m")
    assert reloaded.config.max_sequence_length == 24
    assert reloaded.encode_prompts(["a man runs"]).shape == (1, 24, 16)
    assert (
        WildActorPipeline.from_pretrained(tmp_path / "m", max_sequence_length=40).config.max_sequence_length
        == 40
    )


def test_pixel_space_vae_model_saves_reloads_and_keeps_every_frame(tmp_path):
    """The ActorWorld model's layout: PixelShuffleVAE (no temporal compression) + a 12-channel transformer."""
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    from wildactor.default_model import TINY_TEXT_ENCODER_CONFIG
    from wildactor.model import WildActorTransformer3DModel
    from wildactor.model.pixel_vae import PixelShuffleVAE

    base = build_tiny_pipeline(0)
    torch.manual_seed(0)
    transformer = WildActorTransformer3DModel(
        **{**TINY_TRANSFORMER_CONFIG, "in_channels": 12, "out_channels": 12}
    )
    text_encoder = UMT5EncoderModel(UMT5Config(**TINY_TEXT_ENCODER_CONFIG))
    pipe = WildActorPipeline(
        tokenizer=ByT5Tokenizer(),
        text_encoder=text_encoder.eval(),
        vae=PixelShuffleVAE(scale_factor_spatial=2),
        transformer=transformer.eval(),
        scheduler=base.scheduler,
        max_sequence_length=16,
    )
    pipe.set_progress_bar_config(disable=True)
    assert pipe.size_multiple == 4
    call = dict(height=32, width=40, num_frames=3, num_inference_steps=2, seed=1)
    out = pipe(["a walk"], synthetic_example_actor(), **call)
    assert out.frames[0].shape == (3, 32, 40, 3)
    pipe.save_pretrained(tmp_path / "m")
    again = WildActorPipeline.from_pretrained(tmp_path / "m")
    again.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(
        again(["a walk"], synthetic_example_actor(), **call).frames[0], out.frames[0]
    )


def test_references_are_prepared_as_the_training_dataset_prepares_them(pipe, tmp_path):
    from PIL import Image

    from wildactor.data.dataset import load_reference

    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (50, 90, 3), dtype=np.uint8)).save(tmp_path / "r.png")
    images, _ = pipe.prepare_references([Reference(tmp_path / "r.png")], 64, 96)
    ours = torch.from_numpy(np.asarray(images[0]).copy()).permute(2, 0, 1).float() / 127.5 - 1.0
    torch.testing.assert_close(ours, load_reference(tmp_path / "r.png", 64, 96), rtol=0, atol=0)


def test_references_can_be_fitted_into_a_smaller_frame(pipe, refs, monkeypatch):
    builds, _ = _count_calls(monkeypatch, pipe.transformer)
    out = pipe(["a man runs"], refs, reference_size=(32, 32), output_type="latent", **CALL)
    assert all(im.size == (32, 32) for im in out.reference_images)
    assert len(builds) == 1 and builds[0].num_tokens == 3 * 1 * 1  # 3 refs x (32/16/2)^2 tokens
    with pytest.raises(WildActorError, match="reference size 40x32 .* nearest valid size: 32x32"):
        pipe(["a man runs"], refs, reference_size=(40, 32), **CALL)


def test_encode_video_frames_matches_the_trainers_encoder(pipe):
    from wildactor.diffusion.encode import VAETextEncoder
    from wildactor.media import frames_to_pixels

    frames = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    pixels = frames_to_pixels(frames)
    assert pixels.shape == (1, 3, 5, 64, 64) and pixels.min() >= -1 and pixels.max() <= 1
    assert torch.equal(pixels[0, :, 2], torch.from_numpy(frames[2]).permute(2, 0, 1).float() / 127.5 - 1)
    trainer = VAETextEncoder(pipe.vae, pipe.text_encoder, pipe.tokenizer, max_text_length=16)
    assert torch.equal(pipe.encode_video_frames(frames), trainer.encode_video(pixels))
    with pytest.raises(ValueError, match="uint8"):
        frames_to_pixels(frames.astype(np.float32))
