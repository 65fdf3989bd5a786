"""Probes: small CNNs that read ActorWorld labels back from pixels (the judges of ActorWorld-Bench).

`FrameProbe` reads, from one frame, every identity attribute, the view (front/side/back), a 30-degree
yaw bin and the scene. `MotionProbe` reads the motion from a clip. Trained weights ship in
`wildactor/assets/probes/` (safetensors + a JSON card with the vocabularies and held-out accuracy);
`load_probes()` loads them, `wildactor world train-probes` rebuilds them.

The top print is only visible from the front: `predict_attributes` reports it for every frame, but
callers should only trust it where the predicted view is not "back" (see `Probes.trust_graphic`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from wildactor.data.schema import VIEW_BINS
from wildactor.errors import WildActorError
from wildactor.world.actors import ATTRIBUTES
from wildactor.world.motions import MOTION_KINDS
from wildactor.world.scenes import SCENE_KINDS

PROBE_SIZE = 64  # probes read frames resized to PROBE_SIZE x PROBE_SIZE
MOTION_FRAMES = 8  # the motion probe resamples every clip to this many frames
YAW_BINS = 12  # 30-degree bins centred on 0, 30, ..., 330


def frame_heads() -> dict[str, tuple[str, ...]]:
    """Output heads of the frame probe and their class names, in a fixed order."""
    heads = dict(ATTRIBUTES)
    heads["view"] = VIEW_BINS
    heads["yaw_bin"] = tuple(str(30 * i) for i in range(YAW_BINS))
    heads["scene"] = SCENE_KINDS
    return heads


def default_probe_dir() -> Path:
    """Folder of the probe weights shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "assets" / "probes"


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class FrameProbe(nn.Module):
    """(B, 3, 64, 64) normalised frames -> dict of logits per head."""

    def __init__(self, heads: dict[str, tuple[str, ...]] | None = None, width: int = 24) -> None:
        super().__init__()
        self.heads = heads or frame_heads()
        w = width
        self.features = nn.Sequential(
            _block(3, w),
            nn.MaxPool2d(2),  # 32
            _block(w, 2 * w),
            nn.MaxPool2d(2),  # 16
            _block(2 * w, 3 * w),
            nn.MaxPool2d(2),  # 8
            _block(3 * w, 4 * w),
            nn.MaxPool2d(2),  # 4
        )
        self.trunk = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * w * 16, 256), nn.ReLU(inplace=True), nn.Dropout(0.1)
        )
        self.out = nn.ModuleDict({name: nn.Linear(256, len(classes)) for name, classes in self.heads.items()})

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 64, 64) -> (B, 256): the penultimate features every head reads (a realism feature space)."""
        return self.trunk(self.features(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.embed(x)  # (B, 256)
        return {name: layer(h) for name, layer in self.out.items()}


class MotionProbe(nn.Module):
    """(B, T=8, 64, 64) grey clips -> (B, len(MOTION_KINDS)) logits. Sees frames and their differences."""

    def __init__(self, num_classes: int = len(MOTION_KINDS), width: int = 24) -> None:
        super().__init__()
        w = width
        cin = 2 * MOTION_FRAMES - 1
        self.net = nn.Sequential(
            nn.Conv2d(cin, w, 3, stride=2, padding=1, bias=False),  # 32
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            _block(w, 2 * w),
            nn.MaxPool2d(2),  # 16
            _block(2 * w, 3 * w),
            nn.MaxPool2d(2),  # 8
            _block(3 * w, 3 * w),
            nn.AdaptiveAvgPool2d(2),  # 2
            nn.Flatten(),
            nn.Linear(3 * w * 4, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, num_classes),
        )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        diffs = clips[:, 1:] - clips[:, :-1]  # (B, T-1, H, W)
        return self.net(torch.cat([clips, 4.0 * diffs], dim=1))


def frames_to_tensor(frames: np.ndarray | torch.Tensor, size: int = PROBE_SIZE) -> torch.Tensor:
    """uint8 frames (H, W, 3) or (N, H, W, 3) -> normalised float (N, 3, size, size)."""
    x = torch.as_tensor(np.asarray(frames))
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise WildActorError(f"frames must be (N, H, W, 3) RGB, got shape {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - 0.5) / 0.25


def clip_to_tensor(clip: np.ndarray, size: int = PROBE_SIZE) -> torch.Tensor:
    """uint8 clip (T, H, W, 3) -> grey (1, MOTION_FRAMES, size, size), resampled evenly in time."""
    clip = np.asarray(clip)
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.shape[0] < 2:
        raise WildActorError(f"a clip must be (T >= 2, H, W, 3) RGB, got shape {clip.shape}")
    idx = np.round(np.linspace(0, clip.shape[0] - 1, MOTION_FRAMES)).astype(int)
    x = frames_to_tensor(clip[idx], size)  # (T, 3, size, size)
    return x.mean(dim=1)[None]  # (1, T, size, size)


@dataclass
class Probes:
    """Loaded probes plus their card (vocabularies, training settings, held-out accuracy)."""

    frame: FrameProbe
    motion: MotionProbe
    card: dict[str, Any]

    @torch.no_grad()
    def _frame_logits(self, frames: np.ndarray, batch_size: int = 256) -> dict[str, torch.Tensor]:
        x = frames_to_tensor(frames)
        outs = [self.frame(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}

    @torch.no_grad()
    def frame_features(self, frames: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Penultimate frame-probe features of (N, H, W, 3) uint8 frames: (N, 256) float64."""
        x = frames_to_tensor(frames)
        feats = [self.frame.embed(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return torch.cat(feats).double().numpy()

    def predict_attributes(self, frames: np.ndarray) -> list[dict[str, str]]:
        """Identity attributes of the actor in each frame ((H, W, 3) or (N, H, W, 3) uint8)."""
        logits = self._frame_logits(frames)
        return _decode(logits, {k: v for k, v in self.frame.heads.items() if k in ATTRIBUTES})

    def predict_attribute_probs(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Softmax probabilities per attribute: name -> (N, classes)."""
        logits = self._frame_logits(frames)
        return {k: torch.softmax(logits[k], -1).numpy() for k in ATTRIBUTES}

    def predict_view(self, frames: np.ndarray) -> list[dict[str, Any]]:
        """Per frame: view bin (front/side/back) and a yaw estimate in degrees (circular mean of bins)."""
        logits = self._frame_logits(frames)
        views = _decode(logits, {"view": self.frame.heads["view"]})
        p = torch.softmax(logits["yaw_bin"], -1).numpy()  # (N, 12)
        ang = np.deg2rad(30.0 * np.arange(YAW_BINS))
        yaw = np.rad2deg(np.arctan2(p @ np.sin(ang), p @ np.cos(ang))) % 360.0
        return [{"view": v["view"], "yaw": float(y)} for v, y in zip(views, yaw)]

    def predict_scene(self, frames: np.ndarray) -> list[str]:
        """Scene kind of each frame."""
        logits = self._frame_logits(frames)
        return [d["scene"] for d in _decode(logits, {"scene": self.frame.heads["scene"]})]

    @torch.no_grad()
    def predict_motion(self, clip: np.ndarray) -> str:
        """Motion kind of one clip (T, H, W, 3) uint8, T >= 2."""
        logits = self.motion(clip_to_tensor(clip))
        return MOTION_KINDS[int(logits.argmax(-1))]

    @staticmethod
    def trust_graphic(view: str) -> bool:
        """Whether the top print can be judged from a frame in this view (it is printed on the front)."""
        return view != "back"


def _decode(logits: dict[str, torch.Tensor], heads: dict[str, tuple[str, ...]]) -> list[dict[str, str]]:
    idx = {k: logits[k].argmax(-1).tolist() for k in heads}
    n = len(next(iter(idx.values())))
    return [{k: heads[k][idx[k][i]] for k in heads} for i in range(n)]


def save_probes(probes: Probes, folder: str | Path) -> None:
    """Weights as float16 safetensors (small enough to ship) plus the JSON card."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in (("frame_probe", probes.frame), ("motion_probe", probes.motion)):
        state = {
            k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in module.state_dict().items()
        }
        save_file(state, str(folder / f"{name}.safetensors"))
    (folder / "probes.json").write_text(json.dumps(probes.card, indent=2) + "\n")


def load_probes(folder: str | Path | None = None) -> Probes:
    """Load trained probes (default: the weights shipped in the package). Raises WildActorError when
    the files are missing or were trained for other vocabularies."""
    from safetensors.torch import load_file

    folder = Path(folder) if folder is not None else default_probe_dir()
    card_path = folder / "probes.json"
    files = [folder / "frame_probe.safetensors", folder / "motion_probe.safetensors", card_path]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise WildActorError(
            f"probe weights missing: {', '.join(missing)} (run `wildactor world train-probes`)"
        )
    card = json.loads(card_path.read_text())
    heads = {k: tuple(v) for k, v in card["frame_heads"].items()}
    if heads != frame_heads() or tuple(card["motion_classes"]) != MOTION_KINDS:
        raise WildActorError(
            f"probes in {folder} were trained for other ActorWorld vocabularies; retrain them"
        )
    frame = FrameProbe(heads, width=int(card["frame_width"]))
    motion = MotionProbe(len(MOTION_KINDS), width=int(card["motion_width"]))
    for module, path in ((frame, files[0]), (motion, files[1])):
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
        module.load_state_dict(state)
        module.eval()
    return Probes(frame=frame, motion=motion, card=card)
