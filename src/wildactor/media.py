"""Images and videos on disk: reference loading (any common mode -> RGB), fitting (pad, stretch, cover), MP4, sheets;
file digests (inputs a result depends on)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from wildactor.errors import WildActorError

WHITE = (255, 255, 255)

# Modes whose 8-bit RGB meaning is unambiguous; PIL's own conversion handles them.
_DIRECT_MODES = {"RGB", "L", "1", "CMYK", "YCbCr", "RGBX", "P"}
# Integer modes of more than 8 bits per sample (16-bit PNG/TIFF greyscale and friends).
_WIDE_INT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_rgb(image: Image.Image, source: str = "image") -> Image.Image:
    """Any common PIL mode -> 8-bit RGB. Transparency is composited onto white; 16-bit is scaled to 8-bit.

    Raises `WildActorError` for modes with no defined 8-bit meaning (e.g. 32-bit float "F").
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode in _WIDE_INT_MODES:
        values = np.asarray(image, dtype=np.float64)  # (H, W), 0..65535 for 16-bit sources
        grey = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in _DIRECT_MODES:
        return image.convert("RGB")
    raise WildActorError(
        f"unsupported image mode {mode!r} in {source}: save it as 8- or 16-bit RGB, RGBA or greyscale"
    )


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Read an image file as 8-bit RGB; one-line `WildActorError` if it is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise WildActorError(f"reference image not found: {path}")
    if not path.is_file():
        raise WildActorError(f"reference image is not a file: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            image = im.copy()
    except UnidentifiedImageError as exc:
        raise WildActorError(f"cannot read reference image {path}: not an image file") from exc
    except OSError as exc:
        raise WildActorError(f"cannot read reference image {path}: {exc}") from exc
    return to_rgb(image, source=str(path))


def fit_and_pad(
    image: Image.Image, width: int, height: int, fill: tuple[int, int, int] = WHITE
) -> Image.Image:
    """Scale to fit inside (width, height) keeping aspect, centre it, pad the rest with ``fill``."""
    image = to_rgb(image)
    scale = min(height / image.height, width / image.width)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (width, height), fill)
    canvas.paste(image, ((width - size[0]) // 2, (height - size[1]) // 2))
    return canvas


FITS: tuple[str, ...] = ("pad", "stretch", "cover")
REFERENCE_FITS: tuple[str, ...] = ("pad", "stretch")  # the fits a reference image may be given


def fit_image(image: Image.Image, width: int, height: int, fit: str = "pad") -> Image.Image:
    """An RGB image of exactly (width, height).

    ``"pad"``: keep the aspect ratio, fit inside, pad with white (`fit_and_pad`); ``"stretch"``: resize to the
    size, distorting the aspect ratio (the official WildActor release fits references this way);
    ``"cover"``: keep the aspect ratio, fill the frame, crop the centre (first frames of image-to-video).
    """
    if fit == "pad":
        return fit_and_pad(image, width, height)
    image = to_rgb(image)
    if fit == "stretch":
        return (
            image
            if image.size == (width, height)
            else image.resize((width, height), Image.Resampling.BICUBIC)
        )
    if fit == "cover":
        scale = max(height / image.height, width / image.width)
        size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
        if size != image.size:
            image = image.resize(size, Image.Resampling.BICUBIC)
        left, top = (size[0] - width) // 2, (size[1] - height) // 2
        return image.crop((left, top, left + width, top + height))
    raise WildActorError(f"unknown fit {fit!r} (use one of {', '.join(FITS)})")


def write_mp4(path: str | os.PathLike[str], frames: np.ndarray, fps: int = 16, crf: int = 18) -> Path:
    """(F, H, W, 3) uint8 frames -> H.264 MP4 (yuv420p). Written to a temporary name, then renamed.

    H.264 is lossy and, with this PyAV/libx264 build, not bit-reproducible from run to run (same frames can
    give slightly different bitstreams): compare generated frames, not decoded files.
    """
    import av

    # PyAV reads rows by the array's strides only if it is C-contiguous; a strided view gives garbage.
    frames = np.ascontiguousarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (F, H, W, 3), got {frames.dtype} {frames.shape}")
    num_frames, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for index, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = index
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path


def read_mp4(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode every frame of a video: (F, H, W, 3) uint8."""
    import av

    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    if not frames:
        raise WildActorError(f"{path} holds no video frames")
    return np.stack(frames)


def frames_to_pixels(frames: np.ndarray):
    """(T, H, W, 3) uint8 frames (or R images stacked the same way) -> (1, 3, T, H, W) float32 in [-1, 1],
    the layout a video VAE encodes."""
    import torch

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    return torch.from_numpy(frames.copy()).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0


def _thumbnail(image: Image.Image, height: int) -> Image.Image:
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.BICUBIC)


def contact_sheet(
    references: Sequence[Image.Image],
    shots: Sequence[np.ndarray],
    frames_per_shot: int = 6,
    thumb_height: int = 128,
    labels: Sequence[str] | None = None,
) -> Image.Image:
    """One row of references, then one row per shot with ``frames_per_shot`` evenly spaced frames.

    shots: each (F, H, W, 3) uint8. Each row starts with a short text label.
    """
    label_width, gap = 72, 4
    rows: list[tuple[str, list[Image.Image]]] = []
    if references:
        rows.append(("refs", [_thumbnail(to_rgb(r), thumb_height) for r in references]))
    for i, shot in enumerate(shots):
        count = min(frames_per_shot, shot.shape[0])
        picks = np.linspace(0, shot.shape[0] - 1, count).round().astype(int)
        name = labels[i] if labels is not None else f"shot {i + 1}"
        rows.append((name, [_thumbnail(Image.fromarray(shot[k]), thumb_height) for k in picks]))
    if not rows:
        raise ValueError("a contact sheet needs at least one reference or one shot")
    width = label_width + max(sum(t.width + gap for t in thumbs) for _, thumbs in rows)
    height = len(rows) * (thumb_height + gap) + gap
    sheet = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(sheet)
    for r, (name, thumbs) in enumerate(rows):
        top = gap + r * (thumb_height + gap)
        draw.text((4, top + thumb_height // 2 - 6), name, fill=(0, 0, 0))
        left = label_width
        for thumb in thumbs:
            sheet.paste(thumb, (left, top))
            left += thumb.width + gap
    return sheet
