"""CurricularFace IR-101, the face embedder behind OpenS2V-Eval's FaceSim-Cur.

No PyPI package ships this network, so it is written here against the checkpoint OpenS2V uses
(`glint360k_curricular_face_r101_backbone.bin`): `input_layer.{0,1,2}` (3x3 conv, BN, PReLU),
`body.{i}` bottleneck-IR units (`shortcut_layer`: 1x1 max-pool or conv+BN; `res_layer.{0..4}`: BN, conv,
PReLU, conv, BN) in four stages of 3, 13, 30, 3 units (64, 128, 256, 512 channels, stride 2 at each stage's
first unit), and `output_layer.{0,3,4}` (BN2d, Linear 512*7*7 -> 512, BN1d without affine; a dropout and a
flatten sit at 1 and 2). Input: aligned 112x112 RGB faces scaled to [-1, 1]; output: 512-D embeddings.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

IR101_UNITS: tuple[int, ...] = (3, 13, 30, 3)
STAGE_CHANNELS: tuple[int, ...] = (64, 128, 256, 512)


class BottleneckIR(nn.Module):
    """Pre-activation residual unit; the first unit of a stage halves the resolution."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if in_ch == out_ch:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
            nn.PReLU(out_ch),
            nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """IR-ResNet face embedder: (B, 3, 112, 112) in [-1, 1] -> (B, embed_dim). `units` (3, 13, 30, 3) is IR-101."""

    def __init__(
        self,
        units: tuple[int, ...] = IR101_UNITS,
        channels: tuple[int, ...] = STAGE_CHANNELS,
        input_size: int = 112,
        embed_dim: int = 512,
    ) -> None:
        super().__init__()
        if len(units) != len(channels):
            raise ValueError(f"units {units} and channels {channels} must have the same length")
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, channels[0], 3, 1, 1, bias=False), nn.BatchNorm2d(channels[0]), nn.PReLU(channels[0])
        )
        body, in_ch = [], channels[0]
        for n, ch in zip(units, channels):
            body += [BottleneckIR(in_ch, ch, 2)] + [BottleneckIR(ch, ch, 1) for _ in range(n - 1)]
            in_ch = ch
        self.body = nn.Sequential(*body)
        side = input_size // 2 ** len(units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Dropout(0.4),
            nn.Flatten(),
            nn.Linear(in_ch * side * side, embed_dim),
            nn.BatchNorm1d(embed_dim, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, embed_dim)."""
        return self.output_layer(self.body(self.input_layer(x)))


def ir_from_state_dict(state: dict[str, Any], input_size: int = 112) -> IRBackbone:
    """An IRBackbone shaped like `state` (stages = runs of equal width; IR-101 for the CurricularFace file),
    with those weights loaded strictly: a file that is not an IR network fails here, never scores."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    widths, i = [], 0
    while f"body.{i}.res_layer.1.weight" in state:
        widths.append(int(state[f"body.{i}.res_layer.1.weight"].shape[0]))
        i += 1
    if not widths or "output_layer.3.weight" not in state:
        raise KeyError("not an IR-ResNet state dict (no body.*.res_layer / output_layer.3 keys)")
    units, channels = [], []
    for w in widths:
        if channels and channels[-1] == w:
            units[-1] += 1
        else:
            units.append(1)
            channels.append(w)
    model = IRBackbone(
        tuple(units), tuple(channels), input_size, int(state["output_layer.3.weight"].shape[0])
    )
    model.load_state_dict(state)
    return model


def load_ir101(path: str, device: str = "cpu") -> IRBackbone:
    """The CurricularFace IR-101 of a checkpoint file (a plain or `module.`-prefixed state dict)."""
    state: Any = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return ir_from_state_dict(state).to(device).eval()
