"""Per-GPU memory of a training run, before any GPU is rented: `wildactor train --config C --estimate-memory`.

Weights, gradients and optimizer state come from parameter counts of the models built on the meta device (no
weights are read) and the precision policy's per-weight dtypes. Activations are measured, not guessed: one
forward of the real model at the run's batch and token counts on the meta device, summing the bytes of every
distinct storage autograd saves for backward (parameters excluded). Two assumptions, stated in the output:

- attention is flash-style, O(S) memory (it saves q, k, v, the output and an fp32 log-sum-exp), as the GPU
  kernels (flash, cuDNN, memory-efficient SDPA) do; the meta device would take the math path and save the
  (S x S) score matrix instead.
- bf16/fp16 autocast has no meta backend: it is emulated by storing every weight in the autocast dtype except the
  precision policy's fp32 islands, so a matmul's output has the dtype autocast would give it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError
from wildactor.train.config import TrainConfig

GiB = 1024**3
_FLASH_NOTE = "attention flash-style (O(S) saved: q, k, v, out, fp32 log-sum-exp), as on GPUs"


@dataclass(frozen=True)
class TokenCounts:
    """What one micro-batch of one process feeds the transformer."""

    batch: int
    video: int  # per sample: latent frames x latent height x latent width / patch
    reference: int  # per sample, at most num_face + num_body references
    text: int  # per sample: model.max_text_length (the cache pads text back to it)


@dataclass(frozen=True)
class ActivationBytes:
    """Bytes autograd keeps for backward in one training forward."""

    without_checkpointing: int
    with_checkpointing: int  # block inputs of every layer + outside-block activations + one block recomputed
    largest_block: int
    outside_blocks: int


@dataclass(frozen=True)
class MemoryEstimate:
    source: str
    tokens: TokenCounts
    compute_dtype: str
    frozen_params: int
    frozen_bytes: int
    trainable_params: int
    trainable_bytes: int  # fp32
    gradient_bytes: int  # fp32, one per trainable weight
    optimizer_bytes: int  # AdamW: exp_avg + exp_avg_sq, fp32
    ema_bytes: int  # 0 without ema.decay
    encoder_bytes: int | None  # VAE (fp32) + text encoder (frozen dtype); None: configs not available
    encoder_note: str
    activations: ActivationBytes
    gradient_checkpointing: bool  # what the config asks for
    num_processes: int

    def sharded_bytes(self) -> int:
        """What FSDP splits over the processes: weights, gradients, optimizer state, EMA."""
        return (
            self.frozen_bytes
            + self.trainable_bytes
            + self.gradient_bytes
            + self.optimizer_bytes
            + self.ema_bytes
        )

    def per_gpu(self, strategy: str, checkpointing: bool) -> int:
        """Bytes per GPU for ``strategy`` "ddp" (everything replicated) or "fsdp" (sharded state / N)."""
        if strategy not in ("ddp", "fsdp"):
            raise ValueError(f"strategy must be ddp or fsdp, got {strategy!r}")
        state = self.sharded_bytes()
        if strategy == "fsdp":
            state = -(-state // self.num_processes)
        acts = (
            self.activations.with_checkpointing if checkpointing else self.activations.without_checkpointing
        )
        return state + acts

    def to_dict(self) -> dict[str, Any]:
        rows = {
            f"{s}_{'ckpt' if c else 'no_ckpt'}_gib": round(self.per_gpu(s, c) / GiB, 3)
            for s in ("ddp", "fsdp")
            for c in (False, True)
        }
        return {
            "source": self.source,
            "tokens": vars(self.tokens),
            "compute_dtype": self.compute_dtype,
            "num_processes": self.num_processes,
            "frozen_params": self.frozen_params,
            "frozen_bytes": self.frozen_bytes,
            "trainable_params": self.trainable_params,
            "trainable_bytes": self.trainable_bytes,
            "gradient_bytes": self.gradient_bytes,
            "optimizer_bytes": self.optimizer_bytes,
            "ema_bytes": self.ema_bytes,
            "encoder_bytes": self.encoder_bytes,
            "activations": vars(self.activations),
            "per_gpu": rows,
            "assumptions": [
                _FLASH_NOTE,
                "FSDP shards weights, gradients and optimizer state, not activations",
            ],
        }


def estimate_memory(cfg: TrainConfig, num_processes: int = 1) -> MemoryEstimate:
    """Build the run's models on the meta device, count their bytes, measure one forward's saved activations."""
    import torch

    from wildactor.model import WildActorTransformer3DModel
    from wildactor.precision import cast_frozen, keeps_fp32

    if num_processes < 1:
        raise WildActorError(f"--num-processes must be >= 1, got {num_processes}")
    m = cfg.model
    source, tconfig, vconfig, text_config = _configs(cfg)
    with torch.device("meta"):
        try:
            transformer = WildActorTransformer3DModel.from_config({**tconfig, **m.overrides})
        except (TypeError, ValueError) as exc:
            raise WildActorError(f"{source}: the transformer config does not build: {exc}") from None
    if cfg.optimizer.trainable == "lora":
        transformer.enable_reference_training()
    else:
        transformer.requires_grad_(True)

    frozen_dtype = getattr(torch, cfg.precision.frozen_dtype)
    frozen_params = frozen_bytes = trainable_params = 0
    for name, p in transformer.named_parameters():
        if p.requires_grad:
            trainable_params += p.numel()
        else:
            frozen_params += p.numel()
            keep = keeps_fp32(transformer, name) or not p.is_floating_point()
            frozen_bytes += p.numel() * (p.element_size() if keep else frozen_dtype.itemsize)
    for name, b in transformer.named_buffers():
        keep = keeps_fp32(transformer, name) or not b.is_floating_point()
        frozen_bytes += b.numel() * (b.element_size() if keep else frozen_dtype.itemsize)
    trainable_bytes = 4 * trainable_params

    tokens = token_counts(cfg, transformer.config, vconfig)
    compute = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
        cfg.precision.mixed_precision
    ]
    # autocast emulated: every weight (trainable ones too: autocast computes them in its dtype) in the compute
    # dtype except the fp32 islands, so each op's output has the dtype autocast would give it
    cast_frozen(transformer, "meta", compute)
    activations = measure_activations(transformer, cfg, vconfig, compute)

    encoder_bytes, encoder_note = _encoder_bytes(vconfig, text_config, frozen_dtype, cfg)
    return MemoryEstimate(
        source=source,
        tokens=tokens,
        compute_dtype=str(compute).removeprefix("torch."),
        frozen_params=frozen_params,
        frozen_bytes=frozen_bytes,
        trainable_params=trainable_params,
        trainable_bytes=trainable_bytes,
        gradient_bytes=trainable_bytes,
        optimizer_bytes=2 * trainable_bytes,
        ema_bytes=trainable_bytes if cfg.ema.decay is not None else 0,
        encoder_bytes=encoder_bytes,
        encoder_note=encoder_note,
        activations=activations,
        gradient_checkpointing=m.gradient_checkpointing,
        num_processes=num_processes,
    )


def _configs(cfg: TrainConfig) -> tuple[str, dict, dict | None, dict | None]:
    """(source, transformer config, VAE config or None, text-encoder config or None) without loading weights."""
    m = cfg.model
    if m.pretrained is None:
        return "inline model config", dict(m.transformer), dict(m.vae), dict(m.text_encoder)
    root = Path(m.pretrained)
    path = root / "transformer" / "config.json"
    if not path.is_file():
        raise WildActorError(f"model.pretrained: {path} not found (a diffusers Wan folder?)")
    optional = []
    for sub in ("vae", "text_encoder"):
        p = root / sub / "config.json"
        optional.append(json.loads(p.read_text()) if p.is_file() else None)
    try:
        tconfig = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WildActorError(f"{path}: not JSON ({exc})") from None
    return str(path), tconfig, optional[0], optional[1]


def latent_grid(
    cfg: TrainConfig, tconfig: Any, vconfig: dict | None
) -> tuple[tuple[int, int, int], tuple[int, int]]:
    """The video latent's (F, H, W) and one reference latent's (h, w), from the data sizes and the VAE strides."""
    d = cfg.data
    vconfig = vconfig or {}
    if vconfig.get("kind") == "pixel":
        spatial, temporal = vconfig.get("scale_factor_spatial", 4), 1
    else:  # AutoencoderKLWan's defaults where the config does not say
        spatial, temporal = vconfig.get("scale_factor_spatial", 8), vconfig.get("scale_factor_temporal", 4)
    temporal = temporal or 1
    video = ((d.num_frames - 1) // temporal + 1, d.height // spatial, d.width // spatial)
    return video, ((d.ref_height or d.height) // spatial, (d.ref_width or d.width) // spatial)


def token_counts(cfg: TrainConfig, tconfig: Any, vconfig: dict | None) -> TokenCounts:
    """Tokens per sample: latent grid / patch size; references at most num_face + num_body."""
    (f, h, w), (rh, rw) = latent_grid(cfg, tconfig, vconfig)
    p_t, p_h, p_w = tconfig.patch_size
    refs = cfg.sampler.num_face + cfg.sampler.num_body
    return TokenCounts(
        cfg.data.batch_size, (f // p_t) * (h // p_h) * (w // p_w), refs * (rh // p_h) * (rw // p_w),
        cfg.model.max_text_length,
    )  # fmt: skip


def measure_activations(transformer, cfg: TrainConfig, vconfig: dict | None, dtype: Any) -> ActivationBytes:
    """One training forward on the meta device; saved-for-backward bytes per block and outside the blocks.

    ``transformer`` lives on the meta device with its weights in the dtypes to emulate. Each distinct storage
    counts once; parameters and buffers do not count (they are weights, already resident)."""
    import torch

    tc = transformer.config
    video_grid, ref_grid = latent_grid(cfg, tc, vconfig)
    weight_storages = {
        t.untyped_storage()._cdata for t in list(transformer.parameters()) + list(transformer.buffers())
    }
    seen: set[int] = set()
    per_block = [0] * len(transformer.blocks)
    outside = [0]
    inputs_seen: set[int] = set()
    inputs = [0]
    current: list[int | None] = [None]
    keep_alive: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage()._cdata
        if key not in weight_storages and key not in seen:
            seen.add(key)
            keep_alive.append(t)  # storages stay distinct while counted
            size = t.untyped_storage().nbytes()
            if current[0] is None:
                outside[0] += size
            else:
                per_block[current[0]] += size
        return t

    def pre_hook(index: int):
        def hook(module, args, kwargs=None):
            current[0] = index
            for a in list(args) + list((kwargs or {}).values()):
                for t in a if isinstance(a, tuple) else (a,):
                    if isinstance(t, torch.Tensor) and t.untyped_storage()._cdata not in weight_storages:
                        key = t.untyped_storage()._cdata
                        if key not in inputs_seen:
                            inputs_seen.add(key)
                            keep_alive.append(t)
                            inputs[0] += t.untyped_storage().nbytes()

        return hook

    def post_hook(module, args, output):
        current[0] = None

    handles = []
    for i, block in enumerate(transformer.blocks):
        handles.append(block.register_forward_pre_hook(pre_hook(i)))
        handles.append(block.register_forward_hook(post_hook))
    kinds = ["face"] * cfg.sampler.num_face + ["body"] * cfg.sampler.num_body
    b = cfg.data.batch_size
    try:
        with torch.device("meta"):
            z = torch.empty(b, tc.in_channels, *video_grid, dtype=dtype)  # (B, C, F, H, W)
            refs = torch.empty(b, tc.in_channels, len(kinds), *ref_grid, dtype=dtype)  # (B, C, R, h, w)
            text = torch.empty(b, cfg.model.max_text_length, tc.text_dim, dtype=dtype)  # (B, L, D_text)
            t = torch.full((b,), 500.0)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x), _flash_style_attention():
            pred = transformer(z, t, text, reference_latents=refs, reference_types=kinds).sample
            loss = (pred.float() - z.float()).pow(2).mean()
    finally:
        for h in handles:
            h.remove()
    del loss
    # With checkpointing a block keeps only its inputs; backward recomputes one block at a time.
    with_ckpt = outside[0] + inputs[0] + max(per_block)
    return ActivationBytes(
        without_checkpointing=outside[0] + sum(per_block),
        with_checkpointing=with_ckpt,
        largest_block=max(per_block),
        outside_blocks=outside[0],
    )


def _flash_style_attention():
    """A context in which `F.scaled_dot_product_attention` saves what a flash kernel saves (O(S))."""
    import torch
    from torch.overrides import TorchFunctionMode

    class FlashStyle(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v):  # (B, H, Sq, D), (B, H, Sk, D), (B, H, Sk, Dv)
            out = q.new_empty(*q.shape[:-1], v.shape[-1])
            lse = q.new_empty(q.shape[:-1], dtype=torch.float32)  # (B, H, Sq)
            ctx.save_for_backward(q, k, v, out, lse)
            return out

        @staticmethod
        def backward(ctx, grad):  # never run: the estimate does no backward
            q, k, v, _, _ = ctx.saved_tensors
            return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.nn.functional.scaled_dot_product_attention:
                names = ("query", "key", "value")
                q, k, v = list(args[:3]) + [kwargs[n] for n in names[len(args[:3]) :]]
                return FlashStyle.apply(q, k, v)
            return func(*args, **kwargs)

    return Mode()


def _encoder_bytes(
    vconfig: dict | None, text_config: dict | None, frozen_dtype, cfg: TrainConfig
) -> tuple[int | None, str]:
    """VAE (fp32) + text encoder (frozen dtype) bytes, counted on the meta device."""
    import torch

    where = (
        "on the GPU while the latent cache is built, then moved to the CPU"
        if cfg.data.cache_dir is not None
        else "on the GPU for the whole run (no data.cache_dir)"
    )
    if vconfig is None or text_config is None:
        return None, "n/a: the pretrained folder has no vae/config.json or text_encoder/config.json"
    from transformers import UMT5Config, UMT5EncoderModel

    with torch.device("meta"):
        if vconfig.get("kind", "wan") == "pixel":
            from wildactor.model.pixel_vae import PixelShuffleVAE

            kwargs = {k: v for k, v in vconfig.items() if k != "kind"}
            vae = None if "pretrained" in kwargs else PixelShuffleVAE(**kwargs)
        else:
            from diffusers import AutoencoderKLWan

            vae = AutoencoderKLWan.from_config({k: v for k, v in vconfig.items() if k != "kind"})
        text_kwargs = {k: v for k, v in text_config.items() if not k.startswith("_")}
        text = UMT5EncoderModel(UMT5Config(**text_kwargs))
    vae_bytes = 0 if vae is None else sum(4 * p.numel() for p in vae.parameters())
    text_bytes = 0
    for name, p in text.named_parameters():
        keep = any(k in name.split(".") for k in (getattr(text, "_keep_in_fp32_modules", None) or []))
        text_bytes += p.numel() * (4 if keep else frozen_dtype.itemsize)
    return vae_bytes + text_bytes, where


def format_estimate(est: MemoryEstimate) -> str:
    """The report `--estimate-memory` prints."""

    def gib(n: int | None) -> str:
        if n is None:
            return "      n/a"
        for unit, size in (("GiB", GiB), ("MiB", 1024**2)):
            if n >= size:
                return f"{n / size:9.2f} {unit}"
        return f"{n / 1024:9.2f} KiB"

    n, t, a = est.num_processes, est.tokens, est.activations
    lines = [
        f"memory estimate per GPU ({est.source}; compute dtype {est.compute_dtype}; {n} process(es))",
        f"tokens per sample: {t.video} video, {t.reference} reference, {t.text} text; batch {t.batch} per GPU",
        f"  frozen weights     {gib(est.frozen_bytes)}  ({est.frozen_params:,} params, policy dtypes)",
        f"  trainable weights  {gib(est.trainable_bytes)}  ({est.trainable_params:,} params, fp32)",
        f"  gradients          {gib(est.gradient_bytes)}  (fp32)",
        f"  AdamW state        {gib(est.optimizer_bytes)}  (exp_avg + exp_avg_sq, fp32)",
        f"  EMA                {gib(est.ema_bytes)}" + ("" if est.ema_bytes else "  (ema.decay not set)"),
        f"  activations        {gib(a.without_checkpointing)}  without gradient checkpointing (measured)",
        f"  activations        {gib(a.with_checkpointing)}  with gradient checkpointing"
        + ("  <- this config" if est.gradient_checkpointing else ""),
        f"  VAE + text encoder {gib(est.encoder_bytes)}  ({est.encoder_note}; not in the totals)",
        f"total per GPU          {'no checkpointing':>18} {'checkpointing':>15}",
    ]
    for strategy, label in (("ddp", f"DDP x{n}"), ("fsdp", f"FSDP x{n}")):
        lines.append(
            f"  {label:<20} {gib(est.per_gpu(strategy, False)):>18} {gib(est.per_gpu(strategy, True)):>15}"
        )
    lines += [
        "FSDP shards weights, gradients and optimizer state over the processes, not activations.",
        *(
            [
                f"{est.compute_dtype} autocast emulated (it has no meta backend): weights in {est.compute_dtype} except"
                " the fp32 islands."
            ]
            if est.compute_dtype != "float32"
            else []
        ),
        f"Assumes {_FLASH_NOTE}. Allocator fragmentation, CUDA context (~0.5-1 GiB) and temporaries of backward "
        "are not included.",
    ]
    return "\n".join(lines)
