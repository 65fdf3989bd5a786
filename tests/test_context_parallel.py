"""Context parallel with references: sharded video queries attend to [all video K/V ; replicated reference K/V].

The video part runs through diffusers' ring / Ulysses attention with its log-sum-exp, the reference part locally,
and the two are merged exactly. Checked here: the merge itself, the plan (the reference stream never passes a split
point), clear refusals, and two processes over gloo running diffusers' `enable_parallelism` and its templated ring and
Ulysses attention (a CPU flash kernel standing in for the GPU one), compared with one process.

The file is also the worker that `torch.distributed.run` starts (see `main`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from _ports import free_port
from wildactor.model.lse_merge import attention_with_lse, merge_attention

VIDEO = (3, 8, 8)  # latent (F, H, W): 3 * 4 * 4 = 48 video tokens, 2 references of 16 tokens
KINDS = ["face", "body"]


def _sdpa(query, key, value):
    """Reference attention: torch's SDPA on (B, S, H, D) tensors."""
    out = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (query, key, value)))
    return out.transpose(1, 2)


def _qkv(seed: int, sq: int = 9, sk: int = 13, heads: int = 3, dim: int = 8):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(2, sq, heads, dim, generator=gen),
        torch.randn(2, sk, heads, dim, generator=gen),
        torch.randn(2, sk, heads, dim, generator=gen),
    )


# ---------------------------------------------------------------- the merge


