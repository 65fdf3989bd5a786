"""What runs at block granularity sees every use of a WildActor layer: hooks, block caches, offloading, compile,
and an ordinary PEFT LoRA next to the reference LoRA (tiny random configs, CPU)."""

from __future__ import annotations

import pytest
import torch
from diffusers import WanTransformer3DModel

from wildactor.model import WildActorTransformer3DModel

VIDEO = (3, 8, 8)
KINDS = ["face", "body"]


def make(config: dict, seed: int = 0, **extra) -> WildActorTransformer3DModel:
    torch.manual_seed(seed)
    model = WildActorTransformer3DModel(**config, lora_rank=4, **extra).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.reference_lora_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 4, *VIDEO, generator=gen)
    text = torch.randn(1, 7, 16, generator=gen)
    refs = torch.randn(1, 4, len(KINDS), 8, 8, generator=gen)
    return x, torch.tensor([500.0]), text, refs


def count_block_calls(model) -> list[int]:
    calls = [0] * len(model.blocks)
    for i, block in enumerate(model.blocks):
        block.register_forward_pre_hook(lambda module, args, i=i: calls.__setitem__(i, calls[i] + 1))
    return calls


@pytest.mark.parametrize("mode", ["aipa", "full"])
def test_forward_hooks_on_every_block_fire_for_every_use(tiny_transformer_config, mode):
    model = make(tiny_transformer_config, attention_mode=mode)
    calls = count_block_calls(model)
    x, t, text, refs = inputs()
    with torch.no_grad():
        model(x, t, text)  # video alone
        assert calls == [1, 1]
        model(x, t, text, reference_latents=refs, reference_types=KINDS)  # both streams (training, ablation)
        assert calls == [2, 2]
        if mode == "aipa":
            cache = model.encode_references(refs, KINDS, VIDEO)  # the reference stream alone
            assert calls == [3, 3]
            model(x, t, text, reference_cache=cache)  # video with cached reference K/V
            assert calls == [4, 4]


def _self_attention_runs(block) -> list[int]:
    """How often the block really computed (its self-attention key projection ran), skipped calls excluded."""
    runs = [0]
    block.attn1.to_k.register_forward_pre_hook(lambda *_: runs.__setitem__(0, runs[0] + 1))
    return runs


def _denoise_with_first_block_cache(model, x, t, text, steps: int, **refs) -> list[int]:
    from diffusers.hooks import FirstBlockCacheConfig

    model.enable_cache(FirstBlockCacheConfig(threshold=10.0))  # so high that every step after the first skips
    last = _self_attention_runs(model.blocks[-1])
    cache = model.encode_references(refs["latents"], KINDS, VIDEO) if refs else None
    ran = []
    with torch.no_grad():
        for step in range(steps):
            with model.cache_context("cond"):
                model(x + 0.01 * step, t, text, **({"reference_cache": cache} if refs else {}))
            ran.append(last[0])
    model.disable_cache()
    return ran


def test_first_block_cache_skips_blocks_with_references_as_on_stock_wan(tiny_transformer_config):
    x, t, text, refs = inputs()
    torch.manual_seed(0)
    stock = WanTransformer3DModel(**tiny_transformer_config).eval()
    assert _denoise_with_first_block_cache(stock, x, t, text, steps=4) == [1, 1, 1, 1]
    model = make(tiny_transformer_config)
    # The reference stream (a fresh cache context) runs the last block once, then 4 steps run it once, as stock.
    assert _denoise_with_first_block_cache(model, x, t, text, steps=4, latents=refs) == [2, 2, 2, 2]


def test_group_offload_at_block_level_gives_the_same_output(tiny_transformer_config):
    x, t, text, refs = inputs()
    model = make(tiny_transformer_config)
    with torch.no_grad():
        expected = model(x, t, text, reference_cache=model.encode_references(refs, KINDS, VIDEO)).sample
        joint = model(x, t, text, reference_latents=refs, reference_types=KINDS).sample
    cpu = torch.device("cpu")
    model.enable_group_offload(cpu, offload_device=cpu, offload_type="block_level", num_blocks_per_group=1)
    from diffusers.hooks import HookRegistry

    assert all(HookRegistry.check_if_exists_or_initialize(b).hooks for b in model.blocks)
    with torch.no_grad():
        cache = model.encode_references(refs, KINDS, VIDEO)
        assert torch.equal(model(x, t, text, reference_cache=cache).sample, expected)
        assert torch.equal(model(x, t, text, reference_latents=refs, reference_types=KINDS).sample, joint)


def test_compile_repeated_blocks_compiles_the_wildactor_block(tiny_transformer_config):
    x, t, text, refs = inputs()
    model = make(tiny_transformer_config)
    with torch.no_grad():
        expected = model(x, t, text, reference_cache=model.encode_references(refs, KINDS, VIDEO)).sample
    torch._dynamo.reset()
    model.compile_repeated_blocks(backend="aot_eager")
    assert all(getattr(b, "_compiled_call_impl", None) is not None for b in model.blocks)
    with torch.no_grad():
        cache = model.encode_references(refs, KINDS, VIDEO)
        got = model(x, t, text, reference_cache=cache).sample
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()


def test_an_ordinary_peft_lora_targets_video_projections_and_leaves_the_reference_lora_alone(
    tiny_transformer_config,
):
    from peft import LoraConfig

    x, t, text, refs = inputs()
    model = make(tiny_transformer_config)
    before = {k: v.clone() for k, v in model.reference_lora_state_dict().items()}
    with torch.no_grad():
        plain = model(x, t, text).sample
    model.add_adapter(
        LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False)
    )
    wrapped = {n for n, m in model.named_modules() if hasattr(m, "lora_A")}
    assert wrapped and all(".reference_lora." not in n for n in wrapped)
    assert {n.rsplit(".", 1)[-1] for n in wrapped} == {"to_q", "to_k", "to_v"}
    with torch.no_grad():
        assert not torch.equal(model(x, t, text).sample, plain)  # the community LoRA changes video tokens
    after = model.reference_lora_state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
