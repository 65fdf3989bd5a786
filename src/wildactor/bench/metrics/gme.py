"""GmeScore: text-video alignment with GME (gme-Qwen2-VL-7B-Instruct), as in OpenS2V-Eval.

GME is a Qwen2-VL checkpoint used as an embedder: the chat-formatted input
`<|im_start|>system\\n{instruction}<|im_end|>\\n<|im_start|>user\\n{content}<|im_end|>\\n<|im_start|>assistant\\n<|endoftext|>`
goes through the language model with plain 1-D positions, and the last token's final hidden state, L2-normalised,
is the embedding. Queries (the prompt) use the instruction "Find an image that matches the given text.";
images use "You are a helpful assistant." with `<|vision_start|><|image_pad|><|vision_end|>` as content and are
resized to 256-1280 visual tokens (28-px units). GmeScore = mean over 32 frames of the text-frame dot product.

Back-end: transformers' `Qwen2VLForConditionalGeneration`, tokenizer and image processor from a local folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildactor.bench.metrics.base import MetricResult
from wildactor.bench.metrics.face import BackendUnavailable
from wildactor.bench.metrics.opens2v_common import opens2v_indices

NAME = "gme_score"
QUERY_INSTRUCTION = "Find an image that matches the given text."
DEFAULT_INSTRUCTION = "You are a helpful assistant."
IMAGE_CONTENT = "<|vision_start|><|image_pad|><|vision_end|>"


def gme_message(content: str, instruction: str) -> str:
    return (
        f"<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{content}<|im_end|>\n"
        "<|im_start|>assistant\n<|endoftext|>"
    )


class GmeEmbedder:
    """Text and image embeddings from a local GME (Qwen2-VL) folder."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        min_image_tokens: int = 256,
        max_image_tokens: int = 1280,
        max_length: int = 1800,
    ) -> None:
        import torch
        from transformers import Qwen2VLForConditionalGeneration

        from wildactor.bench.metrics.qwen2vl_inputs import Qwen2VLInputs

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no GME model at {model_dir} (config.json missing)")
        self.name = f"gme:{model_dir.name}"
        self._torch = torch
        self.inputs = Qwen2VLInputs(model_dir, min_image_tokens * 28 * 28, max_image_tokens * 28 * 28)
        # dtype="auto": the checkpoint's own precision (fp32 would double a bf16 7B model's memory).
        self.model = Qwen2VLForConditionalGeneration.from_pretrained(
            model_dir, dtype="auto", local_files_only=True
        )
        self.model = self.model.to(device).eval()
        self.max_length = max_length

    def _embed(self, texts: list[str], images: list[np.ndarray] | None) -> np.ndarray:
        torch = self._torch
        inputs = {k: v.to(self.model.device) for k, v in self.inputs(texts, images, self.max_length).items()}
        core = self.model.model  # Qwen2VLModel: visual tower + language model
        with torch.no_grad():
            emb = core.get_input_embeddings()(inputs["input_ids"])  # (B, S, D)
            if images:
                feats = core.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
                img = torch.cat(list(feats.pooler_output), dim=0).to(emb.dtype)  # (n_image_tokens, D)
                mask = (inputs["input_ids"] == self.model.config.image_token_id)[..., None]
                emb = emb.masked_scatter(mask.expand_as(emb), img)
            # position_ids=None: the language model numbers tokens 0..S-1 on all three rotary sections,
            # as GME's reference wrapper does (it bypasses Qwen2-VL's 3-D image positions).
            hidden = core.language_model(
                inputs_embeds=emb, attention_mask=inputs["attention_mask"]
            ).last_hidden_state  # (B, S, D)
            last = inputs["attention_mask"].sum(1) - 1  # right padding: the last real token
            out = hidden[torch.arange(hidden.shape[0], device=hidden.device), last].float()  # (B, D)
            out = torch.nn.functional.normalize(out, dim=-1)
        return out.cpu().numpy()

    def text_embeddings(self, texts: list[str], instruction: str = QUERY_INSTRUCTION) -> np.ndarray:
        return self._embed([gme_message(t, instruction) for t in texts], None)

    def image_embeddings(self, images: list[np.ndarray], batch_size: int = 8) -> np.ndarray:
        out = []
        for k in range(0, len(images), batch_size):
            chunk = list(images[k : k + batch_size])
            out.append(self._embed([gme_message(IMAGE_CONTENT, DEFAULT_INSTRUCTION)] * len(chunk), chunk))
        return np.concatenate(out)


def build_gme_backend(model_dir: str | None, device: str = "cpu") -> GmeEmbedder | BackendUnavailable:
    if not model_dir:
        return BackendUnavailable("gme", "no GME folder given (--gme DIR, gme-Qwen2-VL-7B-Instruct)")
    try:
        return GmeEmbedder(model_dir, device)
    except (FileNotFoundError, OSError, ValueError, ImportError, KeyError) as exc:
        return BackendUnavailable("gme", str(exc).splitlines()[0])


def gme_score(frames: np.ndarray, prompt: str, gme: GmeEmbedder | BackendUnavailable) -> MetricResult:
    """Mean over OpenS2V's 32 sampled frames of <prompt embedding, frame embedding>."""
    if isinstance(gme, BackendUnavailable):
        return MetricResult.na(NAME, gme.name, gme.reason)
    t = gme.text_embeddings([prompt])[0]  # (D,)
    idx = opens2v_indices(len(frames), 32)
    uniq = sorted(set(idx))  # a short clip repeats indices: embed each frame once
    v = gme.image_embeddings([frames[i] for i in uniq])  # (len(uniq), D)
    sims = dict(zip(uniq, (float(x) for x in v @ t)))
    per_frame = [sims[i] for i in idx]
    return MetricResult(NAME, gme.name, value=float(np.mean(per_frame)), per_frame=per_frame)
