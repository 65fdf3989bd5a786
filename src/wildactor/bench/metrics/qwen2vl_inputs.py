"""Model inputs for Qwen2-VL-family checkpoints (GME, Qwen2-VL, Qwen2.5-VL) from a tokenizer and an image
processor, without `Qwen2VLProcessor`: with transformers 5.x that class cannot be built when torchvision is
absent (its video-processor check fails), while the tokenizer and `AutoImageProcessor` load fine.

Each `<|image_pad|>` in a text stands for one image and is expanded to that image's number of visual tokens,
(t * h * w) / merge_size**2 of its patch grid, exactly as the processor would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

IMAGE_PAD = "<|image_pad|>"


class Qwen2VLInputs:
    """Tokenizer + image processor of a local Qwen2-VL-family folder."""

    def __init__(
        self, model_dir: str | Path, min_pixels: int | None = None, max_pixels: int | None = None
    ) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer

        kw: dict[str, Any] = {}
        if min_pixels is not None and max_pixels is not None:
            kw["size"] = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.image_processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True, **kw)

    def __call__(
        self,
        texts: list[str],
        images: list[np.ndarray] | None = None,
        max_length: int | None = None,
        padding_side: str = "right",
    ) -> dict[str, Any]:
        """Tokenised `texts` (one `<|image_pad|>` per image, in order) with pixel_values / image_grid_thw."""
        from PIL import Image

        out: dict[str, Any] = {}
        if images:
            px = self.image_processor(images=[Image.fromarray(im) for im in images], return_tensors="pt")
            out["pixel_values"], out["image_grid_thw"] = px["pixel_values"], px["image_grid_thw"]
            merge = int(getattr(self.image_processor, "merge_size", 2))
            counts = iter(int(g.prod()) // merge**2 for g in px["image_grid_thw"])
            expanded = []
            for t in texts:
                parts = t.split(IMAGE_PAD)
                expanded.append(parts[0] + "".join(IMAGE_PAD * next(counts) + p for p in parts[1:]))
            texts = expanded
        self.tokenizer.padding_side = padding_side
        tok = self.tokenizer(
            texts,
            padding=True,
            truncation=max_length is not None,
            max_length=max_length,
            return_tensors="pt",
        )
        out["input_ids"], out["attention_mask"] = tok["input_ids"], tok["attention_mask"]
        if images:
            # Modality of each token (0 text, 1 image): transformers 5.x needs it for the 3-D (M-RoPE) positions.
            pad_id = self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
            out["mm_token_type_ids"] = (tok["input_ids"] == pad_id).long()
        return out
