"""The run's data: manifest records (checked before any model loads) and the pixel or latent-cache dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError
from wildactor.train.config import TrainConfig


def load_records(cfg: TrainConfig, output_dir: Path, check_files: bool = True) -> tuple[Path, list]:
    """The manifest path and its validated records; a bad manifest stops here, before any model loads."""
    from wildactor.data.dataset import write_toy_dataset
    from wildactor.data.schema import load_manifest

    if cfg.data.toy_clips:
        manifest = output_dir / "toy-data" / "manifest.jsonl"
        if not manifest.is_file():
            write_toy_dataset(manifest.parent, num_clips=cfg.data.toy_clips, seed=cfg.seed)
    else:
        manifest = Path(cfg.data.manifest)
    records = load_manifest(manifest, check_files=False)
    if cfg.data.check_files:  # every rank checks, so skipped records are the same everywhere
        from wildactor.data.dataset import check_training_records

        records = check_training_records(
            records,
            manifest.parent,
            cfg.data.allow_outside_root,
            cfg.data.skip_bad_records,
            log=print if check_files else lambda _line: None,
        )
    return manifest, records


def check_sampler_coverage(cfg: TrainConfig, records: list) -> None:
    """Every record must offer the sampler at least one reference (e.g. ``self_crop_only`` needs self-crops):
    stop before the models load, not in the middle of a run."""
    from wildactor.data.sampler import build_sampler

    s = cfg.sampler
    sampler = build_sampler(s.kind, s.delta_deg, s.gamma, s.num_face, s.num_body)
    empty = [i for i, r in enumerate(records) if not any(sampler.candidates(r.refs))]
    if empty:
        raise WildActorError(
            f"sampler {s.kind!r} finds no usable reference in record(s) {empty[:5]}"
            + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        )


def build_dataset(
    cfg: TrainConfig,
    manifest: Path,
    records: list,
    encoder: Any,
    encoder_id: str,
    accelerator,
    show_progress: bool = True,
):
    """Pixel dataset, or (with ``data.cache_dir``) the latent cache, built once by the main process."""
    from wildactor.data.dataset import ActorClipDataset, CachedLatentDataset, ClipSpec, build_latent_cache
    from wildactor.data.sampler import build_sampler

    d, s = cfg.data, cfg.sampler
    sampler = build_sampler(s.kind, s.delta_deg, s.gamma, s.num_face, s.num_body)
    spec = ClipSpec(
        d.num_frames, d.height, d.width, d.frame_stride, d.ref_height or d.height, d.ref_width or d.width,
        d.reference_fit,
    )  # fmt: skip
    if d.cache_dir is None:
        return ActorClipDataset(records, manifest.parent, sampler, spec, seed=cfg.seed)
    if accelerator.is_main_process:
        import torch

        text_dtype = torch.bfloat16 if cfg.precision.mixed_precision == "bf16" else torch.float32
        build_latent_cache(
            manifest, records, encoder, d.cache_dir, spec, encoder_id, seed=cfg.seed,
            shard_size=d.cache_shard_size, show_progress=show_progress, text_dtype=text_dtype,
        )  # fmt: skip
    accelerator.wait_for_everyone()
    return CachedLatentDataset(records, d.cache_dir, sampler, spec, seed=cfg.seed)
