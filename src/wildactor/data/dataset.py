"""Training data: clip + sampled references + prompt -> tensors, and the optional latent cache.

Order and randomness are functions of a *stream position* ``p`` (the p-th sample the run consumes), never
of hidden state: sample ``p`` is record ``perm_e[p mod N]`` with ``e = p // N`` and ``perm_e`` a permutation
seeded by (seed, e); its frame window and reference draw are seeded by (seed, p). So a run resumes from its
step count alone, and two processes splitting a global batch see exactly what one process would.

Pixel items (decoded with PyAV)::

    video (3, T, H, W) in [-1, 1]; references (3, R, h, w) in [-1, 1]; reference_types [R x face|body];
    prompt str; position int; index int

Latent items (from a cache written by `build_latent_cache`)::

    video_latents (C, F, H', W'); reference_latents (C, R, h', w'); text_embeddings (L, D); reference_types;
    position; index

References come face first, then body (a three-view sheet is a body reference). A region with fewer
candidates than requested repeats its draws cyclically so batches keep one layout; a region with none is
left out, and `collate` trims a batch to the layout its samples share.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from wildactor.data.sampler import ViewpointAdaptiveSampler
from wildactor.data.schema import ManifestRecord, ReferenceRecord, resolve_path, write_manifest
from wildactor.errors import WildActorError
from wildactor.media import REFERENCE_FITS


def seed_for(*keys: int) -> int:
    """A 63-bit seed mixed from integers (stable across processes and platforms)."""
    hi, lo = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32).tolist()
    return ((hi << 32) | lo) >> 1


@functools.lru_cache(maxsize=4)
def _epoch_permutation(num_records: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng(seed_for(seed, epoch, 0x5EED)).permutation(num_records)


def stream_index(position: int, num_records: int, seed: int) -> int:
    """The record index of stream position ``position``: epoch-wise seeded permutations."""
    epoch, offset = divmod(position, num_records)
    return int(_epoch_permutation(num_records, seed, epoch)[offset])


# ----------------------------------------------------------------------------------------------- pixels


def read_clip(path: Path, num_frames: int, frame_stride: int, rng: np.random.Generator) -> np.ndarray:
    """``num_frames`` RGB frames, ``frame_stride`` apart, from a random start: (T, H, W, 3) uint8.

    A clip shorter than the span repeats its last frame.
    """
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            total = stream.frames
            if not total and stream.duration and stream.average_rate:
                total = int(stream.duration * stream.time_base * stream.average_rate)
            span = (num_frames - 1) * frame_stride + 1
            start = int(rng.integers(0, max(1, (total or span) - span + 1)))
            wanted = {start + k * frame_stride for k in range(num_frames)}
            last = max(wanted)
            frames: dict[int, np.ndarray] = {}
            previous = None  # the last decoded frame, converted only if the clip ends early
            for i, frame in enumerate(container.decode(stream)):
                previous = frame
                if i in wanted:
                    frames[i] = frame.to_ndarray(format="rgb24")
                if i >= last:
                    break
    except Exception as exc:  # PyAV raises many error types for broken files
        raise WildActorError(f"cannot decode video {path}: {exc}") from exc
    if previous is None:
        raise WildActorError(f"{path}: no decodable video frames")
    latest = frames[max(frames)] if frames else previous.to_ndarray(format="rgb24")
    out, prev = [], frames.get(start, latest)
    for k in range(num_frames):
        prev = frames.get(start + k * frame_stride, prev)
        out.append(prev)
    return np.stack(out)


def video_problem(path: Path) -> str | None:
    """Why a clip cannot be read for training, or None: it must open, hold a video stream whose
    packets all demux, and decode a first frame. (Decoding every frame of every clip before step 1
    would cost as much as an epoch; this catches missing, truncated, corrupt and non-video files.)"""
    import av

    if not path.is_file():
        return f"video not found: {path}"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return f"no video stream in {path}"
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                return f"no decodable video frame in {path}"
            container.seek(0)
            for _ in container.demux(stream):
                pass
    except Exception as exc:  # PyAV raises many error types for broken files
        return f"cannot decode video {path}: {' '.join(str(exc).split())}"
    return None


def check_training_records(
    records: Sequence[ManifestRecord],
    root: str | os.PathLike[str],
    allow_outside_root: bool = False,
    skip_bad: bool = False,
    log=print,
) -> list[ManifestRecord]:
    """Open every record's clip and reference images before training starts.

    Every bad record (a file outside ``root``, missing, unreadable or undecodable) is listed in one
    ``WildActorError``; with ``skip_bad`` the bad records are left out instead, their count and
    reasons printed through ``log``. Returns the records to train on.
    """
    from wildactor.data.schema import validate_record
    from wildactor.media import load_image

    bad: list[str] = []
    keep: list[ManifestRecord] = []
    for i, record in enumerate(records):
        # files inside `root` and present (the manifest check), then readable
        problems = [str(p) for p in validate_record(record, i, root, allow_outside_root)]
        if not problems:
            why = video_problem(resolve_path(root, record.video))
            problems += [] if why is None else [f"record {i}: video: {why}"]
        if not problems:
            for j, ref in enumerate(record.refs):
                try:
                    load_image(resolve_path(root, ref.path))
                except WildActorError as exc:
                    problems.append(f"record {i}: refs[{j}].path: {exc}")
                    break
        if problems:
            bad.append("; ".join(problems))
        else:
            keep.append(record)
    if bad and not skip_bad:
        shown = "; ".join(bad[:20]) + (f"; (+{len(bad) - 20} more)" if len(bad) > 20 else "")
        raise WildActorError(
            f"{len(bad)} of {len(records)} manifest records cannot be used "
            f"(set data.skip_bad_records: true to train on the rest): {shown}"
        )
    if bad:
        log(f"skipping {len(bad)} of {len(records)} manifest records that cannot be used:")
        for line in bad:
            log(f"  {line}")
    if not keep:
        raise WildActorError(f"none of the {len(records)} manifest records can be used")
    return keep


def resize_center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(T, 3, H0, W0) float -> (T, 3, height, width): scale to cover, then crop the centre."""
    h0, w0 = frames.shape[-2:]
    scale = max(height / h0, width / w0)
    nh, nw = max(height, round(h0 * scale)), max(width, round(w0 * scale))
    if (nh, nw) != (h0, w0):
        frames = F.interpolate(frames, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - height) // 2, (nw - width) // 2
    return frames[..., top : top + height, left : left + width]


