"""A local Qwen2-VL-family model (Qwen2-VL, Qwen2.5-VL) that rates images on a fixed answer scale.

The rating is read from the logits of the first answer token: the softmax over the first token of each option
("1".."5", or "excellent".."bad") gives a distribution whose weighted mean is the score. That is deterministic
and smoother than a sampled answer. It stands in for the leaderboard's judges (GPT-4o for NaturalScore, Q-Align
for MotionSmoothness) where those cannot run here; its numbers are NOT comparable with the leaderboard's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildactor.bench.metrics.face import BackendUnavailable

SYSTEM = "You are a helpful assistant."
IMAGE_MARK = "<|vision_start|><|image_pad|><|vision_end|>"


class Qwen2VLRater:
    """Answer-scale probabilities from a local image-text-to-text checkpoint of the Qwen2-VL family."""

    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModelForImageTextToText

        from wildactor.bench.metrics.qwen2vl_inputs import Qwen2VLInputs

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no VLM at {model_dir} (config.json missing)")
        self.name = f"vlm-rater:{model_dir.name}"
        self._torch = torch
        self.inputs = Qwen2VLInputs(model_dir)
        self.model = AutoModelForImageTextToText.from_pretrained(
            model_dir, dtype="auto", local_files_only=True
        )
        self.model = self.model.to(device).eval()
        if getattr(self.model.config, "image_token_id", None) is None:
            raise ValueError(f"{model_dir} is not a Qwen2-VL-family model (no image_token_id in its config)")

    def option_probs(
        self, images: list[np.ndarray], question: str, options: list[str], answer_prefix: str = ""
    ) -> np.ndarray:
        """P(option) over `options` (first token of each), given the images and the question: (len(options),)."""
        torch = self._torch
        tok = self.inputs.tokenizer
        enc = [tok.encode(o, add_special_tokens=False) for o in options]
        if not all(enc):
            raise ValueError(f"options {options} do not all tokenize in this tokenizer")
        ids = [e[0] for e in enc]
        if len(set(ids)) != len(ids):
            raise ValueError(f"options {options} share a first token in this tokenizer")
        text = (
            f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{IMAGE_MARK * len(images)}{question}"
            f"<|im_end|>\n<|im_start|>assistant\n{answer_prefix}"
        )
        inputs = {k: v.to(self.model.device) for k, v in self.inputs([text], images).items()}
        with torch.no_grad():
            logits = self.model(**inputs).logits[0, -1].float()  # (vocab,)
        return torch.softmax(logits[ids], dim=0).cpu().numpy()


def build_rater_backend(model_dir: str | None, device: str = "cpu") -> Qwen2VLRater | BackendUnavailable:
    if not model_dir:
        return BackendUnavailable(
            "vlm-rater", "no local VLM folder given (--judge DIR, a Qwen2-VL-family model)"
        )
    try:
        return Qwen2VLRater(model_dir, device)
    except (FileNotFoundError, OSError, ValueError, ImportError, KeyError) as exc:
        return BackendUnavailable("vlm-rater", str(exc).splitlines()[0])
