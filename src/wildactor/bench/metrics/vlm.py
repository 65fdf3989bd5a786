"""A vision-language yes/no judge through transformers, loaded from a local folder (Qwen2.5-VL, Qwen3-VL, ...).

The score of a question is P(yes) / (P(yes) + P(no)) read from the logits of the first answer token, which is
smoother than a sampled answer and deterministic. Prompts live in `wildactor/bench/prompts/` so they can be
read and changed with the code.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from wildactor.bench.metrics.face import BackendUnavailable


def load_prompt(name: str) -> str:
    """Text of `wildactor/bench/prompts/<name>.txt`."""
    return resources.files("wildactor.bench").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")


class VLMJudge:
    """Yes/no questions about images, answered by a local image-text-to-text model."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", dtype: str = "auto") -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no VLM at {model_dir} (config.json missing)")
        self.name = f"vlm:{model_dir.name}"
        self._torch = torch
        self.processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        torch_dtype = {"auto": "auto", "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
        self.model = AutoModelForImageTextToText.from_pretrained(
            model_dir, dtype=torch_dtype, local_files_only=True
        ).to(device)
        self.model.eval()
        tok = self.processor.tokenizer
        self._yes = sorted({tok.encode(w, add_special_tokens=False)[0] for w in ("Yes", " Yes", "yes")})
        self._no = sorted({tok.encode(w, add_special_tokens=False)[0] for w in ("No", " No", "no")})

    def yes_probability(self, images: list[np.ndarray], question: str) -> float:
        """P(yes) for a question about `images` (RGB uint8 arrays), in [0, 1]."""
        from PIL import Image

        torch = self._torch
        content = [{"type": "image", "image": Image.fromarray(im)} for im in images]
        content.append({"type": "text", "text": question})
        inputs = self.processor.apply_chat_template(
            [{"role": "user", "content": content}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        ).to(self.model.device)
        with torch.no_grad():
            logits = self.model(**inputs).logits[0, -1].float()  # (vocab,)
        logp = torch.log_softmax(logits, dim=-1)
        p_yes = torch.logsumexp(logp[self._yes], 0).exp()
        p_no = torch.logsumexp(logp[self._no], 0).exp()
        return float(p_yes / (p_yes + p_no + 1e-12))


def build_vlm_backend(model_dir: str | None, device: str = "cpu") -> VLMJudge | BackendUnavailable:
    """A judge from a local folder, or an unavailable back-end that explains why."""
    if not model_dir:
        return BackendUnavailable("vlm", "no VLM folder given (--vlm DIR)")
    try:
        return VLMJudge(model_dir, device=device)
    except (FileNotFoundError, OSError, ValueError, ImportError, KeyError) as exc:
        return BackendUnavailable("vlm", str(exc).splitlines()[0])
