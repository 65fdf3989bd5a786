"""WildActorTransformer3DModel: Wan2.2's video DiT with a reference stream (AIPA + I-RoPE + reference LoRA)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel, WanTransformerBlock
from diffusers.utils import apply_lora_scale
from diffusers.utils import logging as diffusers_logging
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from wildactor.errors import WildActorError
from wildactor.model.aipa import AIPAAttnProcessor, ReferenceCache, ReferenceLoRA, project_qkv
from wildactor.model.irope import (
    IRoPEConfig,
    normalize_reference_types,
    reference_coordinates,
    rotary_tables,
    video_coordinates,
)

ATTENTION_MODES = ("aipa", "full")
LORA_PREFIX = "reference_lora."
LORA_FORMAT = "wildactor-reference-lora"

Modulation = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _modulation(block: WanTransformerBlock, temb: torch.Tensor) -> Modulation:
    """shift, scale, gate (attention) and shift, scale, gate (FFN), as Wan's block computes them (fp32)."""
    if temb.ndim == 4:  # (B, S, 6, D): per-token timesteps (Wan2.2 TI2V)
        parts = (block.scale_shift_table.unsqueeze(0) + temb.float()).chunk(6, dim=2)
        return tuple(p.squeeze(2) for p in parts)  # each (B, S, D)
    return (block.scale_shift_table + temb.float()).chunk(6, dim=1)  # each (B, 1, D)