def test_attention_with_lse_is_softmax_attention_and_its_normaliser():
    query, key, value = _qkv(0)
    out, lse = attention_with_lse(query, key, value)
    torch.testing.assert_close(out, _sdpa(query, key, value), rtol=1e-5, atol=1e-6)
    scores = torch.einsum("bqhd,bkhd->bqhk", query, key) / 8**0.5
    torch.testing.assert_close(lse, scores.logsumexp(-1), rtol=1e-6, atol=1e-6)
    chunked = attention_with_lse(query, key, value, max_scores=2 * 3 * 13 * 2)  # 2 queries at a time
    torch.testing.assert_close(chunked[0], out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked[1], lse, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("split", [1, 6, 12])
def test_merging_attention_over_two_key_sets_equals_attention_over_their_concatenation(split):
    query, key, value = _qkv(1)
    out_a, lse_a = attention_with_lse(query, key[:, :split], value[:, :split])
    out_b, lse_b = attention_with_lse(query, key[:, split:], value[:, split:])
    out, lse = merge_attention(out_a, lse_a, out_b, lse_b)
    torch.testing.assert_close(out, _sdpa(query, key, value), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lse, attention_with_lse(query, key, value)[1], rtol=1e-6, atol=1e-6)


def test_merge_is_stable_when_one_part_is_very_peaked():
    query, key, value = _qkv(2)
    # One key of part b aligned with the queries at a huge scale: scores of hundreds, so exp() of an unshifted
    # score overflows fp32, and part a's weight underflows to zero.
    key = key.clone()
    key[:, 10] = query.mean(dim=1) * 400.0
    out_a, lse_a = attention_with_lse(query, key[:, :7], value[:, :7])
    out_b, lse_b = attention_with_lse(query, key[:, 7:], value[:, 7:])
    assert torch.isinf(torch.exp(lse_b)).any()  # really outside exp's fp32 range
    for out, lse in (
        merge_attention(out_a, lse_a, out_b, lse_b),
        merge_attention(out_b, lse_b, out_a, lse_a),
    ):
        assert torch.isfinite(out).all() and torch.isfinite(lse).all()
        torch.testing.assert_close(out, _sdpa(query, key, value), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(lse, attention_with_lse(query, key, value)[1], rtol=1e-6, atol=1e-6)


def test_merge_of_half_precision_parts_returns_fp32():
    query, key, value = _qkv(3)
    out_a, lse_a = attention_with_lse(query, key[:, :5], value[:, :5])
    out_b, lse_b = attention_with_lse(query, key[:, 5:], value[:, 5:])
    out, lse = merge_attention(out_a.bfloat16(), lse_a, out_b.bfloat16(), lse_b)
    assert out.dtype == lse.dtype == torch.float32
    torch.testing.assert_close(out, _sdpa(query, key, value), rtol=2e-2, atol=2e-2)


# ---------------------------------------------------------------- the plan and the model


def _model(config: dict, **extra):
    from wildactor.model import WildActorTransformer3DModel

    torch.manual_seed(0)
    model = WildActorTransformer3DModel(**config, **extra).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.reference_lora_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def _inputs(batch: int = 2, device: str = "cpu", dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(batch, 4, *VIDEO, generator=gen)
    text = torch.randn(batch, 7, 16, generator=gen)
    refs = torch.randn(batch, 4, len(KINDS), 8, 8, generator=gen)
    move = lambda v: v.to(device=device, dtype=dtype)  # noqa: E731
    return move(x), torch.tensor([700.0, 200.0][:batch], device=device), move(text), move(refs)


def _count_plan_calls(model) -> dict[str, int]:
    called = dict.fromkeys(model._cp_plan, 0)
    for name in model._cp_plan:
        module = model.get_submodule(name) if name else model
        module.register_forward_pre_hook(lambda *_, name=name: called.__setitem__(name, called[name] + 1))
    return called


def test_plan_split_points_see_the_video_pass_once_and_the_reference_stream_never(tiny_transformer_config):
    # diffusers' context parallel splits or gathers at the modules its plan names; the reference stream, which
    # runs the same blocks, must pass none of them so its tokens stay whole on every rank.
    model = _model(tiny_transformer_config)
    assert "blocks.0" not in model._cp_plan and "" not in model._cp_plan
    called = _count_plan_calls(model)
    x, t, text, refs = _inputs()
    with torch.no_grad():
        cache = model.encode_references(refs, KINDS, VIDEO)
        assert called == dict.fromkeys(model._cp_plan, 0)
        model(x, t, text, reference_cache=cache)
        assert called == dict.fromkeys(model._cp_plan, 1)
        model(x, t, text, reference_latents=refs, reference_types=KINDS)  # both streams in each block call
        assert called == dict.fromkeys(model._cp_plan, 2)


def test_split_point_is_an_identity_and_the_model_keeps_stock_wan_weights(tiny_transformer_config):
    from diffusers import WanTransformer3DModel

    model = _model(tiny_transformer_config)
    torch.manual_seed(0)
    stock = WanTransformer3DModel(**tiny_transformer_config).eval()
    assert not list(model.video_tokens.parameters())
    x, t, text, _ = _inputs()
    assert model.video_tokens(x, t)[0] is x and model.video_tokens(x, t)[1] is t
    missing, unexpected = model.load_state_dict(stock.state_dict(), strict=False)
    assert not unexpected and all(".reference_lora." in k for k in missing)
    with torch.no_grad():
        assert torch.equal(model(x, t, text).sample, stock(x, t, text).sample)


class _TwoRanks:
    """The part of a DeviceMesh that diffusers' split hook reads: 2 ranks (this process plays the one from get_rank)."""

    def size(self) -> int:
        return 2

    def get_group(self) -> None:
        return None


def _attention_tokens(model) -> list[int]:
    """Tokens each block's self-attention key projection receives (after any split hook on the block has run)."""
    seen: list[int] = []
    for block in model.blocks:
        block.attn1.to_k.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[1]))
    return seen


def test_diffusers_split_hooks_leave_the_reference_stream_whole(tiny_transformer_config, monkeypatch):
    # diffusers' own hooks (`apply_context_parallel`) on one process acting as rank 1 of 2: the plan splits the
    # video tokens, while the reference stream's K/V stay whole and equal the run without hooks. Wan's own entry
    # for `blocks.0` would split the references (and break their rotary tables).
    from diffusers import ContextParallelConfig, WanTransformer3DModel
    from diffusers.hooks.context_parallel import apply_context_parallel

    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    config = ContextParallelConfig(ring_degree=2)
    config._flattened_mesh = _TwoRanks()
    x, t, text, refs = _inputs()
    tokens = torch.randn(2, 48, 24)
    model = _model(tiny_transformer_config)
    with torch.no_grad():
        expected = model.encode_references(refs, KINDS, VIDEO)
    seen = _attention_tokens(model)
    apply_context_parallel(model, config, model._cp_plan)
    with torch.no_grad():
        cache = model.encode_references(refs, KINDS, VIDEO)
        shard, _ = model.video_tokens(tokens, t)
    assert seen == [32, 32]  # 2 references of 16 tokens, in both blocks
    assert all(torch.equal(a, b) for a, b in zip(cache.keys + cache.values, expected.keys + expected.values))
    assert torch.equal(shard, tokens[:, 24:])  # rank 1's half of the video tokens

    wan_split = _model(tiny_transformer_config)
    seen = _attention_tokens(wan_split)
    apply_context_parallel(wan_split, config, {"blocks.0": WanTransformer3DModel._cp_plan["blocks.0"]})
    with torch.no_grad(), pytest.raises(RuntimeError, match="size of tensor"):  # 16 tokens, 32 rotary rows
        wan_split.encode_references(refs, KINDS, VIDEO)
    assert seen == [16]  # block 0 got half of the reference tokens


def _fake_parallel(model, backend: str | None = None) -> None:
    """What `enable_parallelism` records on the model and its processors (it cannot run without an accelerator)."""
    if backend is not None:
        model.set_attention_backend(backend)
    marker = object()
    model._parallel_config = marker
    for block in model.blocks:
        block.attn1.processor._parallel_config = marker


def test_context_parallel_with_references_refuses_a_backend_without_lse(tiny_transformer_config):
    model = _model(tiny_transformer_config)
    _fake_parallel(model)  # diffusers' default backend, "native", refuses return_lse
    x, t, text, refs = _inputs()
    with torch.no_grad():
        cache = model.encode_references(refs, KINDS, VIDEO)  # the reference stream runs unsharded: fine
        with pytest.raises(NotImplementedError, match="log-sum-exp under context parallel .*'native'"):
            model(x, t, text, reference_cache=cache)


def test_context_parallel_with_references_refuses_training_and_the_full_ablation(tiny_transformer_config):
    model = _model(tiny_transformer_config)
    model.enable_reference_training()
    _fake_parallel(model, "_native_flash")
    x, t, text, refs = _inputs()
    with pytest.raises(NotImplementedError, match="training under context parallel"):
        model(x, t, text, reference_latents=refs, reference_types=KINDS)
    full = _model(tiny_transformer_config, attention_mode="full")
    _fake_parallel(full, "_native_flash")
    with torch.no_grad(), pytest.raises(NotImplementedError, match='attention_mode="aipa" only'):
        full(x, t, text, reference_latents=refs, reference_types=KINDS)


# ---------------------------------------------------------------- two processes (gloo)


_CALLS = {"parallel": 0}  # the worker's count of templated (ring / Ulysses) attention calls


def _cpu_flash_forward_op(
    ctx, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
    return_lse=False, _save_ctx=True, _parallel_config=None,
):  # fmt: skip
    """Stands in for `_native_flash`'s forward op (a CUDA kernel): torch's CPU flash kernel, same layouts."""
    _CALLS["parallel"] += _parallel_config is not None
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), dropout_p, is_causal, scale=scale
    )  # (B, H, S, D), (B, H, S)
    out, lse = out.transpose(1, 2).contiguous(), lse.transpose(1, 2).contiguous()  # (B, S, H, D), (B, S, H)
    return (out, lse) if return_lse else out


