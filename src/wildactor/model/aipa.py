"""Asymmetric Identity-Preserving Attention (AIPA).

Two ideas live here:
1. Reference-only LoRA: reference tokens project q/k/v with W + ΔW_ref; video tokens use the frozen W.
2. Asymmetric flow: video queries attend to [video K/V ; reference K/V]; reference queries attend to reference
   K/V only. The reference stream therefore never sees the video, so its per-layer K/V can be computed once
   (`ReferenceCache`) and reused for every denoising step, both CFG branches and every shot.

Attention is two mask-free calls through diffusers' `dispatch_attention_fn`, so any backend (native, flash,
sage, ...) works; `model.set_attention_backend(name)` reaches this processor like Wan's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_wan import WanAttention, _get_qkv_projections
from torch import nn


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
    each (B, S_ref, H, D)) extends the keys and values the video queries attend to.
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
        out = out.flatten(2, 3).type_as(query)  # (B, Sq, H*D)
        out = attn.to_out[0](out)
        return attn.to_out[1](out)

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
        if self._parallel_config is not None:
            raise NotImplementedError(
                "context parallel with references is not implemented: the replicated reference K/V would need "
                "to be merged with the sharded video attention (log-sum-exp); run references without it"
            )
        ref_key, ref_value = reference_kv
        key = torch.cat([key, ref_key.to(key.dtype)], dim=1)  # (B, S_video + S_ref, H, D)
        value = torch.cat([value, ref_value.to(value.dtype)], dim=1)
        return self.attend(attn, query, key, value)
