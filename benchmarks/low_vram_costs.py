"""GPU weight memory of Wan2.2-TI2V-5B + WildActor under each low-VRAM option, COMPUTED from parameter counts.

No GPU was used: the components are built on PyTorch's meta device from the released configurations
(transformer, UMT5-XXL text encoder, Wan2.2 VAE), and the bytes each option keeps on the GPU at once are
counted. Activations, the reference K/V cache and allocator overhead are not included; they depend on resolution
and frame count.

    python benchmarks/low_vram_costs.py --out benchmarks/results/low_vram_costs_computed.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from common import machine_info

# Wan-AI/Wan2.2-TI2V-5B(-Diffusers) configurations.
TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48,
    text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
)  # fmt: skip
TEXT_ENCODER = dict(
    vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, feed_forward_proj="gated-gelu",
)  # fmt: skip
VAE = dict(
    base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
    temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12, patch_size=2,
    scale_factor_spatial=16, scale_factor_temporal=4,
)  # fmt: skip
GB = 1e9


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _largest_leaf(module: torch.nn.Module) -> int:
    """Parameters of the largest module holding parameters directly (what one leaf-level step moves)."""
    return max(sum(p.numel() for p in m.parameters(recurse=False)) for m in module.modules())


def main() -> None:
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    from wildactor.low_vram import QUANTIZE_EXCLUDE
    from wildactor.model import WildActorTransformer3DModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with torch.device("meta"):
        transformer = WildActorTransformer3DModel(**TRANSFORMER, lora_rank=128)
        text_encoder = UMT5EncoderModel(UMT5Config(**TEXT_ENCODER))
        vae = AutoencoderKLWan(**VAE)
    n_t, n_te, n_vae = _params(transformer), _params(text_encoder), _params(vae)
    n_lora = sum(p.numel() for p in transformer.reference_lora_parameters())
    linear_weights = sum(
        m.weight.numel()
        for name, m in transformer.named_modules()
        if isinstance(m, torch.nn.Linear) and not any(x.strip("*.") in name for x in QUANTIZE_EXCLUDE)
    )
    # bf16 transformer and text encoder (2 bytes), float32 VAE (the pipeline keeps it in float32).
    t_bytes, te_bytes, vae_bytes = 2 * n_t, 2 * n_te, 4 * n_vae
    # 8-bit: those linear weights at 1 byte each (+ one bf16 scale per output row, below 0.1 % here: ignored).
    t8_bytes = t_bytes - linear_weights
    largest_block = max(_params(b) for b in transformer.blocks) * 2 + n_lora // len(transformer.blocks) * 2
    leaf = max(2 * _largest_leaf(transformer), 2 * _largest_leaf(text_encoder), 4 * _largest_leaf(vae))
    rows = [
        {"option": "--offload none", "gpu_weights_gb": (t_bytes + te_bytes + vae_bytes) / GB},
        {"option": "--offload model", "gpu_weights_gb": max(t_bytes, te_bytes, vae_bytes) / GB},
        {"option": "--offload group (block_level, 1 block)", "gpu_weights_gb": max(largest_block, leaf) / GB},
        {"option": "--offload sequential / group (leaf_level)", "gpu_weights_gb": leaf / GB},
        {
            "option": "int8|fp8 transformer, --offload none",
            "gpu_weights_gb": (t8_bytes + te_bytes + vae_bytes) / GB,
        },
        {
            "option": "int8|fp8 transformer, --offload model",
            "gpu_weights_gb": max(t8_bytes, te_bytes, vae_bytes) / GB,
        },
    ]
    for row in rows:
        print(f"{row['option']:45s} {row['gpu_weights_gb']:7.2f} GB")
    result = {
        "benchmark": "low_vram_costs",
        "kind": "COMPUTED from parameter counts on the meta device; no GPU measurement",
        "command": "python benchmarks/low_vram_costs.py",
        "machine": machine_info(),
        "parameters": {
            "transformer_incl_reference_lora": n_t,
            "reference_lora_rank128": n_lora,
            "text_encoder_umt5_xxl": n_te,
            "vae": n_vae,
            "transformer_linear_weights_quantized": linear_weights,
        },  # fmt: skip
        "dtypes": {"transformer": "bfloat16", "text_encoder": "bfloat16", "vae": "float32"},
        "excluded": "activations, reference K/V cache, CUDA context and allocator overhead",
        "rows": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
