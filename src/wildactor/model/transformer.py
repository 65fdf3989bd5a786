"""WildActorTransformer3DModel: Wan2.2's video DiT with a reference stream (AIPA + I-RoPE + reference LoRA)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel, WanTransformerBlock
from diffusers.utils import apply_lora_scale
from diffusers.utils import logging as diffusers_logging
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from wildactor.errors import WildActorError
from wildactor.model.aipa import AIPAAttnProcessor, LayerKV, ReferenceCache, ReferenceLoRA, project_qkv
from wildactor.model.irope import IRoPE, IRoPEConfig, normalize_reference_types

ATTENTION_MODES = ("aipa", "full")
LORA_PREFIX = (
    "reference_lora."  # key prefix in reference-LoRA files: reference_lora.{i}.to_{q,k,v}.{down,up}.weight
)
LORA_FORMAT = "wildactor-reference-lora"
logger = logging.getLogger(__name__)
_FILE_PROJ = {"q": "to_q", "k": "to_k", "v": "to_v"}  # module name -> file name of each projection

Modulation = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Rotary = tuple[torch.Tensor, torch.Tensor]


def _modulation(table: torch.Tensor, temb: torch.Tensor) -> Modulation:
    """shift, scale, gate (attention) and shift, scale, gate (FFN), as Wan's block computes them (fp32)."""
    if temb.ndim == 4:  # (B, S, 6, D): per-token timesteps (Wan2.2 TI2V)
        parts = (table.unsqueeze(0) + temb.float()).chunk(6, dim=2)
        return tuple(p.squeeze(2) for p in parts)  # each (B, S, D)
    return (table + temb.float()).chunk(6, dim=1)  # each (B, 1, D)


