"""Dataset: decoded clips, fitted references, a deterministic stream, collation, and the latent cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from wildactor.data.dataset import (
    ActorClipDataset,
    CachedLatentDataset,
    ClipSpec,
    PositionSampler,
    build_latent_cache,
    collate,
    load_reference,
    pad_text,
    read_clip,
    resize_center_crop,
    stream_index,
    trim_text,
    write_toy_dataset,
)
from wildactor.data.sampler import build_sampler
from wildactor.data.schema import load_manifest
from wildactor.errors import WildActorError

SPEC = ClipSpec(num_frames=5, height=32, width=32, frame_stride=2, ref_height=32, ref_width=16)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    manifest = write_toy_dataset(tmp_path_factory.mktemp("toy"), num_clips=3, num_frames=12)
    return manifest, load_manifest(manifest)


def test_read_clip_takes_strided_frames_and_pads_short_clips(toy):
    manifest, records = toy
    path = manifest.parent / records[0].video
    frames = read_clip(path, 5, 2, np.random.default_rng(0))
    assert frames.shape == (5, 48, 48, 3) and frames.dtype == np.uint8
    # the toy actor moves right over time: its left edge advances between sampled frames
    x_left = [int(np.argmax(f[24].astype(int).sum(-1) > f[24, 0].astype(int).sum() + 60)) for f in frames]
    assert x_left == sorted(x_left) and x_left[-1] > x_left[0]
    long = read_clip(path, 8, 3, np.random.default_rng(0))  # span 22 > 12 frames: last frame repeats
    assert long.shape[0] == 8 and np.array_equal(long[-1], long[-2])
    with pytest.raises(WildActorError, match="cannot decode"):
        bad = manifest.parent / "bad.mp4"
        bad.write_bytes(b"not a video")
        read_clip(bad, 2, 1, np.random.default_rng(0))


def test_resize_center_crop_and_reference_fit(tmp_path):
    x = torch.arange(2 * 3 * 4 * 8, dtype=torch.float32).reshape(2, 3, 4, 8)  # (T, 3, H, W), wide
    y = resize_center_crop(x, 4, 4)
    assert y.shape == (2, 3, 4, 4)
    assert torch.equal(y, x[..., 2:6])  # no scaling needed: a pure centre crop
    Image.new("RGB", (10, 40), (0, 0, 0)).save(tmp_path / "tall.png")
    ref = load_reference(tmp_path / "tall.png", 32, 32)  # fitted inside, padded with white
    assert ref.shape == (3, 32, 32)
    assert ref[:, 16, 16].tolist() == [-1.0, -1.0, -1.0]
    assert ref[:, 16, 0].tolist() == [1.0, 1.0, 1.0]


def test_items_are_deterministic_functions_of_the_stream_position(toy):
    manifest, records = toy
    ds = ActorClipDataset(records, manifest.parent, build_sampler("adaptive"), SPEC, seed=3)
    a, b = ds[4], ds[4]
    assert torch.equal(a["video"], b["video"]) and a["reference_indices"] == b["reference_indices"]
    assert a["video"].shape == (3, 5, 32, 32) and a["references"].shape == (3, 6, 32, 16)
    assert a["reference_types"] == ["face"] * 3 + ["body"] * 3
    assert -1.0 <= a["video"].min() and a["video"].max() <= 1.0
    # each epoch visits every record once
    assert sorted(stream_index(p, 3, seed=3) for p in range(3)) == [0, 1, 2]
    assert sorted(stream_index(p, 3, seed=3) for p in range(3, 6)) == [0, 1, 2]


def test_collate_trims_to_a_shared_reference_layout(toy):
    manifest, records = toy
    ds = ActorClipDataset(records, manifest.parent, build_sampler("adaptive"), SPEC, seed=0)
    one, two = ds[0], ds[1]
    two = {**two, "references": two["references"][:, [0, 3, 4]], "reference_types": ["face", "body", "body"]}
    batch = collate([one, two])
    assert batch["reference_types"] == ["face", "body", "body"]
    assert batch["references"].shape == (2, 3, 3, 32, 16)
    assert torch.equal(batch["references"][0, :, 1:], one["references"][:, 3:5])
    assert batch["prompt"] == [one["prompt"], two["prompt"]]


def test_position_sampler_splits_global_batches_across_processes():
    one = list(PositionSampler(4, 2, 1, 0, start_step=1, max_steps=3))
    r0 = list(PositionSampler(2, 2, 2, 0, start_step=1, max_steps=3))
    r1 = list(PositionSampler(2, 2, 2, 1, start_step=1, max_steps=3))
    assert one == list(range(8, 24))
    assert sorted(r0 + r1) == one and not set(r0) & set(r1)
    assert r0[:4] == [8, 9, 12, 13]  # micro-step 0: rank 0 takes 8-9, rank 1 takes 10-11


class MeanPoolEncoder:
    """A stand-in encoder: the cache must store exactly what it returns (a prompt's embedding is its length)."""

    def encode_video(self, video):
        return torch.nn.functional.avg_pool3d(video, (1, 4, 4))

    def encode_references(self, images):
        return torch.nn.functional.avg_pool3d(images, (1, 4, 4))

    def encode_text(self, prompts):
        return torch.tensor([[float(len(p)), 1.0] for p in prompts])[:, None, :]


def test_latent_cache_matches_encoding_on_the_fly(toy, tmp_path):
    manifest, records = toy

    spec = ClipSpec(num_frames=3, height=32, width=32, ref_height=32, ref_width=16)
    enc = MeanPoolEncoder()
    build_latent_cache(manifest, records, enc, tmp_path / "cache", spec, "mean-pool", seed=0, shard_size=2,
                       show_progress=False)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "cache").glob("shard-*")) == [
        "shard-00000.safetensors", "shard-00001.safetensors",
    ]  # fmt: skip
    sampler = build_sampler("adaptive")
    cached = CachedLatentDataset(records, tmp_path / "cache", sampler, spec, seed=0)
    pixels = ActorClipDataset(records, manifest.parent, sampler, spec, seed=0)
    item, pix = cached[5], pixels[5]
    assert item["reference_indices"] == pix["reference_indices"]  # same draw with or without a cache
    expected_refs = enc.encode_references(pix["references"][None])[0]
    assert torch.allclose(item["reference_latents"], expected_refs, atol=1e-6)
    assert item["video_latents"].shape == (3, 3, 8, 8)
    assert torch.equal(item["text_embeddings"], enc.encode_text([records[item["index"]].prompt])[0])
    # a cache is tied to its settings
    with pytest.raises(WildActorError, match="other settings"):
        build_latent_cache(manifest, records, enc, tmp_path / "cache", SPEC, "mean-pool", show_progress=False)


