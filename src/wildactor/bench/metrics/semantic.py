"""Semantic alignment: does the video show what the prompt asks for?

Back-ends
- `clip`: a transformers CLIPModel from a local folder; ViCLIP-style video score = cosine between the text
  embedding and the normalised mean of the sampled frames' embeddings, clipped at 0 (raw CLIP cosines sit
  around 0.2-0.35; compare methods, not absolute numbers).
- `vlm`: a VLM judge from a local folder, P(yes) that the sampled frames match the prompt
  (prompt: `prompts/semantic_alignment.txt`).
- `actorworld` (exact): the probes read the scene of each frame and the motion of the clip; score = mean of
  (share of frames in the prompt's scene, 1 if the motion matches else 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wildactor.bench.metrics.base import MetricResult, sample_indices
from wildactor.bench.metrics.face import BackendUnavailable

NAME = "semantic"


class CLIPScorer:
    """Text-video similarity with a local transformers CLIPModel."""

    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        import torch
        from transformers import CLIPModel, CLIPProcessor

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no CLIP model at {model_dir} (config.json missing)")
        self.name = f"clip:{model_dir.name}"
        self._torch = torch
        self.processor = CLIPProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = CLIPModel.from_pretrained(model_dir, local_files_only=True).to(device).eval()

    @staticmethod
    def _features(out: Any) -> Any:
        # transformers >= 5 returns a model output whose pooler_output is the projected embedding.
        return out if hasattr(out, "norm") else out.pooler_output

    def score(self, frames: np.ndarray, prompt: str) -> float:
        """Raw cosine in [-1, 1] between the prompt and the clip's mean frame embedding."""
        torch = self._torch
        device = self.model.device
        with torch.no_grad():
            img = self.processor(images=list(frames), return_tensors="pt")["pixel_values"].to(device)
            v = self._features(self.model.get_image_features(pixel_values=img))  # (N, D)
            txt = self.processor(text=[prompt], return_tensors="pt", padding=True, truncation=True)
            t = self._features(
                self.model.get_text_features(
                    input_ids=txt["input_ids"].to(device), attention_mask=txt["attention_mask"].to(device)
                )
            )  # (1, D)
        v = torch.nn.functional.normalize(v.float(), dim=-1).mean(0)
        v = torch.nn.functional.normalize(v, dim=0)
        t = torch.nn.functional.normalize(t.float()[0], dim=0)
        return float(v @ t)


def build_clip_backend(model_dir: str | None, device: str = "cpu") -> CLIPScorer | BackendUnavailable:
    if not model_dir:
        return BackendUnavailable("clip", "no CLIP folder given (--clip DIR)")
    try:
        return CLIPScorer(model_dir, device=device)
    except (FileNotFoundError, OSError, ValueError, ImportError) as exc:
        return BackendUnavailable("clip", str(exc).splitlines()[0])


def semantic_clip(frames: np.ndarray, prompt: str, scorer: Any, num_samples: int = 8) -> MetricResult:
    if isinstance(scorer, BackendUnavailable):
        return MetricResult.na(NAME, scorer.name, scorer.reason)
    idx = sample_indices(len(frames), num_samples)
    cos = scorer.score(frames[idx], prompt)
    return MetricResult(NAME, scorer.name, value=max(0.0, cos), extra={"cosine": cos})


def semantic_vlm(frames: np.ndarray, prompt: str, judge: Any, num_samples: int = 4) -> MetricResult:
    from wildactor.bench.metrics.vlm import load_prompt

    if isinstance(judge, BackendUnavailable):
        return MetricResult.na(NAME, judge.name, judge.reason)
    idx = sample_indices(len(frames), num_samples)
    question = load_prompt("semantic_alignment").format(prompt=prompt)
    return MetricResult(NAME, judge.name, value=judge.yes_probability([frames[i] for i in idx], question))


def semantic_actorworld(
    frames: np.ndarray, scene: str, motion: str, probes: Any, num_samples: int = 32
) -> MetricResult:
    """Exact ActorWorld semantic alignment against the prompt's scene and motion labels."""
    backend = "actorworld-probes"
    if isinstance(probes, BackendUnavailable):
        return MetricResult.na(NAME, backend, probes.reason)
    if len(frames) < 2:
        return MetricResult.na(NAME, backend, "clip has fewer than 2 frames (motion cannot be read)")
    idx = sample_indices(len(frames), num_samples)
    scenes = probes.predict_scene(frames[idx])
    per_frame = [float(s == scene) for s in scenes]
    pred_motion = probes.predict_motion(frames)
    scene_acc = float(np.mean(per_frame))
    motion_ok = float(pred_motion == motion)
    extra = {"scene_accuracy": scene_acc, "motion_match": motion_ok, "predicted_motion": pred_motion}
    return MetricResult(NAME, backend, value=0.5 * (scene_acc + motion_ok), per_frame=per_frame, extra=extra)
