"""Identity-aware 3D RoPE (I-RoPE): token coordinates for video and reference tokens, and their rotary tables.

Coordinates are in token-grid units (after patchify). Video token (t, h, w) sits at its grid index. The k-th
face reference sits at t = F + face_temporal_offset + k * stride, the k-th body reference at
t = F + body_temporal_offset + k * stride, and every reference's (h, w) grid starts at (H, W): just past the
video grid, so no reference token shares a position with any video token. Coordinates are computed directly,
never looked up in a fixed-length table, so any integer position is valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.models.embeddings import get_1d_rotary_pos_embed

REFERENCE_TYPES = ("face", "body")
ROPE_MODES = ("irope", "shared")


@dataclass(frozen=True)
class IRoPEConfig:
    """Where reference tokens sit in (t, h, w). `mode="shared"` gives them video frame 0's coordinates."""

    face_temporal_offset: int = 4
    body_temporal_offset: int = 128
    reference_frame_stride: int = 4
    mode: str = "irope"

    def __post_init__(self) -> None:
        if self.mode not in ROPE_MODES:
            raise ValueError(f"rope mode must be one of {ROPE_MODES}, got {self.mode!r}")
        if self.reference_frame_stride < 1:
            raise ValueError(f"reference_frame_stride must be >= 1, got {self.reference_frame_stride}")
        if self.face_temporal_offset < 0 or self.body_temporal_offset < 0:
            raise ValueError("temporal offsets must be >= 0")


def normalize_reference_types(reference_types: Sequence[str]) -> tuple[str, ...]:
    """Check reference kinds; a three-view sheet is a body reference."""
    out = []
    for i, kind in enumerate(reference_types):
        kind = "body" if kind == "three_view" else kind
        if kind not in REFERENCE_TYPES:
            raise ValueError(f"reference_types[{i}] must be 'face' or 'body' (or 'three_view'), got {kind!r}")
        out.append(kind)
    return tuple(out)


def _grid(t: torch.Tensor, height: int, width: int, h0: int = 0, w0: int = 0) -> torch.Tensor:
    """All (t, h, w) for the given t values over an (height, width) grid starting at (h0, w0); t-major order."""
    hh = torch.arange(h0, h0 + height, dtype=torch.long)
    ww = torch.arange(w0, w0 + width, dtype=torch.long)
    tt, hh, ww = torch.meshgrid(t, hh, ww, indexing="ij")  # each (T, height, width)
    return torch.stack([tt, hh, ww], dim=-1).reshape(-1, 3)  # (T*height*width, 3)


def video_coordinates(num_frames: int, height: int, width: int) -> torch.Tensor:
    """(t, h, w) of every video token in patchify order; LongTensor (F*H*W, 3)."""
    return _grid(torch.arange(num_frames, dtype=torch.long), height, width)


def reference_temporal_positions(
    num_frames: int, reference_types: Sequence[str], config: IRoPEConfig
) -> torch.Tensor:
    """The temporal coordinate of each reference, in the given order; LongTensor (R,)."""
    kinds = normalize_reference_types(reference_types)
    if config.mode == "shared":
        return torch.zeros(len(kinds), dtype=torch.long)
    offset = {"face": config.face_temporal_offset, "body": config.body_temporal_offset}
    seen = {"face": 0, "body": 0}
    positions = []
    for kind in kinds:
        positions.append(num_frames + offset[kind] + seen[kind] * config.reference_frame_stride)
        seen[kind] += 1
    return torch.tensor(positions, dtype=torch.long)


def reference_coordinates(
    num_frames: int,
    height: int,
    width: int,
    reference_types: Sequence[str],
    ref_height: int,
    ref_width: int,
    config: IRoPEConfig,
) -> torch.Tensor:
    """(t, h, w) of every reference token; LongTensor (R*ref_height*ref_width, 3).

    `num_frames, height, width` is the video token grid (F, H, W); each reference is one frame of
    (ref_height, ref_width) tokens. In "irope" mode its (h, w) start at (H, W); in "shared" mode at (0, 0)
    with t = 0, i.e. exactly video frame 0's coordinates.
    """
    t = reference_temporal_positions(num_frames, reference_types, config)
    h0, w0 = (0, 0) if config.mode == "shared" else (height, width)
    return _grid(t, ref_height, ref_width, h0, w0)


def axis_dims(attention_head_dim: int) -> tuple[int, int, int]:
    """How Wan splits a head between t, h and w (128 -> 44, 42, 42)."""
    h_dim = w_dim = 2 * (attention_head_dim // 6)
    return attention_head_dim - h_dim - w_dim, h_dim, w_dim


def rotary_tables(
    coordinates: torch.Tensor, attention_head_dim: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interleaved-pair rotary (cos, sin) for arbitrary (t, h, w) coordinates, each (1, S, 1, head_dim) float32.

    Equal, for video coordinates, to diffusers' `WanRotaryPosEmbed` tables: the same float64 frequencies,
    evaluated at the given positions instead of gathered from a 1024-row table.
    """
    cos_parts, sin_parts = [], []
    for axis, dim in enumerate(axis_dims(attention_head_dim)):
        positions = coordinates[:, axis].to(torch.float64)
        cos, sin = get_1d_rotary_pos_embed(
            dim, positions, theta, use_real=True, repeat_interleave_real=True, freqs_dtype=torch.float64
        )  # each (S, dim) float32
        cos_parts.append(cos)
        sin_parts.append(sin)
    cos = torch.cat(cos_parts, dim=-1)[None, :, None, :]  # (1, S, 1, head_dim)
    sin = torch.cat(sin_parts, dim=-1)[None, :, None, :]
    return cos, sin
