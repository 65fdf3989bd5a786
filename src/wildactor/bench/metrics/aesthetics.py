"""Aesthetics: the LAION aesthetic predictor (an MLP on normalised CLIP ViT-L/14 image embeddings), as in
OpenS2V-Eval: 32 frames, the mean predicted score (about 1-10; the leaderboard clips it to [4, 7]).

Back-end: a transformers `CLIPVisionModelWithProjection` folder (OpenS2V uses openai/clip-vit-large-patch14)
and the predictor's state dict (`aesthetic-model.pth` in OpenS2V-Weight), whose keys are
`layers.{0,2,4,6,7}.{weight,bias}`: Linear 768-1024, 1024-128, 128-64, 64-16, 16-1 (dropouts between the
first four carry no weights). Both are local paths; without them the metric is n/a.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wildactor.bench.metrics.base import MetricResult
from wildactor.bench.metrics.face import BackendUnavailable
from wildactor.bench.metrics.opens2v_common import opens2v_indices

NAME = "aes_score"


def laion_mlp(embed_dim: int = 768) -> Any:
    """The predictor head with the checkpoint's module indices (dropouts at 1, 3, 5)."""
    from torch import nn

    return nn.Sequential(
        nn.Linear(embed_dim, 1024),
        nn.Dropout(0.2),
        nn.Linear(1024, 128),
        nn.Dropout(0.2),
        nn.Linear(128, 64),
        nn.Dropout(0.1),
        nn.Linear(64, 16),
        nn.Linear(16, 1),
    )


class AestheticPredictor:
    """CLIP image embedding -> L2-normalised -> MLP -> one score per image."""

    def __init__(self, clip_dir: str | Path, mlp_path: str | Path, device: str = "cpu") -> None:
        import torch
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        clip_dir, mlp_path = Path(clip_dir), Path(mlp_path)
        if not (clip_dir / "config.json").is_file():
            raise FileNotFoundError(f"no CLIP vision model at {clip_dir} (config.json missing)")
        if not mlp_path.is_file():
            raise FileNotFoundError(f"aesthetic predictor weights not found: {mlp_path}")
        self.name = f"laion-aesthetic:{clip_dir.name}+{mlp_path.name}"
        self._torch = torch
        self.processor = CLIPImageProcessor.from_pretrained(clip_dir, local_files_only=True)
        self.clip = CLIPVisionModelWithProjection.from_pretrained(clip_dir, local_files_only=True)
        self.clip = self.clip.to(device).eval()
        state = torch.load(mlp_path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("layers."): v for k, v in state.items()}
        self.mlp = laion_mlp(self.clip.config.projection_dim)
        self.mlp.load_state_dict(state)  # strict: a wrong file fails here, not with a silent number
        self.mlp = self.mlp.to(device).eval()

    def score(self, images: list[np.ndarray]) -> list[float]:
        """Predicted aesthetic score of each RGB uint8 image."""
        torch = self._torch
        device = self.clip.device
        with torch.no_grad():
            px = self.processor(images=list(images), return_tensors="pt")["pixel_values"].to(device)
            emb = self.clip(pixel_values=px).image_embeds.float()  # (N, D)
            emb = emb / emb.norm(dim=-1, keepdim=True)
            return [float(v) for v in self.mlp(emb)[:, 0]]  # (N,)


def build_aesthetic_backend(
    clip_dir: str | None, mlp_path: str | None, device: str = "cpu"
) -> AestheticPredictor | BackendUnavailable:
    if not clip_dir or not mlp_path:
        return BackendUnavailable(
            "laion-aesthetic", "needs a CLIP ViT-L/14 folder and aesthetic-model.pth (--aes-clip, --weights)"
        )
    try:
        return AestheticPredictor(clip_dir, mlp_path, device)
    except (FileNotFoundError, OSError, ValueError, RuntimeError, KeyError) as exc:
        return BackendUnavailable("laion-aesthetic", str(exc).splitlines()[0])


def aesthetics(frames: np.ndarray, predictor: AestheticPredictor | BackendUnavailable) -> MetricResult:
    """Mean LAION aesthetic score over OpenS2V's 32 sampled frames of a clip (T, H, W, 3)."""
    if isinstance(predictor, BackendUnavailable):
        return MetricResult.na(NAME, predictor.name, predictor.reason)
    idx = opens2v_indices(len(frames), 32)
    uniq = sorted(set(idx))  # a short clip repeats indices: score each frame once
    scores = dict(zip(uniq, predictor.score([frames[i] for i in uniq])))
    per_frame = [scores[i] for i in idx]
    return MetricResult(
        NAME, predictor.name, value=float(np.mean(per_frame)), unit="LAION score", per_frame=per_frame
    )
