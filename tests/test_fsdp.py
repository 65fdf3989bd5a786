"""FSDP shards a WildActor model for real: two processes (gloo, CPU), FSDP1 and FSDP2 (`fully_shard` per block),
a forward with references and a backward give the unsharded loss and reference-LoRA gradients.

The file is also the worker that `torch.distributed.run` starts (see `main`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from _ports import free_port

KINDS = ["face", "body", "body"]


def _model():
    from wildactor.default_model import TINY_TRANSFORMER_CONFIG
    from wildactor.model import WildActorTransformer3DModel

    torch.manual_seed(0)
    model = WildActorTransformer3DModel(**TINY_TRANSFORMER_CONFIG)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.reference_lora_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model.enable_reference_training()
    return model


def _batch():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 3, 8, 8, generator=gen)
    text = torch.randn(2, 7, 16, generator=gen)
    refs = torch.randn(2, 4, len(KINDS), 8, 8, generator=gen)
    return x, torch.tensor([700.0, 200.0]), text, refs


def _loss(model) -> torch.Tensor:
    x, t, text, refs = _batch()
    return model(x, t, text, reference_latents=refs, reference_types=KINDS).sample.square().mean()


def _lora_grads(model, full) -> dict[str, torch.Tensor]:
    return {n: full(p.grad).clone() for n, p in model.named_parameters() if p.requires_grad}


def main(out: str) -> None:
    """Worker: FSDP1 (one unit per block, use_orig_params) then FSDP2; rank 0 writes loss and full gradients."""
    import torch.distributed as dist
    from safetensors.torch import save_file
    from torch.distributed.fsdp import FullyShardedDataParallel, fully_shard
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from wildactor.model.transformer import WildActorTransformerBlock

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    results: dict[str, torch.Tensor] = {}

    model = _model()
    wrapped = FullyShardedDataParallel(
        model,
        auto_wrap_policy=ModuleWrapPolicy({WildActorTransformerBlock}),
        use_orig_params=True,
        device_id=torch.device("cpu"),
    )
    blocks = sum(isinstance(m, FullyShardedDataParallel) for m in wrapped.modules()) - 1
    local = sum(p.numel() for p in wrapped.parameters())
    loss = _loss(wrapped)
    loss.backward()
    with FullyShardedDataParallel.summon_full_params(wrapped, with_grads=True):
        grads = _lora_grads(wrapped.module, lambda g: g)
    results["fsdp1.loss"] = loss.detach().reshape(1)
    results["fsdp1.units"] = torch.tensor([blocks])
    results["fsdp1.local_numel"] = torch.tensor([local])
    results.update({f"fsdp1.{k.replace('_fsdp_wrapped_module.', '')}": v for k, v in grads.items()})

    model = _model()
    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)
    local = sum(p.to_local().numel() for p in model.parameters())
    loss = _loss(model)
    loss.backward()
    results["fsdp2.loss"] = loss.detach().reshape(1)
    results["fsdp2.local_numel"] = torch.tensor([local])
    results.update({f"fsdp2.{k}": v for k, v in _lora_grads(model, lambda g: g.full_tensor()).items()})
    if rank == 0:
        save_file({k: v.contiguous() for k, v in results.items()}, out)
    dist.barrier()
    dist.destroy_process_group()


def test_fsdp1_and_fsdp2_with_references_match_the_unsharded_model(tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "fsdp.safetensors"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        str(Path(__file__).resolve()), str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = load_file(str(out))

    model = _model()
    loss = _loss(model)
    loss.backward()
    expected = _lora_grads(model, lambda g: g)
    total = sum(p.numel() for p in model.parameters())
    assert int(got["fsdp1.units"]) == len(model.blocks)  # one FSDP unit per WildActor block
    for engine in ("fsdp1", "fsdp2"):
        assert int(got[f"{engine}.local_numel"]) < 0.75 * total  # each process really holds a shard
        torch.testing.assert_close(got[f"{engine}.loss"][0], loss.detach(), rtol=1e-5, atol=1e-6)
        for name, grad in expected.items():
            assert grad.abs().sum() > 0, name
            torch.testing.assert_close(got[f"{engine}.{name}"], grad, rtol=1e-4, atol=1e-6, msg=name)


if __name__ == "__main__":
    main(sys.argv[1])
