"""Asymmetric Identity-Preserving Attention (AIPA).

Two ideas live here:
1. Reference-only LoRA: reference tokens project q/k/v with W + ΔW_ref; video tokens use the frozen W.
2. Asymmetric flow: video queries attend to [video K/V ; reference K/V]; reference queries attend to reference
   K/V only. The reference stream therefore never sees the video, so its per-layer K/V can be computed once
   (`ReferenceCache`) and reused for every denoising step, both CFG branches and every shot.

Attention is two mask-free calls through diffusers' `dispatch_attention_fn`, so any backend (native, flash,
sage, ...) works; `model.set_attention_backend(name)` reaches this processor like Wan's own.

Under context parallel (diffusers' `enable_parallelism`) each rank holds a shard of the video tokens and the same
full set of reference K/V. Video queries then attend to all video K/V through the backend's ring/Ulysses attention,
which returns its log-sum-exp, and to the replicated reference K/V locally; the two are merged exactly
(`lse_merge.merge_attention`). That needs a backend that returns the LSE under context parallel
(`LSE_PARALLEL_BACKENDS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.models.attention_dispatch import (
    AttentionBackendName,
    _AttentionBackendRegistry,
    dispatch_attention_fn,
)
from diffusers.models.transformers.transformer_wan import WanAttention, _get_qkv_projections
from torch import nn

from wildactor.model.lse_merge import attention_with_lse, merge_attention

# diffusers' attention backends (0.42) whose context-parallel path returns the log-sum-exp (B, S, H) that merging
# the reference K/V needs. `native` and `_native_npu` support context parallel but refuse `return_lse`.
LSE_PARALLEL_BACKENDS = frozenset(
    {
        "flash", "flash_hub", "flash_varlen_hub", "_flash_3_hub", "_flash_3_varlen_hub", "_native_cudnn",
        "_native_flash", "sage", "sage_hub",
    }
)  # fmt: skip


class LoRAProjection(nn.Module):
    """A low-rank update x -> scale * up(down(x)). `up` starts at zero, so the update starts at zero."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=False)
        self.scale = alpha / rank

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x)) * self.scale


class ReferenceLoRA(nn.Module):
    """The reference-only LoRA of one block's self-attention: q, k and v (not the output projection).

    Module names are `q`, `k`, `v` (not `to_q`...), so an ordinary PEFT LoRA targeting Wan's `to_q`/`to_k`/`to_v`
    never matches them. `query=False` leaves out the q update: in the last block the references' queries feed
    nothing (no later block reads reference tokens), so that LoRA would never receive a gradient.
    """

    def __init__(self, dim: int, inner_dim: int, rank: int, alpha: float, query: bool = True) -> None:
        super().__init__()
        self.q = LoRAProjection(dim, inner_dim, rank, alpha) if query else None
        self.k = LoRAProjection(dim, inner_dim, rank, alpha)
        self.v = LoRAProjection(dim, inner_dim, rank, alpha)

    def reset_parameters(self) -> None:
        for proj in (self.q, self.k, self.v):
            if proj is not None:
                proj.reset_parameters()


@dataclass
class LayerKV:
    """Where a block leaves the reference K/V it computed (each (B, S_ref, heads, head_dim)).

    Passed into the block call and filled there, so the K/V leave the block without the block's output changing
    type: hooks that wrap `blocks[i]` (block caches, offloading) see a plain tensor in and out.
    """

    key: torch.Tensor | None = None
    value: torch.Tensor | None = None


