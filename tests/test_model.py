"""Claims of the WildActor transformer (AIPA, I-RoPE, reference LoRA, cache), on tiny random configs."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file

from wildactor.errors import WildActorError
from wildactor.model import (
    IRoPEConfig,
    ReferenceCache,
    WildActorTransformer3DModel,
    reference_coordinates,
    reference_lora_parameter_count,
    rotary_tables,
    video_coordinates,
)

VIDEO = (3, 8, 8)  # latent (F, H, W) -> token grid (3, 4, 4)
KINDS = ["face", "body", "face"]


def make_model(config: dict, seed: int = 0, **extra) -> WildActorTransformer3DModel:
    torch.manual_seed(seed)
    return WildActorTransformer3DModel(**config, lora_rank=4, **extra).eval()


def randomize_lora(model: WildActorTransformer3DModel, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.reference_lora_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


def inputs(batch: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, *VIDEO, generator=gen)
    t = torch.tensor([700.0, 250.0][:batch])
    text = torch.randn(batch, 7, 16, generator=gen)
    refs = torch.randn(1, 4, len(KINDS), 8, 8, generator=gen)
    return x, t, text, refs


def test_no_references_equals_base_wan_bitwise(tiny_transformer_config):
    model = make_model(tiny_transformer_config)
    randomize_lora(model)  # LoRA only touches references: must not matter here
    base = WanTransformer3DModel(**tiny_transformer_config).eval()
    base.load_state_dict({k: v for k, v in model.state_dict().items() if ".reference_lora." not in k})
    x, t, text, _ = inputs()
    with torch.no_grad():
        assert torch.equal(model(x, t, text).sample, base(x, t, text).sample)
        per_token = torch.rand(2, 3 * 4 * 4) * 1000  # Wan2.2 TI2V per-token timesteps
        assert torch.equal(model(x, per_token, text).sample, base(x, per_token, text).sample)


def test_reference_stream_ignores_video_timestep_and_text(tiny_transformer_config):
    model = make_model(tiny_transformer_config)
    randomize_lora(model)
    _, _, _, refs = inputs()
    with torch.no_grad():
        a = model.encode_references(refs, KINDS, VIDEO)
        b = model.encode_references(refs, KINDS, VIDEO)
        # In a joint forward the K/V used for references are the same whatever the video is.
        x1, t, text, _ = inputs(seed=1)
        x2, _, _, _ = inputs(seed=2)
        runs = []
        for x in (x1, x2):
            _, used = model._run_blocks(
                *_block_args(model, x, t, text), refs.expand(2, -1, -1, -1, -1), KINDS, None
            )
            runs.append(used)
    for layer in range(model.config.num_layers):
        assert torch.equal(a.keys[layer], b.keys[layer])
        assert torch.equal(runs[0].keys[layer], runs[1].keys[layer])
        assert torch.equal(runs[0].values[layer], runs[1].values[layer])


def _block_args(model, x, t, text):
    """Video tokens and conditioning as the forward builds them, for reaching `_run_blocks` directly."""
    rotary = model.rope(x)
    tokens = model.patch_embedding(x).flatten(2).transpose(1, 2)
    _, proj, text_emb, _ = model.condition_embedder(t, text, None)
    return tokens, text_emb, proj.unflatten(1, (6, -1)), rotary, tuple(x.shape[2:])


def test_full_attention_reference_kv_depends_on_video(tiny_transformer_config):
    model = make_model(tiny_transformer_config, attention_mode="full")
    randomize_lora(model)
    x1, t, text, refs = inputs(seed=1)
    x2, _, _, _ = inputs(seed=2)
    refs = refs.expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        used = [model._run_blocks(*_block_args(model, x, t, text), refs, KINDS, None)[1] for x in (x1, x2)]
    assert torch.equal(used[0].keys[0], used[1].keys[0])  # layer 0: references have not met the video yet
    assert not torch.equal(used[0].keys[1], used[1].keys[1])  # layer 1: they have
    with pytest.raises(ValueError, match="full"):
        model.encode_references(refs, KINDS, VIDEO)
    cache = make_model(tiny_transformer_config).encode_references(refs, KINDS, VIDEO)
    with pytest.raises(ValueError, match="cannot use a reference cache"):
        model(x1, t, text, reference_cache=cache)


def test_references_change_output_and_zero_lora_changes_nothing(tiny_transformer_config):
    model = make_model(tiny_transformer_config)
    x, t, text, refs = inputs()
    refs = refs.expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        plain = model(x, t, text).sample
        with_refs = model(x, t, text, reference_latents=refs, reference_types=KINDS).sample
        assert (with_refs - plain).abs().max() > 1e-3
        # Zero up-projections: same output as a model whose LoRA is absent (down weights do not matter).
        other = make_model(tiny_transformer_config)
        with torch.no_grad():
            for p, q in zip(other.reference_lora_parameters(), model.reference_lora_parameters()):
                p.copy_(torch.randn_like(p) if p.shape == q.shape and q.abs().sum() > 0 else q)
        assert torch.equal(other(x, t, text, reference_latents=refs, reference_types=KINDS).sample, with_refs)
        # A non-zero LoRA changes what references contribute, and nothing of the video-only forward.
        randomize_lora(model)
        assert torch.equal(model(x, t, text).sample, plain)
        assert (
            model(x, t, text, reference_latents=refs, reference_types=KINDS).sample - with_refs
        ).abs().max() > 1e-4


def test_gradients_reach_only_reference_lora(tiny_transformer_config):
    model = make_model(tiny_transformer_config)
    randomize_lora(model)
    model.enable_reference_training()
    model.enable_gradient_checkpointing()
    x, t, text, refs = inputs()
    out = model(x, t, text, reference_latents=refs.expand(2, -1, -1, -1, -1), reference_types=KINDS).sample
    out.square().mean().backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if ".reference_lora." in n}
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
    # The last block's reference queries feed nothing, so that block has no q LoRA: every LoRA weight that
    # exists gets a gradient (DDP needs no find_unused_parameters).
    assert not any(n.startswith(f"blocks.{model.config.num_layers - 1}.reference_lora.q.") for n in trainable)
    for name in trainable:
        assert model.get_parameter(name).grad is not None, name
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_gradient_checkpointing_gives_same_gradients(tiny_transformer_config):
    x, t, text, refs = inputs()
    refs = refs.expand(2, -1, -1, -1, -1)
    grads = []
    for checkpointing in (False, True):
        model = make_model(tiny_transformer_config)
        randomize_lora(model)
        model.enable_reference_training()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(x, t, text, reference_latents=refs, reference_types=KINDS).sample.square().mean().backward()
        grads.append(
            torch.cat([p.grad.flatten() for p in model.reference_lora_parameters() if p.grad is not None])
        )
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_cache_equals_no_cache_across_timesteps_and_prompts(tiny_transformer_config):
    model = make_model(tiny_transformer_config)
    randomize_lora(model)
    x, _, _, refs = inputs(batch=1)
    with torch.no_grad():
        cache = model.encode_references(refs, KINDS, VIDEO)  # built once
        for t in (torch.tensor([900.0]), torch.tensor([100.0])):
            for prompt_seed in (3, 4):
                text = torch.randn(1, 7, 16, generator=torch.Generator().manual_seed(prompt_seed))
                a = model(x, t, text, reference_latents=refs, reference_types=KINDS).sample
                b = model(x, t, text, reference_cache=cache).sample
                assert (a - b).abs().max() <= 1e-6
        # A batch-1 cache serves a batch of 2 (both CFG branches).
        x2 = x.expand(2, -1, -1, -1, -1)
        text2 = torch.randn(2, 7, 16)
        t2 = torch.tensor([500.0, 500.0])
        a = model(
            x2, t2, text2, reference_latents=refs.expand(2, -1, -1, -1, -1), reference_types=KINDS
        ).sample
        b = model(x2, t2, text2, reference_cache=cache).sample
        assert (a - b).abs().max() <= 1e-6


def test_cache_is_explicit_and_checked(tiny_transformer_config):
    model = make_model(tiny_transformer_config)
    _, _, _, refs = inputs()
    cache = model.encode_references(refs, KINDS, VIDEO)
    assert isinstance(cache, ReferenceCache)
    assert cache.num_layers == 2 and cache.num_tokens == 3 * 4 * 4 and cache.batch_size == 1
    assert cache.keys[0].shape == (1, 48, 2, 12)
    assert not any("cache" in name for name, _ in model.named_buffers())
    x = torch.randn(1, 4, 5, 8, 8)
    with pytest.raises(ValueError, match="built for video latent"):
        model(x, torch.tensor([1.0]), torch.randn(1, 7, 16), reference_cache=cache)
    with pytest.raises(ValueError, match="'face' or 'body'"):
        model.encode_references(refs, ["face", "hand", "body"], VIDEO)
    with pytest.raises(ValueError, match="3 reference latents but 2"):
        model.encode_references(refs, ["face", "body"], VIDEO)


def test_irope_coordinates_follow_the_formula():
    config = IRoPEConfig()
    kinds = ["body", "face", "body", "face", "three_view"]
    coords = reference_coordinates(5, 3, 4, kinds, 2, 3, config)
    assert coords.dtype == torch.long and coords.shape == (5 * 2 * 3, 3)
    per_ref = coords.view(5, 2 * 3, 3)
    expected_t = [5 + 128, 5 + 4, 5 + 128 + 4, 5 + 4 + 4, 5 + 128 + 8]
    assert per_ref[:, :, 0].tolist() == [[t] * 6 for t in expected_t]
    assert per_ref[0, :, 1].tolist() == [3, 3, 3, 4, 4, 4]  # h starts at H
    assert per_ref[0, :, 2].tolist() == [4, 5, 6, 4, 5, 6]  # w starts at W
    far = reference_coordinates(2000, 3, 4, ["body"] * 3, 1, 1, config)  # beyond Wan's 1024-row table
    assert far[:, 0].tolist() == [2128, 2132, 2136]


def test_shared_rope_gives_frame_zero_coordinates():
    shared = reference_coordinates(5, 3, 4, ["face", "body"], 3, 4, IRoPEConfig(mode="shared"))
    frame0 = video_coordinates(1, 3, 4)
    assert torch.equal(shared, torch.cat([frame0, frame0]))


def test_rotary_tables_equal_wan_rotary_module(tiny_transformer_config):
    for head_dim in (12, 128):
        model = WanTransformer3DModel(**{**tiny_transformer_config, "attention_head_dim": head_dim})
        latent = torch.zeros(1, 4, 6, 10, 14)
        cos_ref, sin_ref = model.rope(latent)
        cos, sin = rotary_tables(video_coordinates(6, 5, 7), head_dim)
        assert cos.shape == cos_ref.shape
        assert (cos - cos_ref).abs().max() == 0 and (sin - sin_ref).abs().max() == 0


def test_rope_mode_changes_output(tiny_transformer_config):
    x, t, text, refs = inputs()
    refs = refs.expand(2, -1, -1, -1, -1)
    outs = []
    for mode in ("irope", "shared"):
        model = make_model(tiny_transformer_config, rope_mode=mode)
        with torch.no_grad():
            outs.append(model(x, t, text, reference_latents=refs, reference_types=KINDS).sample)
    assert (outs[0] - outs[1]).abs().max() > 1e-4


def test_5b_config_parameter_counts_on_meta():
    with torch.device("meta"):
        model = WildActorTransformer3DModel(
            num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48, text_dim=4096,
            freq_dim=256, ffn_dim=14336, num_layers=30,
        )  # fmt: skip
    lora = sum(p.numel() for p in model.reference_lora_parameters())
    base = sum(p.numel() for n, p in model.named_parameters() if ".reference_lora." not in n)
    # q, k, v in 30 blocks (70,778,880 in the released layout) minus the last block's unused q LoRA.
    assert lora == 70_778_880 - 2 * 3072 * 128 == reference_lora_parameter_count(3072, 30, 128)
    assert 4.9e9 < base < 5.1e9


def test_from_pretrained_loads_a_base_wan_checkpoint(tiny_transformer_config, tmp_path):
    torch.manual_seed(0)
    base = WanTransformer3DModel(**tiny_transformer_config).eval()
    base.save_pretrained(tmp_path / "transformer")
    model = WildActorTransformer3DModel.from_pretrained(tmp_path, subfolder="transformer", lora_rank=8)
    assert model.config.lora_rank == 8
    loras = [block.reference_lora for block in model.blocks]
    assert all(torch.equal(lora.k.up.weight, torch.zeros(24, 8)) for lora in loras)
    assert all(lora.k.down.weight.abs().sum() > 0 for lora in loras)
    reloaded = WanTransformer3DModel.from_pretrained(tmp_path, subfolder="transformer")
    x, t, text, refs = inputs()
    with torch.no_grad():
        assert torch.equal(model(x, t, text).sample, reloaded(x, t, text).sample)
    model.save_pretrained(tmp_path / "wildactor")  # round trip keeps config and LoRA
    again = WildActorTransformer3DModel.from_pretrained(tmp_path / "wildactor")
    assert again.config.lora_rank == 8 and again.config.attention_mode == "aipa"
    for a, b in zip(model.reference_lora_parameters(), again.reference_lora_parameters()):
        assert torch.equal(a, b)


def test_a_saved_model_loads_with_a_lora_of_another_rank(tiny_transformer_config, tmp_path, caplog):
    model = make_model(tiny_transformer_config)
    randomize_lora(model)
    model.save_pretrained(tmp_path / "rank4")
    with caplog.at_level("WARNING", logger="wildactor.model.transformer"):
        wider = WildActorTransformer3DModel.from_pretrained(tmp_path / "rank4", lora_rank=8)
    assert "rank-4 reference LoRA is not loaded (rank 8 requested)" in caplog.text
    assert wider.config.lora_rank == 8
    for block in wider.blocks:  # a new LoRA at zero-B: the model is the saved base, bitwise
        assert block.reference_lora.k.down.weight.shape == (8, 24)
        assert torch.equal(block.reference_lora.k.up.weight, torch.zeros(24, 8))
    for (name, a), (_, b) in zip(model.named_parameters(), wider.named_parameters()):
        if ".reference_lora." not in name:
            assert torch.equal(a, b), name
    # the same rank: the saved LoRA is kept
    same = WildActorTransformer3DModel.from_pretrained(tmp_path / "rank4", lora_rank=4)
    for a, b in zip(model.reference_lora_parameters(), same.reference_lora_parameters()):
        assert torch.equal(a, b)


def test_reference_lora_save_load_round_trip_and_refusals(tiny_transformer_config, tmp_path):
    model = make_model(tiny_transformer_config)
    randomize_lora(model)
    path = model.save_reference_lora(tmp_path / "ref_lora.safetensors")
    assert json.loads(path.with_suffix(".json").read_text())["rank"] == "4"
    fresh = make_model(tiny_transformer_config, seed=5)
    fresh.load_reference_lora(path)
    for a, b in zip(model.reference_lora_parameters(), fresh.reference_lora_parameters()):
        assert torch.equal(a, b)

    wrong_rank = WildActorTransformer3DModel(**{**tiny_transformer_config}, lora_rank=8)
    with pytest.raises(WildActorError, match="rank=4, this model has rank=8"):
        wrong_rank.load_reference_lora(path)
    ordinary = tmp_path / "ordinary_lora.safetensors"
    save_file({"blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 24)}, str(ordinary))
    with pytest.raises(WildActorError, match="not a WildActor reference LoRA"):
        fresh.load_reference_lora(ordinary)
    with pytest.raises(WildActorError, match="not found"):
        fresh.load_reference_lora(tmp_path / "nope.safetensors")


def test_files_of_the_earlier_layout_keep_loading(tiny_transformer_config, tmp_path):
    from safetensors.torch import load_file

    from wildactor.default_model import DEFAULT_MODEL_DIR

    model = make_model(tiny_transformer_config)
    randomize_lora(model)
    tensors = model.reference_lora_state_dict()
    # The earlier layout had a q LoRA in the last block too (it never changed the output): it is accepted.
    tensors["reference_lora.1.to_q.down.weight"] = torch.randn(4, 24)
    tensors["reference_lora.1.to_q.up.weight"] = torch.randn(24, 4)
    meta = {k: v for k, v in model._lora_metadata().items() if k != "omitted"}
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata=meta)
    fresh = make_model(tiny_transformer_config, seed=3)
    fresh.load_reference_lora(tmp_path / "old.safetensors")
    for key, value in model.reference_lora_state_dict().items():
        assert torch.equal(fresh.reference_lora_state_dict()[key], value), key
    # The shipped default model's folder stores its LoRA at the top level (`reference_lora.{i}...`).
    folder = DEFAULT_MODEL_DIR / "transformer"
    saved = {}
    for file in folder.glob("*.safetensors"):
        saved.update({k: v for k, v in load_file(str(file)).items() if k.startswith("reference_lora.")})
    loaded = WildActorTransformer3DModel.from_pretrained(DEFAULT_MODEL_DIR, subfolder="transformer")
    last = loaded.config.num_layers - 1
    for key, value in loaded.reference_lora_state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert any(
        v.abs().sum() > 0
        for k, v in saved.items()
        if ".up." in k and not k.startswith(f"reference_lora.{last}")
    )