def _run_all(model, per_token: bool, device: str = "cpu", dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Everything a context-parallel user runs, under no_grad: cache, cached video pass, both streams, no refs."""
    x, t, text, refs = _inputs(device=device, dtype=dtype)
    if per_token:  # Wan2.2 TI2V: per-token timesteps (B, S), the first latent frame clean
        tokens = VIDEO[0] * (VIDEO[1] // 2) * (VIDEO[2] // 2)
        t = t[:, None].repeat(1, tokens)
        t[:, : tokens // VIDEO[0]] = 0.0
    out = {}
    with torch.no_grad():
        cache = model.encode_references(refs, KINDS, VIDEO)
        for i, (k, v) in enumerate(zip(cache.keys, cache.values)):
            out[f"cache.key.{i}"], out[f"cache.value.{i}"] = k, v
        out["cached"] = model(x, t, text, reference_cache=cache, return_dict=False)[0]
        out["latents"] = model(x, t, text, reference_latents=refs, reference_types=KINDS).sample
        out["no_refs"] = model(x, t, text).sample
    return {k: v.float().cpu().contiguous() for k, v in out.items()}


# The CUDA run needs a head dim the GPU kernels take (a multiple of 8).
CUDA_CONFIG = {"attention_head_dim": 16}


def main(out: str, device: str) -> None:
    """Worker: for ring and Ulysses, a model under diffusers' `enable_parallelism`; each rank writes its results.

    device "cpu": gloo, fp32, with the stand-ins below; "cuda": NCCL, one GPU per rank, bf16, diffusers unchanged.
    """
    import torch.distributed as dist
    from diffusers import ContextParallelConfig
    from diffusers.models import attention_dispatch
    from safetensors.torch import save_file

    from wildactor.default_model import TINY_TRANSFORMER_CONFIG

    config, dtype = dict(TINY_TRANSFORMER_CONFIG), torch.float32
    if device == "cuda":
        dist.init_process_group("nccl")
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        config, dtype = {**config, **CUDA_CONFIG}, torch.bfloat16
    else:
        dist.init_process_group("gloo")
        # enable_parallelism maps ranks to accelerator devices (rank % device_count()): a CPU has none. And
        # `_native_flash`'s kernel is CUDA-only. Both stand-ins keep diffusers' own code paths: mesh, hooks,
        # templated ring / Ulysses attention with LSE.
        torch.accelerator.device_count = lambda: 1
        attention_dispatch._native_flash_attention_forward_op = _cpu_flash_forward_op
    rank = dist.get_rank()
    target = f"cuda:{torch.cuda.current_device()}" if device == "cuda" else "cpu"
    results: dict[str, torch.Tensor] = {}
    for name, degrees in (("ring", {"ring_degree": 2}), ("ulysses", {"ulysses_degree": 2})):
        model = _model(config).to(device=target, dtype=dtype)
        model.set_attention_backend("_native_flash")
        model.enable_parallelism(config=ContextParallelConfig(**degrees))
        tokens_seen: list[int] = []
        model.blocks[0].register_forward_pre_hook(
            lambda _, args, seen=tokens_seen: seen.append(args[0].shape[1])
        )
        for per_token in (False, True):
            got = _run_all(model, per_token, target, dtype)
            results.update({f"{name}.{int(per_token)}.{k}": v for k, v in got.items()})
        results[f"{name}.block0_tokens"] = torch.tensor(tokens_seen)
        results[f"{name}.parallel_calls"] = torch.tensor([_CALLS["parallel"]])
        _CALLS["parallel"] = 0
    save_file(results, f"{out}.{rank}")
    dist.barrier()
    dist.destroy_process_group()


def _launch(out: Path, device: str) -> list[dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        str(Path(__file__).resolve()), str(out), device,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [load_file(f"{out}.{r}") for r in range(2)]


def _check_ranks(ranks, expected, tolerance: float, stand_in: bool) -> None:
    for name in ("ring", "ulysses"):
        for got in ranks:
            # Each pass of `_run_all`: block 0 gets all 32 reference tokens in the reference stream, and half of
            # the 48 video tokens in the cached video pass, the both-streams pass and the pass without references.
            assert got[f"{name}.block0_tokens"].tolist() == [32, 24, 24, 24] * 2
            if stand_in:  # 3 video passes x 2 blocks x 2 timestep kinds through the templated attention
                assert int(got[f"{name}.parallel_calls"]) == 12 * (
                    2 if name == "ring" else 1
                )  # ring: 2 steps
            for p, want in expected.items():
                for key, value in want.items():
                    torch.testing.assert_close(
                        got[f"{name}.{p}.{key}"],
                        value,
                        rtol=tolerance,
                        atol=tolerance,
                        msg=f"{name} {p} {key}",
                    )
        for key in ranks[0]:  # the reference K/V are replicated: identical on both ranks
            if ".cache." in key:
                assert torch.equal(ranks[0][key], ranks[1][key]), key


@pytest.mark.slow
def test_two_processes_ring_and_ulysses_with_references_match_one_process(tmp_path):
    from wildactor.default_model import TINY_TRANSFORMER_CONFIG

    ranks = _launch(tmp_path / "cp.safetensors", "cpu")
    model = _model(TINY_TRANSFORMER_CONFIG)  # one process, diffusers' default backend, no hooks
    expected = {int(p): _run_all(model, per_token=p) for p in (False, True)}
    _check_ranks(ranks, expected, tolerance=1e-5, stand_in=True)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="context parallel over NCCL needs 2 GPUs")
def test_two_gpus_ring_and_ulysses_with_references_match_one_gpu(tmp_path):
    from wildactor.default_model import TINY_TRANSFORMER_CONFIG

    ranks = _launch(tmp_path / "cp.safetensors", "cuda")
    model = _model({**TINY_TRANSFORMER_CONFIG, **CUDA_CONFIG}).to("cuda", torch.bfloat16)
    expected = {int(p): _run_all(model, p, "cuda", torch.bfloat16) for p in (False, True)}
    _check_ranks(ranks, expected, tolerance=5e-2, stand_in=False)


@pytest.mark.gpu
def test_cuda_kernels_return_the_natural_log_sum_exp_the_merge_expects():
    # The merge trusts each backend's LSE layout (B, S, H) and base (natural log, scores scaled by 1/sqrt(D)).
    # diffusers' ring attention feeds these forward ops the same way (no autograd context needed to save).
    from diffusers.models import attention_dispatch as ad

    gen = torch.Generator().manual_seed(4)
    query, key, value = (torch.randn(2, 96, 4, 64, generator=gen).cuda().bfloat16() for _ in range(3))
    for op in (ad._native_flash_attention_forward_op, ad._cudnn_attention_forward_op):
        parts = [op(None, query, key[:, s], value[:, s], return_lse=True, _save_ctx=False)
                 for s in (slice(0, 40), slice(40, None))]  # fmt: skip
        out_a, lse_a = parts[0]
        assert lse_a.shape == out_a.shape[:3], op.__name__
        torch.testing.assert_close(lse_a.float(), attention_with_lse(query, key[:, :40], value[:, :40])[1],
                                   rtol=1e-2, atol=1e-2)  # fmt: skip
        out, _ = merge_attention(*parts[0], *parts[1])
        torch.testing.assert_close(
            out, _sdpa(query.float(), key.float(), value.float()), rtol=2e-2, atol=2e-2
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