def _modulate(norm: nn.Module, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (norm(x.float()) * (1 + scale) + shift).type_as(x)


def _gated(x: torch.Tensor, update: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    return (x.float() + update.float() * gate).type_as(x)


class WildActorTransformer3DModel(WanTransformer3DModel):
    """Wan transformer whose video tokens also attend to reference images of the actor.

    With no references it is exactly `WanTransformer3DModel`. References (one latent frame each) are patchified
    with the video's own embedding, modulated with timestep 0, skip text cross-attention, and use a
    reference-only LoRA on self-attention q/k/v. `attention_mode="aipa"`: video attends to references,
    references never attend to video. `attention_mode="full"`: one joint attention both ways (ablation).
    `rope_mode="irope"`: references get their own I-RoPE coordinates; `"shared"`: video frame 0's (ablation).
    """

    _keys_to_ignore_on_load_unexpected = ["norm_added_q"]

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 40,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 13824,
        num_layers: int = 40,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = None,
        added_kv_proj_dim: int | None = None,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
        lora_rank: int = 128,
        lora_alpha: float | None = None,
        face_temporal_offset: int = 4,
        body_temporal_offset: int = 128,
        reference_frame_stride: int = 4,
        attention_mode: str = "aipa",
        rope_mode: str = "irope",
    ) -> None:
        if attention_mode not in ATTENTION_MODES:
            raise ValueError(f"attention_mode must be one of {ATTENTION_MODES}, got {attention_mode!r}")
        if lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {lora_rank}")
        super().__init__(
            patch_size=patch_size,
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            in_channels=in_channels,
            out_channels=out_channels,
            text_dim=text_dim,
            freq_dim=freq_dim,
            ffn_dim=ffn_dim,
            num_layers=num_layers,
            cross_attn_norm=cross_attn_norm,
            qk_norm=qk_norm,
            eps=eps,
            image_dim=image_dim,
            added_kv_proj_dim=added_kv_proj_dim,
            rope_max_seq_len=rope_max_seq_len,
            pos_embed_seq_len=pos_embed_seq_len,
        )
        self.irope = IRoPEConfig(
            face_temporal_offset, body_temporal_offset, reference_frame_stride, rope_mode
        )
        inner_dim = num_attention_heads * attention_head_dim
        alpha = float(lora_rank if lora_alpha is None else lora_alpha)
        self.reference_lora = nn.ModuleList(
            [ReferenceLoRA(inner_dim, inner_dim, lora_rank, alpha) for _ in range(num_layers)]
        )
        for block in self.blocks:
            block.attn1.set_processor(AIPAAttnProcessor())
        self.reset_reference_lora()

    # ------------------------------------------------------------------ weights

    def reset_reference_lora(self) -> None:
        """All LoRA init in one place: down-projections random, up-projections zero (ΔW_ref = 0)."""
        for lora in self.reference_lora:
            lora.reset_parameters()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *args: Any, **kwargs: Any):
        """Load a diffusers Wan checkpoint (base weights); LoRA weights it lacks start at zero-B.

        Extra config arguments (`lora_rank=...`, `attention_mode=...`) override the saved config.
        """
        want_info = kwargs.pop("output_loading_info", False)
        # diffusers warns that missing weights are "newly initialized"; for the LoRA that is expected and
        # handled below, so keep its log quiet for this call.
        verbosity = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
            )
        finally:
            diffusers_logging.set_verbosity(verbosity)
        unexpected_missing = [k for k in info["missing_keys"] if not k.startswith(LORA_PREFIX)]
        if unexpected_missing:
            raise WildActorError(
                f"{pretrained_model_name_or_path}: checkpoint lacks base weights {sorted(unexpected_missing)[:5]}"
            )
        missing = [k for k in info["missing_keys"] if k.startswith(LORA_PREFIX)]
        if missing:
            # A base Wan checkpoint: its LoRA tensors were never written, so (re)create and initialise them.
            lora_params = {n: p for n, p in model.named_parameters() if n.startswith(LORA_PREFIX)}
            device = next(p.device for n, p in model.named_parameters() if not n.startswith(LORA_PREFIX))
            dtype = model.patch_embedding.weight.dtype
            model.reference_lora.to_empty(device=device)
            model.reference_lora.to(dtype=dtype)
            model.reset_reference_lora()
            info["missing_keys"] = [k for k in info["missing_keys"] if k not in lora_params]
        return (model, info) if want_info else model

    def enable_reference_training(self) -> None:
        """Freeze the base model; only the reference LoRA is trainable."""
        self.requires_grad_(False)
        self.reference_lora.requires_grad_(True)

    def reference_lora_parameters(self) -> Iterator[nn.Parameter]:
        return self.reference_lora.parameters()

    def reference_lora_state_dict(self) -> dict[str, torch.Tensor]:
        return {LORA_PREFIX + k: v for k, v in self.reference_lora.state_dict().items()}

    def _lora_metadata(self) -> dict[str, str]:
        return {
            "format": LORA_FORMAT,
            "rank": str(self.config.lora_rank),
            "alpha": str(float(self.config.lora_alpha or self.config.lora_rank)),
            "num_layers": str(self.config.num_layers),
            "dim": str(self.config.num_attention_heads * self.config.attention_head_dim),
        }

    def save_reference_lora(self, path: str | Path) -> Path:
        """Write the reference LoRA as safetensors (keys prefixed `reference_lora.`) plus a JSON beside it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.reference_lora_state_dict().items()}
        meta = self._lora_metadata()
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        return path

    def load_reference_lora(self, path: str | Path) -> None:
        """Load a file written by `save_reference_lora`; refuses files of another format or shape."""
        path = Path(path)
        if not path.is_file():
            raise WildActorError(f"reference LoRA file not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise WildActorError(f"{path} is not a readable safetensors file ({exc})") from exc
        if meta.get("format") != LORA_FORMAT:
            raise WildActorError(
                f"{path} is not a WildActor reference LoRA (format={meta.get('format')!r}); it must not be "
                "loaded as an ordinary LoRA, which would also change video tokens"
            )
        mine = self._lora_metadata()
        for field in ("rank", "num_layers", "dim"):
            if meta.get(field) != mine[field]:
                raise WildActorError(
                    f"{path} has {field}={meta.get(field)}, this model has {field}={mine[field]}"
                    + (f": build the model with lora_rank={meta.get('rank')}" if field == "rank" else "")
                )
        expected = self.reference_lora_state_dict()
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        if missing or extra:
            raise WildActorError(f"{path}: missing keys {missing[:3]}, unexpected keys {extra[:3]}")
        for key, value in tensors.items():
            if value.shape != expected[key].shape:
                raise WildActorError(
                    f"{path}: {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}"
                )
        if meta.get("alpha") != mine["alpha"]:
            raise WildActorError(f"{path} has lora_alpha={meta.get('alpha')}, this model {mine['alpha']}")
        state = {k[len(LORA_PREFIX) :]: v for k, v in tensors.items()}
        self.reference_lora.load_state_dict(state)

    # ------------------------------------------------------------------ geometry

    def _token_grid(self, latent_shape: Sequence[int]) -> tuple[int, int, int]:
        p_t, p_h, p_w = self.config.patch_size
        f, h, w = latent_shape
        return f // p_t, h // p_h, w // p_w

    def _video_rotary(self, latent_shape: Sequence[int], device: torch.device) -> tuple[torch.Tensor, ...]:
        coords = video_coordinates(*self._token_grid(latent_shape))
        cos, sin = rotary_tables(coords, self.config.attention_head_dim)
        return cos.to(device), sin.to(device)

    # ------------------------------------------------------------------ reference stream

    def _embed_references(
        self, reference_latents: torch.Tensor, reference_types: Sequence[str], video_shape: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor], tuple[str, ...]]:
        """Patchify references, build their t=0 modulation and I-RoPE tables.

        Returns tokens (B, R*h'*w', D), timestep projection (B, 6, D), rotary (cos, sin), normalised kinds.
        """
        if reference_latents.ndim != 5:
            raise ValueError(
                f"reference_latents must be (B, C, R, h, w), got shape {tuple(reference_latents.shape)}"
            )
        batch, channels, num_refs, height, width = reference_latents.shape
        kinds = normalize_reference_types(reference_types)
        if len(kinds) != num_refs:
            raise ValueError(f"{num_refs} reference latents but {len(kinds)} reference_types")
        if len(video_shape) != 3:
            raise ValueError(f"video_shape must be the latent (F, H, W), got {tuple(video_shape)}")
        p_t, p_h, p_w = self.config.patch_size
        if p_t != 1:
            raise ValueError("references are single latent frames and need a temporal patch size of 1")
        x = reference_latents.transpose(1, 2).reshape(batch * num_refs, channels, 1, height, width)
        x = self.patch_embedding(x)  # (B*R, D, 1, h', w')
        ref_h, ref_w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)  # (B*R, h'*w', D)
        tokens = x.reshape(batch, num_refs * ref_h * ref_w, -1).contiguous()  # (B, R*h'*w', D)

        ce = self.condition_embedder
        t0 = ce.timesteps_proj(torch.zeros(batch, device=tokens.device))  # (B, freq_dim)
        t0 = t0.to(next(ce.time_embedder.parameters()).dtype)
        temb = ce.time_embedder(t0).type_as(tokens)  # (B, D)
        timestep_proj = ce.time_proj(ce.act_fn(temb)).unflatten(1, (6, -1))  # (B, 6, D)

        coords = reference_coordinates(*self._token_grid(video_shape), kinds, ref_h, ref_w, self.irope)
        cos, sin = rotary_tables(coords, self.config.attention_head_dim)
        return tokens, timestep_proj, (cos.to(tokens.device), sin.to(tokens.device)), kinds

    def _reference_block(
        self,
        block: WanTransformerBlock,
        lora: ReferenceLoRA,
        x: torch.Tensor,
        timestep_proj: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        last: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One block of the reference stream alone: self-attention among references, no text, FFN.

        Returns (next tokens, K, V). The last block's output is never used, so it stops after K/V.
        """
        shift, scale, gate, c_shift, c_scale, c_gate = _modulation(block, timestep_proj)
        query, key, value = project_qkv(block.attn1, _modulate(block.norm1, x, shift, scale), rotary, lora)
        if last:
            return x, key, value
        x = _gated(x, block.attn1.processor.attend(block.attn1, query, key, value), gate)
        x = _gated(x, block.ffn(_modulate(block.norm3, x, c_shift, c_scale)), c_gate)
        return x, key, value

    def encode_references(
        self, reference_latents: torch.Tensor, reference_types: Sequence[str], video_shape: Sequence[int]
    ) -> ReferenceCache:
        """Run the reference stream alone and keep every block's K/V.

        reference_latents: (B, C, R, h, w), one latent frame per reference image; reference_types: R of
        "face" | "body"; video_shape: the video latent's (F, H, W). Needs no video, timestep or text.
        """
        if self.config.attention_mode != "aipa":
            raise ValueError(
                'attention_mode="full" mixes references with the video: no reference cache exists'
            )
        x, timestep_proj, rotary, kinds = self._embed_references(
            reference_latents, reference_types, video_shape
        )
        keys, values = [], []
        checkpoint = torch.is_grad_enabled() and self.gradient_checkpointing
        for i, (block, lora) in enumerate(zip(self.blocks, self.reference_lora)):
            last = i == len(self.blocks) - 1
            if checkpoint:
                x, key, value = self._gradient_checkpointing_func(
                    self._reference_block, block, lora, x, timestep_proj, rotary, last
                )
            else:
                x, key, value = self._reference_block(block, lora, x, timestep_proj, rotary, last)
            keys.append(key)
            values.append(value)
        return ReferenceCache(tuple(keys), tuple(values), tuple(int(s) for s in video_shape), kinds)

    # ------------------------------------------------------------------ video stream

    def _video_block(
        self,
        block: WanTransformerBlock,
        x: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep_proj: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        reference_kv: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Wan's block, with self-attention keys/values extended by the references' (AIPA)."""
        shift, scale, gate, c_shift, c_scale, c_gate = _modulation(block, timestep_proj)
        attn_out = block.attn1(
            _modulate(block.norm1, x, shift, scale), None, None, rotary, reference_kv=reference_kv
        )
        x = _gated(x, attn_out, gate)
        x = x + block.attn2(block.norm2(x.float()).type_as(x), encoder_hidden_states, None, None)
        return _gated(x, block.ffn(_modulate(block.norm3, x, c_shift, c_scale)), c_gate)

    def _joint_block(
        self,
        block: WanTransformerBlock,
        lora: ReferenceLoRA,
        x: torch.Tensor,
        r: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep_proj: torch.Tensor,
        ref_timestep_proj: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        ref_rotary: tuple[torch.Tensor, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Full-attention ablation: video (x) and reference (r) tokens in one self-attention, both ways.

        Returns (x, r, reference K, reference V).
        """
        shift, scale, gate, c_shift, c_scale, c_gate = _modulation(block, timestep_proj)
        r_shift, r_scale, r_gate, rc_shift, rc_scale, rc_gate = _modulation(block, ref_timestep_proj)
        q_v, k_v, v_v = project_qkv(block.attn1, _modulate(block.norm1, x, shift, scale), rotary)
        q_r, k_r, v_r = project_qkv(
            block.attn1, _modulate(block.norm1, r, r_shift, r_scale), ref_rotary, lora
        )
        out = block.attn1.processor.attend(
            block.attn1, torch.cat([q_v, q_r], 1), torch.cat([k_v, k_r], 1), torch.cat([v_v, v_r], 1)
        )  # (B, S_video + S_ref, D)
        x = _gated(x, out[:, : x.shape[1]], gate)
        r = _gated(r, out[:, x.shape[1] :], r_gate)
        x = x + block.attn2(block.norm2(x.float()).type_as(x), encoder_hidden_states, None, None)
        x = _gated(x, block.ffn(_modulate(block.norm3, x, c_shift, c_scale)), c_gate)
        r = _gated(r, block.ffn(_modulate(block.norm3, r, rc_shift, rc_scale)), rc_gate)
        return x, r, k_r, v_r

    def _run_blocks(
        self,
        x: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep_proj: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        video_shape: tuple[int, int, int],
        reference_latents: torch.Tensor | None,
        reference_types: Sequence[str] | None,
        reference_cache: ReferenceCache | None,
    ) -> tuple[torch.Tensor, ReferenceCache | None]:
        """All blocks over video tokens x (B, S, D). Returns the tokens and the reference K/V that were used."""
        checkpoint = torch.is_grad_enabled() and self.gradient_checkpointing
        run = self._gradient_checkpointing_func if checkpoint else (lambda fn, *a: fn(*a))

        if self.config.attention_mode == "full" and reference_latents is not None:
            r, ref_proj, ref_rotary, kinds = self._embed_references(
                reference_latents, reference_types, video_shape
            )
            keys, values = [], []
            for block, lora in zip(self.blocks, self.reference_lora):
                x, r, k_r, v_r = run(
                    self._joint_block, block, lora, x, r, encoder_hidden_states, timestep_proj, ref_proj,
                    rotary, ref_rotary,
                )  # fmt: skip
                keys.append(k_r)
                values.append(v_r)
            return x, ReferenceCache(tuple(keys), tuple(values), video_shape, kinds)

        if reference_latents is not None:
            reference_cache = self.encode_references(reference_latents, reference_types, video_shape)
        for i, block in enumerate(self.blocks):
            ref_kv = None if reference_cache is None else reference_cache.layer(i, x.shape[0])
            x = run(self._video_block, block, x, encoder_hidden_states, timestep_proj, rotary, ref_kv)
        return x, reference_cache

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        reference_latents: torch.Tensor | None = None,
        reference_types: Sequence[str] | None = None,
        reference_cache: ReferenceCache | None = None,
        return_dict: bool = True,
        encoder_hidden_states_image: torch.Tensor | None = None,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> torch.Tensor | Transformer2DModelOutput:
        """Predict the flow velocity of a video latent, conditioned on text and reference images.

        hidden_states: (B, C, F, H, W) noisy latent; timestep: (B,) or per-token (B, F'*H'*W');
        encoder_hidden_states: (B, L, text_dim); reference_latents: (B or 1, C, R, h, w) with
        reference_types (R of "face" | "body"), or a `reference_cache` from `encode_references` (AIPA only).
        Returns `.sample` of shape (B, C_out, F, H, W).
        """
        if reference_latents is not None and reference_cache is not None:
            raise ValueError("pass reference_latents or reference_cache, not both")
        if reference_latents is not None and reference_types is None:
            raise ValueError("reference_latents need reference_types")
        if reference_cache is not None:
            if self.config.attention_mode == "full":
                raise ValueError(
                    'attention_mode="full" cannot use a reference cache: references attend to video'
                )
            if tuple(reference_cache.video_shape) != tuple(hidden_states.shape[2:]):
                raise ValueError(
                    f"reference cache was built for video latent {reference_cache.video_shape}, "
                    f"got {tuple(hidden_states.shape[2:])}"
                )
            if reference_cache.num_layers != len(self.blocks):
                raise ValueError(
                    f"reference cache has {reference_cache.num_layers} layers, model {len(self.blocks)}"
                )

        batch_size, _, num_frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config.patch_size
        grid = (num_frames // p_t, height // p_h, width // p_w)
        rotary = self._video_rotary(hidden_states.shape[2:], hidden_states.device)

        x = self.patch_embedding(hidden_states)  # (B, D, F', H', W')
        x = x.flatten(2).transpose(1, 2).contiguous()  # (B, S, D)

        ts_seq_len = None
        if timestep.ndim == 2:  # per-token timesteps (B, S)
            ts_seq_len = timestep.shape[1]
            timestep = timestep.flatten()
        temb, timestep_proj, encoder_hidden_states, encoder_hidden_states_image = self.condition_embedder(
            timestep, encoder_hidden_states, encoder_hidden_states_image, timestep_seq_len=ts_seq_len
        )
        if ts_seq_len is not None:
            timestep_proj = timestep_proj.unflatten(2, (6, -1))  # (B, S, 6, D)
        else:
            timestep_proj = timestep_proj.unflatten(1, (6, -1))  # (B, 6, D)
        if encoder_hidden_states_image is not None:
            encoder_hidden_states = torch.concat([encoder_hidden_states_image, encoder_hidden_states], dim=1)

        video_shape = tuple(int(s) for s in hidden_states.shape[2:])
        x, _ = self._run_blocks(
            x, encoder_hidden_states, timestep_proj, rotary, video_shape,
            reference_latents, reference_types, reference_cache,
        )  # fmt: skip

        if temb.ndim == 3:  # (B, S, D)
            shift, scale = (self.scale_shift_table.unsqueeze(0).to(temb.device) + temb.unsqueeze(2)).chunk(
                2, dim=2
            )
            shift, scale = shift.squeeze(2), scale.squeeze(2)
        else:  # (B, D)
            shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        shift, scale = shift.to(x.device), scale.to(x.device)
        x = (self.norm_out(x.float()) * (1 + scale) + shift).type_as(x)
        x = self.proj_out(x)  # (B, S, C_out * p_t * p_h * p_w)

        x = x.reshape(batch_size, *grid, p_t, p_h, p_w, -1)  # (B, F', H', W', p_t, p_h, p_w, C_out)
        x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C_out, F', p_t, H', p_h, W', p_w)
        output = x.flatten(6, 7).flatten(4, 5).flatten(2, 3)  # (B, C_out, F, H, W)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


def reference_lora_parameter_count(dim: int, num_layers: int, rank: int) -> int:
    """Parameters of a rank-r LoRA on q, k, v (dim -> dim) in every block."""
    return num_layers * 3 * (dim * rank + rank * dim)
