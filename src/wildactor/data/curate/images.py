"""Small image helpers shared by the crop, augmentation and identity-check stages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from wildactor.media import WHITE


def scaled_box(box: list[float], scale: float) -> list[float]:
    """The box grown about its centre by `scale` (unclipped)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * scale / 2, (box[3] - box[1]) * scale / 2
    return [cx - hw, cy - hh, cx + hw, cy + hh]


def inside_share(box: list[float], width: int, height: int) -> float:
    """Share of the box's area that lies inside the image."""
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    if area <= 0:
        return 0.0
    ix = max(0.0, min(box[2], width) - max(box[0], 0))
    iy = max(0.0, min(box[3], height) - max(box[1], 0))
    return float(ix * iy / area)


def crop(rgb: np.ndarray, box: list[float], fill: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Pixels of `box`; the part outside the image is a flat `fill` (white, as references are padded
    for the model), never copies of the edge pixels, which would paint streaks. (h, w, 3) uint8."""
    import cv2

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        rgb = cv2.copyMakeBorder(
            rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=tuple(int(c) for c in fill)
        )
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def write_png(rgb: np.ndarray, path: str | Path) -> None:
    """Write a PNG atomically (temporary file + rename): a killed run never leaves half an image."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    Image.fromarray(rgb).save(tmp, format="PNG")
    os.replace(tmp, path)


def read_png(path: str | Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