def load_reference(path: Path, height: int, width: int, fit: str = "pad") -> torch.Tensor:
    """An image fitted into (height, width): (3, height, width) in [-1, 1].

    ``fit``: ``"pad"`` (inside, white padding) or ``"stretch"`` (resized to the size, as the official release
    does); see `wildactor.media.fit_image`. The pipeline's own loader and fit, so training sees references
    exactly as sampling does (RGBA on white, grey and 16-bit converted).
    """
    from wildactor.media import fit_image, load_image

    canvas = fit_image(load_image(path), width, height, fit)
    x = torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float()  # (3, H, W)
    return x / 127.5 - 1.0


def _fill(indices: list[int], k: int) -> list[int]:
    """Repeat draws cyclically up to k (empty stays empty)."""
    return [indices[i % len(indices)] for i in range(k)] if indices else []


@dataclass
class ClipSpec:
    """What one training sample looks like in pixels."""

    num_frames: int = 17
    height: int = 480
    width: int = 832
    frame_stride: int = 1
    ref_height: int = 480
    ref_width: int = 480
    # "pad" keeps a reference's proportions (build and height are identity) where "stretch" distorts a tall
    # body shot into a wide frame; the shipped model was trained with "pad". Official weights: "stretch".
    reference_fit: str = "pad"

    def __post_init__(self) -> None:
        if self.reference_fit not in REFERENCE_FITS:
            raise ValueError(f"reference_fit must be one of {REFERENCE_FITS}, got {self.reference_fit!r}")


