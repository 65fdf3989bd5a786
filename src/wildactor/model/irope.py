"""Identity-aware 3D RoPE (I-RoPE): token coordinates for video and reference tokens, and their rotary tables.

Coordinates are in token-grid units (after patchify). Video token (t, h, w) sits at its grid index. The k-th
face reference sits at t = F + face_temporal_offset + k * stride, the k-th body reference at
t = F + body_temporal_offset + k * stride, and every reference's (h, w) grid starts at (H, W): just past the
video grid, so no reference token shares a position with any video token. Coordinates are computed directly,
never looked up in a fixed-length table, so any integer position is valid.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers.models.embeddings import get_1d_rotary_pos_embed
from torch import nn

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
    coordinates: torch.Tensor,
    attention_head_dim: int,
    theta: float = 10000.0,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interleaved-pair rotary (cos, sin) for arbitrary (t, h, w) coordinates, each (1, S, 1, head_dim) float32.

    Equal, for video coordinates, to diffusers' `WanRotaryPosEmbed` tables: the same float64 frequencies,
    evaluated at the given positions instead of gathered from a 1024-row table. Built on `device` (default: the
    coordinates'), so no table crosses from host to accelerator.
    """
    device = torch.device(device) if device is not None else coordinates.device
    freqs_dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64 (as Wan)
    cos_parts, sin_parts = [], []
    for axis, dim in enumerate(axis_dims(attention_head_dim)):
        positions = coordinates[:, axis].to(device=device, dtype=freqs_dtype)
        cos, sin = get_1d_rotary_pos_embed(
            dim, positions, theta, use_real=True, repeat_interleave_real=True, freqs_dtype=freqs_dtype
        )  # each (S, dim) float32
        cos_parts.append(cos)
        sin_parts.append(sin)
    cos = torch.cat(cos_parts, dim=-1)[None, :, None, :]  # (1, S, 1, head_dim)
    sin = torch.cat(sin_parts, dim=-1)[None, :, None, :]
    return cos, sin


RotaryTables = tuple[torch.Tensor, torch.Tensor]


class IRoPE(nn.Module):
    """The model's `rope`: rotary tables of video tokens (`forward`, as Wan's rope) and of reference tokens.

    Tables depend only on the token layout, so each is built once per (layout, device), on that device, and
    reused for every step, branch and block (the last `max_entries` layouts are kept). It owns no weights.
    Being the module called `rope` keeps diffusers' context-parallel plan, which splits `rope`'s outputs, valid.
    """

    def __init__(
        self, attention_head_dim: int, patch_size: Sequence[int], config: IRoPEConfig, max_entries: int = 16
    ) -> None:
        super().__init__()
        self.attention_head_dim = attention_head_dim
        self.patch_size = tuple(int(p) for p in patch_size)
        self.config = config
        self.max_entries = max_entries
        self._tables: OrderedDict[tuple, RotaryTables] = OrderedDict()

    def token_grid(self, latent_shape: Sequence[int]) -> tuple[int, int, int]:
        """Latent (F, H, W) -> token grid (F / p_t, H / p_h, W / p_w)."""
        f, h, w = (int(s) for s in latent_shape)
        p_t, p_h, p_w = self.patch_size
        return f // p_t, h // p_h, w // p_w

    def _memo(self, key: tuple, build: Callable[[], RotaryTables]) -> RotaryTables:
        if key in self._tables:
            self._tables.move_to_end(key)
            return self._tables[key]
        tables = build()
        self._tables[key] = tables
        while len(self._tables) > self.max_entries:
            self._tables.popitem(last=False)
        return tables

    def forward(self, hidden_states: torch.Tensor) -> RotaryTables:
        """Tables of the video tokens of `hidden_states` (B, C, F, H, W); each (1, F'*H'*W', 1, head_dim)."""
        grid = self.token_grid(hidden_states.shape[2:])
        device = hidden_states.device
        return self._memo(
            ("video", grid, str(device)),
            lambda: rotary_tables(video_coordinates(*grid), self.attention_head_dim, device=device),
        )

    def reference(
        self,
        video_shape: Sequence[int],
        reference_types: Sequence[str],
        ref_height: int,
        ref_width: int,
        device: torch.device,
    ) -> RotaryTables:
        """Tables of reference tokens (R * ref_height * ref_width) for a video latent of shape (F, H, W)."""
        grid = self.token_grid(video_shape)
        kinds = normalize_reference_types(reference_types)
        key = ("reference", grid, kinds, int(ref_height), int(ref_width), str(device))

        def build() -> RotaryTables:
            coords = reference_coordinates(*grid, kinds, ref_height, ref_width, self.config)
            return rotary_tables(coords, self.attention_head_dim, device=device)

        return self._memo(key, build)