def _modulate(norm: nn.Module, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (norm(x.float()) * (1 + scale) + shift).type_as(x)


def _gated(x: torch.Tensor, update: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    return (x.float() + update.float() * gate).type_as(x)


class WildActorTransformerBlock(WanTransformerBlock):
    """Wan's block plus this layer's reference LoRA; its `forward` runs every use of the layer.

    One call = one use, so anything that wraps or hooks `blocks[i]` (FSDP, diffusers' block caches, group
    offloading, regional compile, context parallel) sees the video pass, the reference stream and the
    full-attention ablation alike:

    - video: `block(x, text, temb, rotary, reference_kv=None)` -> x, Wan's block with the self-attention keys and
      values extended by this layer's cached reference K/V (AIPA). Without them it is Wan's block exactly.
    - reference stream alone: `block(r, None, r_temb, r_rotary, reference_out=slot)` -> next r, self-attention
      among references only (LoRA on q/k/v, no text); the layer's reference K/V are left in `slot`.
    - both at once (training): `block(x, text, temb, rotary, reference_hidden_states=r, reference_temb=...,
      reference_rotary_emb=..., reference_out=slot)` -> (x, next r). In "aipa" mode the reference stream runs
      first and the video attends to its K/V; in "full" mode video and references share one attention.
    """

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        num_heads: int,
        qk_norm: str = "rms_norm_across_heads",
        cross_attn_norm: bool = False,
        eps: float = 1e-6,
        added_kv_proj_dim: int | None = None,
        lora_rank: int = 128,
        lora_alpha: float | None = None,
        attention_mode: str = "aipa",
        last: bool = False,
    ) -> None:
        super().__init__(dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps, added_kv_proj_dim)
        if attention_mode not in ATTENTION_MODES:
            raise ValueError(f"attention_mode must be one of {ATTENTION_MODES}, got {attention_mode!r}")
        self.attention_mode = attention_mode
        # The last layer's reference output feeds nothing: it stops after K/V and needs no query LoRA.
        self.reference_output_used = not last
        alpha = float(lora_rank if lora_alpha is None else lora_alpha)
        self.reference_lora = ReferenceLoRA(dim, dim, lora_rank, alpha, query=not last)
        self.attn1.set_processor(AIPAAttnProcessor())

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None,
        temb: torch.Tensor,
        rotary_emb: Rotary,
        reference_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        reference_hidden_states: torch.Tensor | None = None,
        reference_temb: torch.Tensor | None = None,
        reference_rotary_emb: Rotary | None = None,
        reference_out: LayerKV | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """hidden_states (B, S, D) -> (B, S, D); with reference_hidden_states (B, S_ref, D), a pair. See the class."""
        if encoder_hidden_states is None:  # the reference stream alone
            r, key, value = self._reference_stream(hidden_states, temb, rotary_emb)
            if reference_out is not None:
                reference_out.key, reference_out.value = key, value
            return r
        if reference_hidden_states is None:
            return self._video(hidden_states, encoder_hidden_states, temb, rotary_emb, reference_kv)
        if reference_kv is not None:
            raise ValueError("pass reference tokens or their cached K/V, not both")
        if reference_temb is None or reference_rotary_emb is None:
            raise ValueError("reference_hidden_states need reference_temb and reference_rotary_emb")
        if self.attention_mode == "full":
            x, r, key, value = self._joint(
                hidden_states, reference_hidden_states, encoder_hidden_states, temb, reference_temb,
                rotary_emb, reference_rotary_emb,
            )  # fmt: skip
        else:
            r, key, value = self._reference_stream(
                reference_hidden_states, reference_temb, reference_rotary_emb
            )
            x = self._video(hidden_states, encoder_hidden_states, temb, rotary_emb, (key, value))
        if reference_out is not None:
            reference_out.key, reference_out.value = key, value
        return x, r

    def _reference_stream(
        self, r: torch.Tensor, temb: torch.Tensor, rotary: Rotary
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-attention among references (q/k/v with the LoRA), no text, FFN. Returns (next r, K, V)."""
        shift, scale, gate, c_shift, c_scale, c_gate = _modulation(self.scale_shift_table, temb)
        query, key, value = project_qkv(
            self.attn1, _modulate(self.norm1, r, shift, scale), rotary, self.reference_lora
        )
        if not self.reference_output_used:
            return r, key, value
        r = _gated(r, self.attn1.processor.attend(self.attn1, query, key, value), gate)
        r = _gated(r, self.ffn(_modulate(self.norm3, r, c_shift, c_scale)), c_gate)
        return r, key, value

    def _video(
        self,
        x: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary: Rotary,
        reference_kv: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Wan's block, with self-attention keys/values extended by the references' (AIPA)."""
        shift, scale, gate, c_shift, c_scale, c_gate = _modulation(self.scale_shift_table, temb)
        attn_out = self.attn1(
            _modulate(self.norm1, x, shift, scale), None, None, rotary, reference_kv=reference_kv
        )
        x = _gated(x, attn_out, gate)
        x = x + self.attn2(self.norm2(x.float()).type_as(x), encoder_hidden_states, None, None)
        return _gated(x, self.ffn(_modulate(self.norm3, x, c_shift, c_scale)), c_gate)

    def _joint(
        self,
        x: torch.Tensor,
        r: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        ref_temb: torch.Tensor,
        rotary: Rotary,
        ref_rotary: Rotary,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Full-attention ablation: video (x) and reference (r) tokens in one self-attention, both ways.

        Returns (x, r, reference K, reference V).
        """
        shift, scale, gate, c_shift, c_scale, c_gate = _modulation(self.scale_shift_table, temb)
        r_shift, r_scale, r_gate, rc_shift, rc_scale, rc_gate = _modulation(self.scale_shift_table, ref_temb)
        q_v, k_v, v_v = project_qkv(self.attn1, _modulate(self.norm1, x, shift, scale), rotary)
        q_r, k_r, v_r = project_qkv(
            self.attn1, _modulate(self.norm1, r, r_shift, r_scale), ref_rotary, self.reference_lora
        )
        # The last layer's reference queries are never used: only the video queries attend.
        q = torch.cat([q_v, q_r], 1) if self.reference_output_used else q_v
        out = self.attn1.processor.attend(
            self.attn1, q, torch.cat([k_v, k_r], 1), torch.cat([v_v, v_r], 1)
        )  # (B, S_video [+ S_ref], D)
        x = _gated(x, out[:, : x.shape[1]], gate)
        if self.reference_output_used:
            r = _gated(r, out[:, x.shape[1] :], r_gate)
        x = x + self.attn2(self.norm2(x.float()).type_as(x), encoder_hidden_states, None, None)
        x = _gated(x, self.ffn(_modulate(self.norm3, x, c_shift, c_scale)), c_gate)
        if self.reference_output_used:
            r = _gated(r, self.ffn(_modulate(self.norm3, r, rc_shift, rc_scale)), rc_gate)
        return x, r, k_r, v_r


class VideoTokens(nn.Module):
    """Where the video tokens and their timesteps enter the blocks: an identity, owning no weights.

    Context parallel shards them here (the model's `_cp_plan`). The reference stream never passes through it, so
    reference tokens, which run the same blocks, stay whole and identical on every rank.
    """

    def forward(
        self, hidden_states: torch.Tensor, timestep: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden_states (B, S, D) and timestep (B,) or per-token (B, S), returned as they are."""
        return hidden_states, timestep


class WildActorTransformer3DModel(WanTransformer3DModel):
    """Wan transformer whose video tokens also attend to reference images of the actor.

    With no references it is exactly `WanTransformer3DModel`. References (one latent frame each) are patchified
    with the video's own embedding, modulated with timestep 0, skip text cross-attention, and use a
    reference-only LoRA on self-attention q/k/v. `attention_mode="aipa"`: video attends to references,
    references never attend to video. `attention_mode="full"`: one joint attention both ways (ablation).
    `rope_mode="irope"`: references get their own I-RoPE coordinates; `"shared"`: video frame 0's (ablation).
    """

    _keys_to_ignore_on_load_unexpected = ["norm_added_q"]
    _no_split_modules = ["WildActorTransformerBlock"]
    _repeated_blocks = ["WildActorTransformerBlock"]
    # Context parallel (`enable_parallelism`): as Wan's plan (rotary tables, video tokens and per-token timesteps
    # split along the sequence, the output gathered), except that video tokens and timesteps are split at
    # `video_tokens` instead of at `blocks.0` and the model's input: the reference stream calls `blocks.0` too, and
    # its tokens must stay whole (replicated) on every rank.
    _cp_plan = {
        "rope": {
            0: ContextParallelInput(split_dim=1, expected_dims=4, split_output=True),
            1: ContextParallelInput(split_dim=1, expected_dims=4, split_output=True),
        },
        "video_tokens": {
            "hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False),
            "timestep": ContextParallelInput(split_dim=1, expected_dims=2, split_output=False),
        },
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }

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
        self.rope = IRoPE(attention_head_dim, patch_size, self.irope)
        self.video_tokens = VideoTokens()
        inner_dim = num_attention_heads * attention_head_dim
        self.blocks = nn.ModuleList(
            [
                WildActorTransformerBlock(
                    inner_dim,
                    ffn_dim,
                    num_attention_heads,
                    qk_norm,
                    cross_attn_norm,
                    eps,
                    added_kv_proj_dim,
                    lora_rank=lora_rank,
                    lora_alpha=lora_alpha,
                    attention_mode=attention_mode,
                    last=i == num_layers - 1,
                )  # fmt: skip
                for i in range(num_layers)
            ]
        )
        self._reference_calls = 0  # names a fresh cache context for each reference encoding
        self.reset_reference_lora()

    def enable_cache(self, config: Any) -> None:
        """diffusers' caches (FirstBlockCache, ...) for this model: its block class is registered first."""
        register_block_metadata()
        super().enable_cache(config)

    # ------------------------------------------------------------------ weights

    def reset_reference_lora(self) -> None:
        """All LoRA init in one place: down-projections random, up-projections zero (ΔW_ref = 0)."""
        for block in self.blocks:
            block.reference_lora.reset_parameters()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *args: Any, **kwargs: Any):
        """Load a diffusers Wan checkpoint (base weights); LoRA weights it lacks start at zero-B.

        Extra config arguments (`lora_rank=...`, `attention_mode=...`) override the saved config. A saved
        WildActor model of the earlier layout (`reference_lora.{i}.to_q...` at the top level) loads too. A
        `lora_rank` other than the saved one loads the base weights and starts a new LoRA at zero-B (the saved
        LoRA of the other rank is not loaded, and the log says so).
        """
        want_info = kwargs.pop("output_loading_info", False)
        saved_rank = None
        if "lora_rank" in kwargs:
            saved = cls.load_config(pretrained_model_name_or_path, subfolder=kwargs.get("subfolder"))
            if saved.get("lora_rank", kwargs["lora_rank"]) != kwargs["lora_rank"]:
                saved_rank = saved["lora_rank"]
                kwargs["ignore_mismatched_sizes"] = True
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
        mismatched = [m[0] for m in info.get("mismatched_keys", [])]
        mismatched_base = sorted(k for k in mismatched if not _is_lora_name(k))
        if mismatched_base:
            raise WildActorError(
                f"{pretrained_model_name_or_path}: base weights of another shape {mismatched_base[:5]}"
            )
        if mismatched:  # a LoRA of another rank: as if the folder had none
            logger.warning(
                "%s: its rank-%s reference LoRA is not loaded (rank %s requested); the new LoRA starts at zero-B",
                pretrained_model_name_or_path,
                saved_rank,
                kwargs.get("lora_rank"),
            )
            info["missing_keys"] = list(info["missing_keys"]) + mismatched
            info["mismatched_keys"] = []
        unexpected_missing = [k for k in info["missing_keys"] if not _is_lora_name(k)]
        if unexpected_missing:
            raise WildActorError(
                f"{pretrained_model_name_or_path}: checkpoint lacks base weights {sorted(unexpected_missing)[:5]}"
            )
        old_layout = [k for k in info.get("unexpected_keys", []) if k.startswith(LORA_PREFIX)]
        if [k for k in info["missing_keys"] if _is_lora_name(k)]:
            # A base Wan checkpoint (or the earlier layout): its LoRA tensors were not loaded into the blocks, so
            # (re)create and initialise them, then take the earlier layout's tensors if the folder has them.
            device = next(p.device for n, p in model.named_parameters() if not _is_lora_name(n))
            dtype = model.patch_embedding.weight.dtype
            for block in model.blocks:
                block.reference_lora.to_empty(device=device)
                block.reference_lora.to(dtype=dtype)
            model.reset_reference_lora()
            if old_layout:
                model._load_earlier_layout(pretrained_model_name_or_path, kwargs.get("subfolder"))
            info["missing_keys"] = [k for k in info["missing_keys"] if not _is_lora_name(k)]
            info["unexpected_keys"] = [k for k in info.get("unexpected_keys", []) if k not in old_layout]
        return (model, info) if want_info else model

    def _load_earlier_layout(self, folder: str | Path, subfolder: str | None) -> None:
        from safetensors.torch import load_file

        root = Path(folder) / (subfolder or "")
        tensors: dict[str, torch.Tensor] = {}
        for file in sorted(root.glob("*.safetensors")):
            tensors.update({k: v for k, v in load_file(str(file)).items() if k.startswith(LORA_PREFIX)})
        self.load_reference_lora_tensors(tensors, source=str(root))

    def enable_reference_training(self) -> None:
        """Freeze the base model; only the reference LoRA is trainable."""
        self.requires_grad_(False)
        for p in self.reference_lora_parameters():
            p.requires_grad_(True)

    def reference_lora_parameters(self) -> Iterator[nn.Parameter]:
        for block in self.blocks:
            yield from block.reference_lora.parameters()

    def reference_lora_state_dict(self) -> dict[str, torch.Tensor]:
        """The reference LoRA under its file keys: `reference_lora.{i}.to_{q,k,v}.{down,up}.weight`."""
        return reference_lora_file_tensors(self.state_dict())

    def _lora_metadata(self) -> dict[str, str]:
        last = self.config.num_layers - 1
        return {
            "format": LORA_FORMAT,
            "rank": str(self.config.lora_rank),
            "alpha": str(float(self.config.lora_alpha or self.config.lora_rank)),
            "num_layers": str(self.config.num_layers),
            "dim": str(self.config.num_attention_heads * self.config.attention_head_dim),
            # Files stay interchangeable with layouts that have a q LoRA in every block: that one is zero here.
            "omitted": f"{LORA_PREFIX}{last}.to_q (the last block's reference queries are never used)",
        }

    def save_reference_lora(self, path: str | Path, extra_metadata: dict[str, str] | None = None) -> Path:
        """Write the reference LoRA as safetensors (keys prefixed `reference_lora.`) plus a JSON beside it;
        ``extra_metadata`` (e.g. the training's ``reference_fit``) joins the file's metadata."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.reference_lora_state_dict().items()}
        meta = {**self._lora_metadata(), **(extra_metadata or {})}
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
        if meta.get("alpha") != mine["alpha"]:
            raise WildActorError(f"{path} has lora_alpha={meta.get('alpha')}, this model {mine['alpha']}")
        self.load_reference_lora_tensors(tensors, source=str(path))

    def load_reference_lora_tensors(self, tensors: dict[str, torch.Tensor], source: str = "tensors") -> None:
        """Load reference-LoRA tensors under their file keys. The last block's q LoRA, which files of the
        earlier layout carry, is dropped: it never had any effect on the output."""
        expected = self.reference_lora_state_dict()
        dead = f"{LORA_PREFIX}{self.config.num_layers - 1}.to_q."
        tensors = {k: v for k, v in tensors.items() if not k.startswith(dead)}
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        if missing or extra:
            raise WildActorError(f"{source}: missing keys {missing[:3]}, unexpected keys {extra[:3]}")
        for key, value in tensors.items():
            if value.shape != expected[key].shape:
                raise WildActorError(
                    f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}"
                )
        with torch.no_grad():
            params = dict(self.named_parameters())
            for key, value in tensors.items():
                param = params[_module_name(key)]
                param.copy_(value.to(device=param.device, dtype=param.dtype))

    # ------------------------------------------------------------------ reference stream

    def _embed_references(
        self, reference_latents: torch.Tensor, reference_types: Sequence[str], video_shape: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor, Rotary, tuple[str, ...]]:
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
        if self.config.patch_size[0] != 1:
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
        rotary = self.rope.reference(video_shape, kinds, ref_h, ref_w, tokens.device)
        return tokens, timestep_proj, rotary, kinds

    def encode_references(
        self, reference_latents: torch.Tensor, reference_types: Sequence[str], video_shape: Sequence[int]
    ) -> ReferenceCache:
        """Run the reference stream alone and keep every block's K/V.

        reference_latents: (B, C, R, h, w), one latent frame per reference image; reference_types: R of
        "face" | "body"; video_shape: the video latent's (F, H, W). Needs no video, timestep or text. Goes
        through the model's own call, so hooks on the model and on each block (offloading, FSDP) apply.
        """
        if self.config.attention_mode != "aipa":
            raise ValueError(
                'attention_mode="full" mixes references with the video: no reference cache exists'
            )
        return self(
            None, None, None, reference_latents=reference_latents, reference_types=reference_types,
            video_shape=tuple(int(s) for s in video_shape),
        )  # fmt: skip

    def _reference_stream(
        self,
        reference_latents: torch.Tensor,
        reference_types: Sequence[str],
        video_shape: tuple[int, int, int],
    ) -> ReferenceCache:
        r, ref_proj, ref_rotary, kinds = self._embed_references(
            reference_latents, reference_types, video_shape
        )
        slots = [LayerKV() for _ in self.blocks]
        self._reference_calls += 1
        # A fresh cache context: a block cache never skips a block of the reference stream, whose K/V are needed.
        with self.cache_context(f"wildactor_reference_stream_{self._reference_calls}"):
            for block, slot in zip(self.blocks, slots):
                r = self._call_block(block, r, None, ref_proj, ref_rotary, None, None, None, None, slot)
        return _collect(slots, video_shape, kinds)

    def _call_block(self, block: WildActorTransformerBlock, *args: Any) -> Any:
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(block, *args)
        return block(*args)

    # ------------------------------------------------------------------ video stream

    def _run_blocks(
        self,
        x: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep_proj: torch.Tensor,
        rotary: Rotary,
        video_shape: tuple[int, int, int],
        reference_latents: torch.Tensor | None,
        reference_types: Sequence[str] | None,
        reference_cache: ReferenceCache | None,
    ) -> tuple[torch.Tensor, ReferenceCache | None]:
        """All blocks over video tokens x (B, S, D). Returns the tokens and the reference K/V that were used."""
        if reference_latents is not None:  # both streams in each block call (training; the full ablation)
            r, ref_proj, ref_rotary, kinds = self._embed_references(
                reference_latents, reference_types, video_shape
            )
            slots = [LayerKV() for _ in self.blocks]
            for block, slot in zip(self.blocks, slots):
                x, r = self._call_block(
                    block,
                    x,
                    encoder_hidden_states,
                    timestep_proj,
                    rotary,
                    None,
                    r,
                    ref_proj,
                    ref_rotary,
                    slot,
                )
            return x, _collect(slots, video_shape, kinds)
        for i, block in enumerate(self.blocks):
            ref_kv = None if reference_cache is None else reference_cache.layer(i, x.shape[0])
            x = self._call_block(block, x, encoder_hidden_states, timestep_proj, rotary, ref_kv)
        return x, reference_cache

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor | None,
        timestep: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor | None,
        reference_latents: torch.Tensor | None = None,
        reference_types: Sequence[str] | None = None,
        reference_cache: ReferenceCache | None = None,
        return_dict: bool = True,
        encoder_hidden_states_image: torch.Tensor | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        video_shape: Sequence[int] | None = None,
    ) -> torch.Tensor | Transformer2DModelOutput | ReferenceCache:
        """Predict the flow velocity of a video latent, conditioned on text and reference images.

        hidden_states: (B, C, F, H, W) noisy latent; timestep: (B,) or per-token (B, F'*H'*W');
        encoder_hidden_states: (B, L, text_dim); reference_latents: (B or 1, C, R, h, w) with
        reference_types (R of "face" | "body"), or a `reference_cache` from `encode_references` (AIPA only).
        Returns `.sample` of shape (B, C_out, F, H, W). With `hidden_states=None` and `video_shape` (F, H, W) it
        runs the reference stream alone and returns its `ReferenceCache` (what `encode_references` calls).
        """
        references = reference_latents is not None or reference_cache is not None
        if references and self.config.attention_mode == "full" and self._parallel_config is not None:
            raise NotImplementedError(
                'context parallel with references runs attention_mode="aipa" only: in "full" mode the references '
                "attend to the video tokens, which context parallel shards"
            )
        if hidden_states is None:
            if reference_latents is None or reference_types is None or video_shape is None:
                raise ValueError(
                    "the reference stream needs reference_latents, reference_types and video_shape"
                )
            return self._reference_stream(reference_latents, reference_types, tuple(video_shape))
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
        rotary = self.rope(hidden_states)

        x = self.patch_embedding(hidden_states)  # (B, D, F', H', W')
        x = x.flatten(2).transpose(1, 2).contiguous()  # (B, S, D)
        # Under context parallel this rank's shard comes back: (B, S / ranks, D), timestep (B,) or (B, S / ranks).
        x, timestep = self.video_tokens(x, timestep)

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


def register_block_metadata() -> None:
    """Tell diffusers' block-level hooks (block caches) how to read `WildActorTransformerBlock`: like Wan's block,
    hidden states in and out at position 0. Done on first use (e.g. `enable_cache`), not at import."""
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry

    TransformerBlockRegistry.register(
        model_class=WildActorTransformerBlock,
        metadata=TransformerBlockMetadata(
            return_hidden_states_index=0, return_encoder_hidden_states_index=None
        ),
    )


def _collect(slots: Sequence[LayerKV], video_shape: Sequence[int], kinds: tuple[str, ...]) -> ReferenceCache:
    missing = [i for i, slot in enumerate(slots) if slot.key is None]
    if missing:  # a hook returned early without running the block (e.g. a block cache skipping it)
        raise RuntimeError(f"blocks {missing} did not run their reference stream; their K/V are missing")
    return ReferenceCache(
        tuple(s.key for s in slots), tuple(s.value for s in slots), tuple(int(v) for v in video_shape), kinds
    )


def _is_lora_name(name: str) -> bool:
    """Whether a parameter name (`blocks.{i}.reference_lora.{q,k,v}...`) belongs to the reference LoRA."""
    return ".reference_lora." in name


def _module_name(file_key: str) -> str:
    """File key `reference_lora.{i}.to_q.down.weight` -> parameter name `blocks.{i}.reference_lora.q.down.weight`."""
    _, layer, proj, rest = file_key.split(".", 3)
    return f"blocks.{layer}.reference_lora.{proj.removeprefix('to_')}.{rest}"


def reference_lora_file_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference-LoRA entries of a model state dict, under their file keys (`reference_lora.{i}.to_q...`)."""
    out = {}
    for name, value in state_dict.items():
        if _is_lora_name(name):
            _, layer, _, proj, rest = name.split(".", 4)
            out[f"{LORA_PREFIX}{layer}.{_FILE_PROJ[proj]}.{rest}"] = value
    return out


def reference_lora_parameter_count(dim: int, num_layers: int, rank: int) -> int:
    """Parameters of a rank-r LoRA on q, k, v (dim -> dim) in every block but the last one's q."""
    return (num_layers * 3 - 1) * (dim * rank + rank * dim)
