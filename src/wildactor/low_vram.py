"""Generation on a small GPU: diffusers' offloading, VAE tiling, and 8-bit transformer weights (optimum-quanto).

Each is a pipeline-level switch (see `WildActorPipeline.enable_offload`, `enable_vae_tiling`,
`quantize_transformer`); none changes what the model computes except the 8-bit weights, which round them.

- offload ``"model"``: one whole component on the GPU at a time (diffusers' `enable_model_cpu_offload`);
- ``"sequential"``: one leaf module at a time (accelerate's `cpu_offload`, as `enable_sequential_cpu_offload`;
  slowest, least memory);
- ``"group"``: diffusers' group offloading (`enable_group_offload`), ``leaf_level`` by default;
- VAE tiling: `AutoencoderKLWan.enable_tiling` (encode and decode in overlapping tiles);
- ``int8`` / ``fp8`` weights: `optimum.quanto` quantizes the transformer's linear layers (weights only, activations
  stay in the compute dtype). The reference LoRA is left in full precision: it is small and it is what carries
  identity.
"""

from __future__ import annotations

from typing import Any

import torch

from wildactor.errors import WildActorError

OFFLOAD_MODES: tuple[str, ...] = ("none", "model", "sequential", "group")
WEIGHT_FORMATS: tuple[str, ...] = ("int8", "fp8")
# Module-name patterns kept out of weight quantization (fnmatch patterns, as optimum-quanto takes them).
QUANTIZE_EXCLUDE: tuple[str, ...] = ("reference_lora*", "*.reference_lora*", "proj_out", "patch_embedding")


def default_device() -> torch.device:
    """The accelerator generation should run on: CUDA if present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def apply_offload(
    pipe: Any, mode: str, device: torch.device | str | None = None, group_offload_type: str = "leaf_level"
) -> None:
    """Switch ``pipe`` (a diffusers pipeline) to an offload mode; ``device`` is where the work runs."""
    if mode not in OFFLOAD_MODES:
        raise WildActorError(f"unknown offload mode {mode!r} (use one of {', '.join(OFFLOAD_MODES)})")
    device = torch.device(device) if device is not None else default_device()
    if mode == "none":
        pipe.to(device)
    elif mode == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "sequential":
        # diffusers' enable_sequential_cpu_offload, without its rewrite of the device to "<type>:<index>"
        # (accelerate's hooks fail on "cpu:0", so the mode could not be checked on a CPU).
        from accelerate import cpu_offload

        pipe.to("cpu")
        for model in pipe.components.values():
            if isinstance(model, torch.nn.Module):
                cpu_offload(model, device, offload_buffers=len(model._parameters) > 0)
    else:
        pipe.enable_group_offload(
            onload_device=device, offload_device=torch.device("cpu"), offload_type=group_offload_type
        )


def is_offloaded(module: torch.nn.Module) -> bool:
    """Whether accelerate (model/sequential) or diffusers (group) offload hooks manage ``module``."""
    if getattr(module, "_hf_hook", None) is not None:
        return True
    try:
        from diffusers.hooks.group_offloading import _is_group_offload_enabled
    except ImportError:  # an older diffusers without group offloading
        return False
    return bool(_is_group_offload_enabled(module))


def onload(module: torch.nn.Module) -> None:
    """Run ``module``'s offload hook as its ``forward`` would, for a method that is not ``forward``
    (diffusers' `apply_forward_hook` does the same for a VAE's ``encode``/``decode``)."""
    hook = getattr(module, "_hf_hook", None)
    if hook is not None and hasattr(hook, "pre_forward"):
        hook.pre_forward(module)


def enable_vae_tiling(vae: torch.nn.Module, **tile_sizes: Any) -> None:
    """Tiled VAE encode/decode; ``tile_sizes`` are `AutoencoderKLWan.enable_tiling`'s arguments."""
    if not hasattr(vae, "enable_tiling"):
        raise WildActorError(f"{type(vae).__name__} has no tiled mode (an AutoencoderKLWan has one)")
    vae.enable_tiling(**tile_sizes)


def quantize_transformer(transformer: torch.nn.Module, weights: str = "int8") -> torch.nn.Module:
    """Replace the transformer's linear weights by int8 or float8 (e4m3) ones, in place; the reference LoRA,
    the patch embedding and the output projection stay as they are."""
    if weights not in WEIGHT_FORMATS:
        raise WildActorError(f"unknown weight format {weights!r} (use one of {', '.join(WEIGHT_FORMATS)})")
    try:
        from optimum.quanto import freeze, qfloat8, qint8, quantize
    except ImportError as exc:
        raise WildActorError(
            "8-bit weights need optimum-quanto: pip install 'wildactor[lowvram]' (or optimum-quanto)"
        ) from exc
    quantize(transformer, weights=qint8 if weights == "int8" else qfloat8, exclude=list(QUANTIZE_EXCLUDE))
    freeze(transformer)
    return transformer


def weight_bytes(module: torch.nn.Module) -> int:
    """Bytes held by a module's parameters and buffers (quantized weights count their 8-bit data + scales)."""
    total = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        inner = [getattr(tensor, name) for name in ("_data", "_scale") if hasattr(tensor, name)]
        if inner:  # an optimum-quanto QTensor: its storage is the 8-bit data and the scales
            total += sum(t.numel() * t.element_size() for t in inner)
        else:
            total += tensor.numel() * tensor.element_size()
    return total
