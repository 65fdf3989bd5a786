"""One precision policy for training and generation.

- The frozen transformer and text encoder are stored in the run's dtype except diffusers' declared fp32 islands
  (`_keep_in_fp32_modules`: norms, time embedder, modulation tables, ...), matched against every parameter's
  dotted name exactly as `ModelMixin.from_pretrained(torch_dtype=...)` matches them, so the trainer casts a
  model to the same per-weight dtypes the pipeline loads it with.
- The VAE runs in fp32 everywhere (`VAE_DTYPE`), as Wan's pipelines run it: the latent cache encodes clips and
  references with the VAE the pipeline encodes references with.
"""

from __future__ import annotations

import torch

VAE_DTYPE = torch.float32


def keeps_fp32(module: torch.nn.Module, name: str) -> bool:
    """Whether the parameter/buffer ``name`` of ``module`` stays fp32 under diffusers' loading rule."""
    keep = getattr(module, "_keep_in_fp32_modules", None) or []
    parts = name.split(".")
    return any(k in parts for k in keep)


def cast_frozen(module: torch.nn.Module, device: torch.device | str, dtype: torch.dtype) -> None:
    """Move ``module`` to ``device`` and store its floating weights in ``dtype``, fp32 islands excepted."""
    tensors = list(module.parameters()) + list(module.buffers())
    if any(t.device != torch.device(device) for t in tensors):
        module.to(device=device)
    for name, param in module.named_parameters():
        if param.is_floating_point():
            param.data = param.data.to(torch.float32 if keeps_fp32(module, name) else dtype)
    for name, sub in module.named_modules():
        for bname, buf in sub.named_buffers(recurse=False):
            full = f"{name}.{bname}" if name else bname
            if buf.is_floating_point():
                setattr(sub, bname, buf.to(torch.float32 if keeps_fp32(module, full) else dtype))