def test_a_cache_from_before_prompt_cleaning_is_kept_only_if_cleaning_changes_no_prompt(toy, tmp_path):
    import dataclasses

    manifest, records = toy

    spec = ClipSpec(num_frames=3, height=32, width=32, ref_height=32, ref_width=16)
    build_latent_cache(
        manifest, records, MeanPoolEncoder(), tmp_path / "c", spec, "mean-pool", show_progress=False
    )
    index = tmp_path / "c" / "index.json"
    info = json.loads(index.read_text())
    assert info["prompts"] == "wan-clean"
    del info["prompts"]  # as written before the cache recorded its prompt cleaning
    index.write_text(json.dumps(info))
    dirty = [dataclasses.replace(records[0], prompt="a person &amp; a  dog")] + list(records[1:])
    with pytest.raises(WildActorError, match="other settings"):  # its embedding was of the raw prompt
        build_latent_cache(
            manifest, dirty, MeanPoolEncoder(), tmp_path / "c", spec, "mean-pool", show_progress=False
        )
    build_latent_cache(
        manifest, records, MeanPoolEncoder(), tmp_path / "c", spec, "mean-pool", show_progress=False
    )
    # clean prompts: the same cache, now labelled
    assert json.loads(index.read_text())["prompts"] == "wan-clean"