class ActorClipDataset(torch.utils.data.Dataset):
    """Indexed by stream position: item ``p`` is record ``stream_index(p)`` with draws seeded by (seed, p)."""

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        root: str | os.PathLike[str],
        sampler: ViewpointAdaptiveSampler,
        spec: ClipSpec,
        seed: int = 0,
    ) -> None:
        if not records:
            raise WildActorError("the dataset has no records")
        self.records = list(records)
        self.root = Path(root)
        self.sampler = sampler
        self.spec = spec
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def reference_rng(self, position: int) -> np.random.Generator:
        """The generator of the reference draw of stream position ``position`` (its own stream)."""
        return np.random.default_rng(seed_for(self.seed, position, 2))

    def select_references(self, refs: Sequence[ReferenceRecord], rng: np.random.Generator):
        """(indices, types): face draws then body draws, each filled up to the requested count."""
        face, body = self.sampler.select(refs, rng)
        face, body = _fill(face, self.sampler.num_face), _fill(body, self.sampler.num_body)
        return face + body, ["face"] * len(face) + ["body"] * len(body)

    def __getitem__(self, position: int) -> dict[str, Any]:
        index = stream_index(position, len(self.records), self.seed)
        record = self.records[index]
        s = self.spec
        frame_rng = np.random.default_rng(seed_for(self.seed, position, 1))
        frames = read_clip(resolve_path(self.root, record.video), s.num_frames, s.frame_stride, frame_rng)
        video = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (T, 3, H0, W0)
        video = resize_center_crop(video, s.height, s.width) / 127.5 - 1.0
        chosen, types = self.select_references(record.refs, self.reference_rng(position))
        if not chosen:
            raise WildActorError(f"record {index}: no face or body reference to condition on")
        refs = [
            load_reference(
                resolve_path(self.root, record.refs[j].path), s.ref_height, s.ref_width, s.reference_fit
            )
            for j in chosen
        ]
        return {
            "video": video.permute(1, 0, 2, 3).contiguous(),  # (3, T, H, W)
            "references": torch.stack(refs, dim=1),  # (3, R, h, w)
            "reference_types": types,
            "reference_indices": chosen,
            "prompt": record.prompt,
            "position": position,
            "index": index,
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items; references are trimmed to the (face, body) counts every item has."""
    n_face = min(it["reference_types"].count("face") for it in items)
    n_body = min(it["reference_types"].count("body") for it in items)
    key = "references" if "references" in items[0] else "reference_latents"

    def trim(it: dict[str, Any]) -> torch.Tensor:
        types = it["reference_types"]
        nf = types.count("face")
        keep = list(range(n_face)) + list(range(nf, nf + n_body))
        return it[key][:, keep]

    out: dict[str, Any] = {
        key: torch.stack([trim(it) for it in items]),
        "reference_types": ["face"] * n_face + ["body"] * n_body,
        "position": torch.tensor([it["position"] for it in items]),
        "index": torch.tensor([it["index"] for it in items]),
    }
    for name in ("video", "video_latents", "text_embeddings"):
        if name in items[0]:
            out[name] = torch.stack([it[name] for it in items])
    if "prompt" in items[0]:
        out["prompt"] = [it["prompt"] for it in items]
    return out


class PositionSampler(torch.utils.data.Sampler[int]):
    """Stream positions for one process: step s of micro-batch m takes a slice of the global batch.

    Global batch g covers positions [g * G, (g + 1) * G) with G = micro_batch * accumulation * world_size;
    within it, micro-step m of process r takes [m * W * b + r * b, ... + b). Starts at ``start_step``.
    """

    def __init__(
        self, micro_batch: int, accumulation: int, world_size: int, rank: int, start_step: int, max_steps: int
    ) -> None:
        self.b, self.a, self.w, self.r = micro_batch, accumulation, world_size, rank
        self.start, self.stop = start_step, max_steps

    def __iter__(self):
        global_batch = self.b * self.a * self.w
        for step in range(self.start, self.stop):
            for m in range(self.a):
                base = step * global_batch + (m * self.w + self.r) * self.b
                yield from range(base, base + self.b)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.a * self.b


# ----------------------------------------------------------------------------------------------- latent cache


CACHE_FORMAT = "wildactor-latent-cache-v2"  # v2: text as its valid rows only, in the text dtype
PROMPT_CLEANING = "wan-clean"  # prompts are encoded after `clean_prompt`, as the pipeline encodes them


def trim_text(embedding: torch.Tensor) -> torch.Tensor:
    """(L, D) text embedding -> its rows up to the last non-zero one. The encoder zeroes every row past the
    prompt's end, so `pad_text(trim_text(e), L)` is `e` exactly."""
    nonzero = embedding.abs().amax(dim=-1) > 0  # (L,)
    length = int(nonzero.nonzero().max()) + 1 if nonzero.any() else 0
    return embedding[:length]


def pad_text(rows: torch.Tensor, length: int) -> torch.Tensor:
    """(n, D) valid rows -> (length, D) float32 with zero rows after them, as the text encoder returns it."""
    out = torch.zeros(length, rows.shape[-1], dtype=torch.float32)
    out[: rows.shape[0]] = rows.float()
    return out


def _cache_key(
    manifest: Path, spec: ClipSpec, encoder_id: str, seed: int, text_dtype: torch.dtype
) -> dict[str, Any]:
    from wildactor.media import file_sha256

    digest = file_sha256(manifest)
    return {
        "format": CACHE_FORMAT,
        "manifest_sha256": digest,
        # "pad" (the original behaviour) is left out so that caches built before the field existed stay valid.
        "spec": {k: v for k, v in vars(spec).items() if not (k == "reference_fit" and v == "pad")},
        "encoder": encoder_id,
        "seed": seed,
        "text_dtype": str(text_dtype).removeprefix("torch."),
        "prompts": PROMPT_CLEANING,
    }


def build_latent_cache(
    manifest: str | os.PathLike[str],
    records: Sequence[ManifestRecord],
    encoder: Any,
    cache_dir: str | os.PathLike[str],
    spec: ClipSpec,
    encoder_id: str,
    seed: int = 0,
    shard_size: int = 32,
    show_progress: bool = True,
    text_dtype: torch.dtype = torch.float32,
) -> Path:
    """Encode every clip, every reference and every prompt once; write safetensors shards. Resumable.

    A prompt is cleaned as the pipeline cleans it (`clean_prompt`) and stored as its valid rows only (the encoder zeroes the padding), in ``text_dtype`` (the training
    precision: under bf16 autocast the text projection reads bf16 anyway); reading pads it back.

    Each record gets one frame window (seeded by (seed, index)); the sampler still draws references per step
    from the cached latents of all of the record's references. ``index.json`` pins manifest, sizes and
    encoder: a cache built for other settings is refused, not silently reused.
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from wildactor.diffusion.prompts import clean_prompt

    manifest, cache_dir = Path(manifest), Path(cache_dir)
    root = manifest.parent
    key = _cache_key(manifest, spec, encoder_id, seed, text_dtype)
    index_path = cache_dir / "index.json"
    text_length = None
    if index_path.is_file():
        old = json.loads(index_path.read_text())
        # built before the field: the same embeddings if cleaning changes no prompt
        if "prompts" not in old and all(clean_prompt(r.prompt) == r.prompt for r in records):
            old["prompts"] = PROMPT_CLEANING
        if {k: old.get(k) for k in key} != key:
            raise WildActorError(
                f"latent cache {cache_dir} was built for other settings; delete it or pick a new dir"
            )
        text_length = old.get("text_length")
    cache_dir.mkdir(parents=True, exist_ok=True)
    num_shards = (len(records) + shard_size - 1) // shard_size
    if text_length is None:  # what reading pads back to (a finished cache is never re-encoded)
        text_length = int(encoder.encode_text([""]).shape[1])
    index_path.write_text(
        json.dumps(
            {**key, "num_records": len(records), "shard_size": shard_size, "text_length": text_length},
            indent=2,
        )
    )
    for shard in tqdm(range(num_shards), desc="latent cache", disable=not show_progress):
        path = cache_dir / f"shard-{shard:05d}.safetensors"
        if path.is_file():
            continue
        tensors: dict[str, torch.Tensor] = {}
        for index in range(shard * shard_size, min(len(records), (shard + 1) * shard_size)):
            record = records[index]
            rng = np.random.default_rng(seed_for(seed, index, 0xCAC4E))
            frames = read_clip(resolve_path(root, record.video), spec.num_frames, spec.frame_stride, rng)
            video = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (T, 3, H0, W0)
            video = resize_center_crop(video, spec.height, spec.width) / 127.5 - 1.0
            tensors[f"{index}.video"] = (
                encoder.encode_video(video.permute(1, 0, 2, 3)[None])[0].cpu().contiguous()
            )
            text = trim_text(encoder.encode_text([clean_prompt(record.prompt)])[0])  # (n, D), as the pipeline
            tensors[f"{index}.text"] = text.to(text_dtype).cpu().contiguous()
            for j, ref in enumerate(record.refs):
                image = load_reference(
                    resolve_path(root, ref.path), spec.ref_height, spec.ref_width, spec.reference_fit
                )
                z = encoder.encode_references(image[None, :, None])  # (1, C, 1, h, w)
                tensors[f"{index}.ref.{j}"] = z[0, :, 0].cpu().contiguous()
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"format": CACHE_FORMAT})
        os.replace(tmp, path)
    return cache_dir


class CachedLatentDataset(ActorClipDataset):
    """Like `ActorClipDataset`, but reads latents and text embeddings from a `build_latent_cache` folder."""

    def __init__(
        self,
        records: Sequence[ManifestRecord],
        cache_dir: str | os.PathLike[str],
        sampler: ViewpointAdaptiveSampler,
        spec: ClipSpec,
        seed: int = 0,
    ) -> None:
        super().__init__(records, cache_dir, sampler, spec, seed)
        self.cache_dir = Path(cache_dir)
        index_path = self.cache_dir / "index.json"
        if not index_path.is_file():
            raise WildActorError(f"no latent cache at {self.cache_dir} (index.json missing)")
        info = json.loads(index_path.read_text())
        if info.get("num_records") != len(self.records):
            raise WildActorError(
                f"latent cache {self.cache_dir} holds {info.get('num_records')} records, manifest {len(self.records)}"
            )
        self.shard_size = int(info["shard_size"])
        self.text_length = int(info["text_length"])

    def __getitem__(self, position: int) -> dict[str, Any]:
        from safetensors import safe_open

        index = stream_index(position, len(self.records), self.seed)
        record = self.records[index]
        chosen, types = self.select_references(record.refs, self.reference_rng(position))
        if not chosen:
            raise WildActorError(f"record {index}: no face or body reference to condition on")
        path = self.cache_dir / f"shard-{index // self.shard_size:05d}.safetensors"
        if not path.is_file():
            raise WildActorError(f"latent cache shard missing: {path} (rebuild the cache)")
        with safe_open(str(path), framework="pt") as f:
            video = f.get_tensor(f"{index}.video")
            text = pad_text(f.get_tensor(f"{index}.text"), self.text_length)
            refs = [f.get_tensor(f"{index}.ref.{j}") for j in chosen]
        return {
            "video_latents": video,  # (C, F, H', W')
            "reference_latents": torch.stack(refs, dim=1),  # (C, R, h', w')
            "text_embeddings": text,  # (L, D)
            "reference_types": types,
            "reference_indices": chosen,
            "position": position,
            "index": index,
        }


# ----------------------------------------------------------------------------------------------- toy data


def write_toy_dataset(folder: str | os.PathLike[str], num_clips: int = 4, size: int = 48, num_frames: int = 12,
                      seed: int = 0) -> Path:  # fmt: skip
    """A tiny deterministic dataset (coloured "actors" moving on gradients) for smoke runs and tests.

    Each clip has 6 face and 6 body references, 90% near-frontal angles as in real self-crops. Returns the
    manifest path. Not a benchmark: the point is that every stage runs end to end in seconds.
    """
    import av
    from PIL import Image

    folder = Path(folder)
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    records = []
    for c in range(num_clips):
        colour = rng.integers(40, 255, size=3)
        background = rng.integers(0, 120, size=3)
        path = folder / "videos" / f"clip{c:03d}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=8)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18"}
            for t in range(num_frames):
                img = (background[None, None] * (0.5 + 0.5 * yy[..., None])).astype(np.uint8)
                x0 = int((t / num_frames) * size * 0.5)
                img[size // 4 : 3 * size // 4, x0 : x0 + size // 3] = colour
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        refs = []
        for region in ("face", "body"):
            for j in range(6):
                angle = float(rng.uniform(-20, 20)) if j < 5 else float(rng.choice([90.0, 180.0, 270.0]))
                shade = (colour * (1.0 - abs(((angle + 180) % 360) - 180) / 360)).astype(np.uint8)
                h, w = (24, 24) if region == "face" else (40, 20)
                img = np.tile(shade[None, None], (h, w, 1)).astype(np.uint8)
                rel = f"refs/clip{c:03d}_{region}{j}.png"
                Image.fromarray(img).save(folder / rel)
                refs.append(
                    ReferenceRecord(
                        path=rel,
                        region=region,
                        view="front" if j < 5 else "side",
                        angle=angle % 360,
                        visibility=1.0,
                        source_frame=j,
                        metadata={"source": "self_crop" if j < 5 else "view_aug"},
                    )  # fmt: skip
                )
        records.append(
            ManifestRecord(
                video=f"videos/clip{c:03d}.mp4",
                prompt=f"a person in colour {c} walks to the right",
                actor_id=f"toy{c}",
                source="toy",
                width=size,
                height=size,
                duration_sec=num_frames / 8,
                refs=refs,
            )  # fmt: skip
        )
    return write_manifest(records, folder / "manifest.jsonl")
