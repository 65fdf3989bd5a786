"""One precision policy: the trainer casts a model to the per-weight dtypes diffusers loads it with."""

from __future__ import annotations

import torch

from wildactor.model import WildActorTransformer3DModel
from wildactor.precision import cast_frozen


def test_cast_frozen_gives_the_dtypes_from_pretrained_gives(tiny_transformer_config, tmp_path):
    torch.manual_seed(0)
    WildActorTransformer3DModel(**tiny_transformer_config, lora_rank=4).save_pretrained(tmp_path / "t")
    loaded = WildActorTransformer3DModel.from_pretrained(tmp_path / "t", torch_dtype=torch.bfloat16)
    cast = WildActorTransformer3DModel.from_pretrained(tmp_path / "t")
    cast_frozen(cast, "cpu", torch.bfloat16)
    want = {n: p.dtype for n, p in loaded.named_parameters()}
    got = {n: p.dtype for n, p in cast.named_parameters()}
    assert got == want
    # both kinds occur: the modulation tables (block and output) and norms stay fp32, projections go bf16
    assert got["blocks.0.scale_shift_table"] == got["scale_shift_table"] == torch.float32
    assert got["blocks.0.attn1.to_q.weight"] == torch.bfloat16