@dataclass(frozen=True)
class ReferenceCache:
    """Per-layer reference keys and values (after QK-norm and I-RoPE), computed once from the references.

    keys[i], values[i]: (B, S_ref, heads, head_dim) for block i. `video_shape` is the latent (F, H, W) the
    I-RoPE coordinates were computed for; the cache is valid for any video of that shape.
    """

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    video_shape: tuple[int, int, int]
    reference_types: tuple[str, ...]

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    @property
    def num_tokens(self) -> int:
        return self.keys[0].shape[1]

    @property
    def num_layers(self) -> int:
        return len(self.keys)

    def layer(self, index: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K/V of one block for a batch of `batch_size` videos (a batch-1 cache broadcasts without copying)."""
        key, value = self.keys[index], self.values[index]
        if key.shape[0] == batch_size:
            return key, value
        if key.shape[0] == 1:
            return key.expand(batch_size, -1, -1, -1), value.expand(batch_size, -1, -1, -1)
        raise ValueError(f"reference cache has batch {key.shape[0]}, video batch is {batch_size}")

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> ReferenceCache:
        move = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        return ReferenceCache(
            tuple(map(move, self.keys)), tuple(map(move, self.values)), self.video_shape, self.reference_types
        )


def apply_rotary(x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of x (B, S, H, D) by tables (1, S, 1, D), exactly as Wan's processor does."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)  # each (B, S, H, D/2)
    cos = freqs_cos[..., 0::2]
    sin = freqs_sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


def project_qkv(
    attn: WanAttention,
    hidden_states: torch.Tensor,
    rotary_emb: tuple[torch.Tensor, torch.Tensor],
    lora: ReferenceLoRA | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Self-attention q, k, v (B, S, heads, head_dim) after QK-norm and rotary.

    With `lora` (reference tokens) the projections are W + ΔW_ref; without it (video tokens), the base W only.
    """
    query, key, value = _get_qkv_projections(attn, hidden_states, None)  # each (B, S, inner)
    if lora is not None:
        if lora.q is not None:
            query = query + lora.q(hidden_states)
        key = key + lora.k(hidden_states)
        value = value + lora.v(hidden_states)
    query = attn.norm_q(query)  # RMS-norm across heads, before the head split (as Wan)
    key = attn.norm_k(key)
    query = query.unflatten(2, (attn.heads, -1))  # (B, S, H, D)
    key = key.unflatten(2, (attn.heads, -1))
    value = value.unflatten(2, (attn.heads, -1))
    query = apply_rotary(query, *rotary_emb)
    key = apply_rotary(key, *rotary_emb)
    return query, key, value


class AIPAAttnProcessor:
    """Stateless self-attention processor for WildActor blocks; owns no weights and no cache.

    Called like Wan's processor for video tokens; `reference_kv` (K/V of the reference tokens of this block,
    each (B, S_ref, H, D)) extends the keys and values the video queries attend to. Under context parallel
    (`_parallel_config` set by `enable_parallelism`) the video tokens are this rank's shard and `reference_kv` is
    the full, replicated set; see the module docstring.
    """

    _attention_backend = None
    _parallel_config = None

    def attend(
        self,
        attn: WanAttention,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        parallel_config: object | None = None,
    ) -> torch.Tensor:
        """One mask-free attention call + output projection; (B, Sq, H, D) x (B, Sk, H, D) -> (B, Sq, dim)."""
        out = dispatch_attention_fn(
            query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, backend=self._attention_backend,
            parallel_config=parallel_config,
        )  # fmt: skip
        return self._project(attn, out.type_as(query))

    def _project(self, attn: WanAttention, out: torch.Tensor) -> torch.Tensor:
        out = out.flatten(2, 3)  # (B, Sq, H*D)
        out = attn.to_out[0](out)
        return attn.to_out[1](out)

    def backend_name(self) -> str:
        """The attention backend this processor dispatches to (its own, else diffusers' active one)."""
        if self._attention_backend is not None:
            return AttentionBackendName(self._attention_backend).value
        return _AttentionBackendRegistry.get_active_backend()[0].value

    def attend_parallel(
        self,
        attn: WanAttention,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        ref_key: torch.Tensor,
        ref_value: torch.Tensor,
    ) -> torch.Tensor:
        """Context parallel: this rank's video queries over [all ranks' video K/V ; the replicated reference K/V].

        query/key/value (B, S_local, H, D) are this rank's shard; ref_key/ref_value (B, S_ref, H, D) are the same on
        every rank. Returns (B, S_local, dim), equal to one process attending to the concatenation.
        """
        backend = self.backend_name()
        if backend not in LSE_PARALLEL_BACKENDS:
            raise NotImplementedError(
                f"context parallel with references needs an attention backend that returns its log-sum-exp under "
                f"context parallel ({', '.join(sorted(LSE_PARALLEL_BACKENDS))}); this model uses {backend!r}. "
                "Call model.set_attention_backend(...) before enable_parallelism"
            )
        if torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value, ref_key, ref_value)):
            raise NotImplementedError(
                "training under context parallel with references is not supported: diffusers' ring/Ulysses "
                "backward ignores the gradient of the log-sum-exp that merges in the reference K/V. Run inference "
                "under torch.no_grad()"
            )
        # All ranks' video K/V, through the backend's ring / Ulysses attention: (B, S_local, H, D), (B, S_local, H).
        out_video, lse_video = dispatch_attention_fn(
            query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
            attention_kwargs={"return_lse": True}, backend=self._attention_backend,
            parallel_config=self._parallel_config,
        )  # fmt: skip
        if tuple(lse_video.shape) != tuple(out_video.shape[:3]):
            raise RuntimeError(
                f"backend {backend!r} returned a log-sum-exp of shape {tuple(lse_video.shape)} for an output of "
                f"shape {tuple(out_video.shape)}; expected (B, S, H)"
            )
        out_ref, lse_ref = attention_with_lse(query, ref_key, ref_value)  # the replicated references, locally
        out, _ = merge_attention(out_video, lse_video, out_ref, lse_ref)
        return self._project(attn, out.type_as(query))

    def __call__(
        self,
        attn: WanAttention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        reference_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("AIPAAttnProcessor is a self-attention processor without masks")
        query, key, value = project_qkv(attn, hidden_states, rotary_emb)
        if reference_kv is None:  # Wan's self-attention, context parallel included (video tokens sharded)
            return self.attend(attn, query, key, value, self._parallel_config)
        ref_key, ref_value = reference_kv
        if self._parallel_config is not None:
            return self.attend_parallel(
                attn, query, key, value, ref_key.to(key.dtype), ref_value.to(value.dtype)
            )
        key = torch.cat([key, ref_key.to(key.dtype)], dim=1)  # (B, S_video + S_ref, H, D)
        value = torch.cat([value, ref_value.to(value.dtype)], dim=1)
        return self.attend(attn, query, key, value)