def test_transparent_reference_pixels_become_white_as_at_sampling(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)  # black under full transparency...
    rgba[2:6, 2:6] = (200, 30, 30, 255)  # ...around an opaque red square
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    ref = load_reference(tmp_path / "cutout.png", 8, 8)
    assert torch.equal(ref[:, 0, 0], torch.ones(3))  # transparent -> white, not black
    assert torch.allclose(ref[:, 4, 4], torch.tensor([200, 30, 30]) / 127.5 - 1.0)


def test_latent_cache_keeps_only_the_valid_text_rows_and_reads_back_the_padded_embedding(toy, tmp_path):
    from safetensors import safe_open

    manifest, records = toy

    class PaddedTextEncoder:  # text like UMT5's: one row per token, zero rows up to the fixed length
        def encode_video(self, video):
            return torch.nn.functional.avg_pool3d(video, (1, 4, 4))

        def encode_references(self, images):
            return torch.nn.functional.avg_pool3d(images, (1, 4, 4))

        def encode_text(self, prompts):
            out = torch.zeros(len(prompts), 16, 3)
            for i, p in enumerate(prompts):
                out[i, : min(len(p.split()), 16)] = torch.arange(1.0, 4.0) * (i + 1)
            return out

    spec = ClipSpec(num_frames=3, height=32, width=32, ref_height=32, ref_width=16)
    enc = PaddedTextEncoder()
    build_latent_cache(manifest, records, enc, tmp_path / "c", spec, "padded", show_progress=False,
                       text_dtype=torch.bfloat16)  # fmt: skip
    with safe_open(str(tmp_path / "c" / "shard-00000.safetensors"), framework="pt") as f:
        stored = f.get_tensor("0.text")
    words = len(records[0].prompt.split())
    assert stored.shape == (min(words, 16), 3) and stored.dtype == torch.bfloat16
    item = CachedLatentDataset(records, tmp_path / "c", build_sampler("adaptive"), spec)[0]
    expected = enc.encode_text([records[item["index"]].prompt])[0]
    assert item["text_embeddings"].dtype == torch.float32
    assert torch.equal(item["text_embeddings"], expected)  # bf16 holds these small integers exactly
    assert torch.equal(pad_text(trim_text(expected), 16), expected)


def test_a_reference_gets_bitwise_the_same_latent_in_the_cache_and_in_the_pipeline(tmp_path):
    from safetensors import safe_open

    from wildactor.data.dataset import write_toy_dataset
    from wildactor.default_model import build_tiny_pipeline
    from wildactor.diffusion.encode import VAETextEncoder
    from wildactor.pipeline import Reference

    manifest = write_toy_dataset(tmp_path / "toy", num_clips=1, size=64)
    records = load_manifest(manifest)
    pipe = build_tiny_pipeline(0)
    encoder = VAETextEncoder(pipe.vae, pipe.text_encoder, pipe.tokenizer, max_text_length=16)
    spec = ClipSpec(num_frames=5, height=64, width=64, ref_height=64, ref_width=64)
    build_latent_cache(manifest, records, encoder, tmp_path / "c", spec, "tiny", show_progress=False)
    with safe_open(str(tmp_path / "c" / "shard-00000.safetensors"), framework="pt") as f:
        cached = [f.get_tensor(f"0.ref.{j}") for j in range(len(records[0].refs))]
    refs = [Reference(str(manifest.parent / r.path), "body") for r in records[0].refs]
    images, _ = pipe.prepare_references(refs, 64, 64)
    latents = pipe.encode_reference_images(images)  # (1, C, R, h, w), all references in one call
    for j, z in enumerate(cached):
        assert torch.equal(latents[0, :, j], z), j
