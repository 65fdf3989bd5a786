"""`wildactor train`: fine-tune the reference LoRA with rectified flow, on accelerate.

Read top to bottom: config dataclasses (YAML maps 1:1 onto them) -> data (manifest checked before anything
else) -> models (a diffusers Wan folder, or an inline tiny config) -> optimizer -> resume -> the loop
(encode, noise, predict the velocity, weighted MSE, step) -> atomic checkpoints.

    wildactor train --config configs/tiny.yaml [--resume] [--max-steps N] [--output-dir DIR]
    accelerate launch --config_file configs/accelerate/ddp.yaml -m wildactor.cli train --config ...
    torchrun --nproc_per_node 2 -m wildactor.cli train --config ...      (CPU: gloo)

Determinism: the p-th sample of the run, its frame window, its reference draw, its noise and its timestep are
functions of (seed, p) only, so `--resume` continues bitwise (CPU) and N processes with micro-batch b see the
same global batch as one process with micro-batch N*b.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError

# ============================================================================================== config


@dataclass(frozen=True)
class ModelConfig:
    """Either ``pretrained`` (a diffusers Wan folder: transformer/ vae/ text_encoder/ tokenizer/) or inline
    random ``transformer`` / ``vae`` / ``text_encoder`` configs (tests, smoke runs). ``overrides`` are extra
    WildActor config args (lora_rank, attention_mode, rope_mode, ...)."""

    pretrained: str | None = None
    transformer: dict[str, Any] | None = None
    vae: dict[str, Any] | None = None  # {"kind": "wan" | "pixel", **constructor kwargs}
    text_encoder: dict[str, Any] | None = None  # UMT5Config kwargs
    # inline models only: a tokenizer folder (e.g. `wildactor world fit-tokenizer`); default ByT5Tokenizer()
    tokenizer: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    max_text_length: int = 512
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        inline = (self.transformer, self.vae, self.text_encoder)
        if self.pretrained is None and any(x is None for x in inline):
            raise ValueError("model: give `pretrained: DIR`, or all of `transformer`, `vae`, `text_encoder`")
        if self.pretrained is not None and any(x is not None for x in inline):
            raise ValueError(
                "model: `pretrained` and inline `transformer`/`vae`/`text_encoder` are exclusive"
            )
        if self.pretrained is not None and self.tokenizer is not None:
            raise ValueError("model: `tokenizer` is for inline models; a pretrained folder has its own")
        if self.vae is not None and self.vae.get("kind", "wan") not in ("wan", "pixel"):
            raise ValueError(f"model.vae.kind must be 'wan' or 'pixel', got {self.vae.get('kind')!r}")
        if self.max_text_length < 1:
            raise ValueError("model.max_text_length must be >= 1")


@dataclass(frozen=True)
class DataConfig:
    """Where clips come from and what one sample looks like. ``batch_size`` is per process."""

    manifest: str | None = None
    cache_dir: str | None = None  # latent cache (VAE + text encoder run once); built on first use
    toy_clips: int = 0  # > 0: write a toy dataset into <output_dir>/toy-data and train on it
    num_frames: int = 17
    height: int = 480
    width: int = 832
    frame_stride: int = 1
    ref_height: int | None = None  # None: the video's size, as the pipeline fits references at sampling time
    ref_width: int | None = None
    batch_size: int = 1
    num_workers: int = 0
    check_files: bool = True
    skip_bad_records: bool = False  # True: train on the readable records, list the others (else: stop)
    allow_outside_root: bool = False  # True: record paths may lead outside the manifest's folder
    cache_shard_size: int = 32

    def __post_init__(self) -> None:
        if (self.manifest is None) == (self.toy_clips == 0):
            raise ValueError("data: set exactly one of `manifest` and `toy_clips`")
        for name in (
            "num_frames",
            "height",
            "width",
            "frame_stride",
            "ref_height",
            "ref_width",
            "batch_size",
        ):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0 or self.toy_clips < 0 or self.cache_shard_size < 1:
            raise ValueError("data.num_workers and data.toy_clips must be >= 0, data.cache_shard_size >= 1")


@dataclass(frozen=True)
class SamplerConfig:
    kind: str = "adaptive"  # adaptive | random | self_crop_only
    delta_deg: float = 25.0
    gamma: float = 0.25
    num_face: int = 3
    num_body: int = 3

    def __post_init__(self) -> None:
        from wildactor.data.sampler import build_sampler

        build_sampler(self.kind, self.delta_deg, self.gamma, self.num_face, self.num_body)  # validates


@dataclass(frozen=True)
class OptimizerConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    eps: float = 1e-8
    max_grad_norm: float | None = 1.0
    trainable: str = "lora"  # lora: the reference LoRA only (the paper); all: every transformer weight

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.eps <= 0 or self.weight_decay < 0:
            raise ValueError("optimizer: lr and eps must be > 0, weight_decay >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optimizer.betas must be two numbers in [0, 1), got {self.betas}")
        if self.trainable not in ("lora", "all"):
            raise ValueError(f"optimizer.trainable must be 'lora' or 'all', got {self.trainable!r}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError("optimizer.max_grad_norm must be > 0 or null")


@dataclass(frozen=True)
class ScheduleConfig:
    max_steps: int = 1000
    warmup_steps: int = 0
    decay_steps: int = 0  # linear decay of the learning rate to 0 over the last decay_steps of max_steps
    gradient_accumulation_steps: int = 1
    timestep_sampling: str = "uniform"  # uniform | logit_normal
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 1.0  # Wan2.2-TI2V-5B samples with shift 5.0; train with the same
    loss_weighting: str = "uniform"  # uniform | cosmap | logit_normal
    # normalised: every latent channel counts equally (Wan); raw_latent: channels weighted by the VAE's
    # latents_std^2, i.e. the error measured in unnormalised latents (pixel space for the projected pixel VAE)
    loss_space: str = "normalised"
    num_train_timesteps: int = 1000
    # Condition dropout, so the branches classifier-free guidance subtracts are ones the model was trained on:
    # text_dropout: per sample, the prompt becomes the empty prompt (the pipeline's default negative prompt);
    # reference_dropout: per batch, no references (the pipeline's reference-guidance branch, and generation
    # without references). The paper's recipe leaves both at 0.
    text_dropout: float = 0.0
    reference_dropout: float = 0.0

    def __post_init__(self) -> None:
        from wildactor.diffusion.flow import LOSS_WEIGHTINGS, TIMESTEP_SAMPLERS

        if self.max_steps < 1 or self.warmup_steps < 0 or self.gradient_accumulation_steps < 1:
            raise ValueError("schedule: max_steps >= 1, warmup_steps >= 0, gradient_accumulation_steps >= 1")
        if not 0 <= self.decay_steps <= self.max_steps:
            raise ValueError("schedule.decay_steps must be in [0, max_steps]")
        if self.timestep_sampling not in TIMESTEP_SAMPLERS:
            raise ValueError(f"schedule.timestep_sampling must be one of {TIMESTEP_SAMPLERS}")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"schedule.loss_weighting must be one of {LOSS_WEIGHTINGS}")
        if self.shift <= 0 or self.logit_std <= 0:
            raise ValueError("schedule.shift and schedule.logit_std must be > 0")
        if self.loss_space not in ("normalised", "raw_latent"):
            raise ValueError("schedule.loss_space must be 'normalised' or 'raw_latent'")
        if not (0.0 <= self.text_dropout < 1.0 and 0.0 <= self.reference_dropout < 1.0):
            raise ValueError("schedule.text_dropout and schedule.reference_dropout must be in [0, 1)")


@dataclass(frozen=True)
class PrecisionConfig:
    mixed_precision: str = "no"  # no | bf16 | fp16 (autocast; trainable weights stay fp32)
    frozen_dtype: str = "float32"  # float32 | bfloat16: storage of the frozen weights (base, VAE, text)

    def __post_init__(self) -> None:
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(
                f"precision.mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}"
            )
        if self.frozen_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"precision.frozen_dtype must be float32 or bfloat16, got {self.frozen_dtype!r}")
        if self.frozen_dtype == "bfloat16" and self.mixed_precision != "bf16":
            raise ValueError("precision.frozen_dtype bfloat16 needs mixed_precision bf16")


@dataclass(frozen=True)
class CheckpointConfig:
    every_steps: int = 500
    keep_last: int = 3

    def __post_init__(self) -> None:
        if self.every_steps < 1 or self.keep_last < 1:
            raise ValueError("checkpointing.every_steps and checkpointing.keep_last must be >= 1")


@dataclass(frozen=True)
class EMAConfig:
    decay: float | None = None  # e.g. 0.999; None: no EMA

    def __post_init__(self) -> None:
        if self.decay is not None and not 0.0 < self.decay < 1.0:
            raise ValueError(f"ema.decay must be in (0, 1) or null, got {self.decay}")


@dataclass(frozen=True)
class LoggingConfig:
    every_steps: int = 10
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.every_steps < 1:
            raise ValueError("logging.every_steps must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig
    data: DataConfig
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    checkpointing: CheckpointConfig = field(default_factory=CheckpointConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    seed: int = 0
    output_dir: str = "runs/train"

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.output_dir, str) or not self.output_dir:
            raise ValueError(f"output_dir must be a non-empty path, got {self.output_dir!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from nested dicts; unknown keys are errors (a typo must not be silently ignored)."""
        sections = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            section_cls = _SECTIONS.get(name)
            if section_cls is None:
                kwargs[name] = value
                continue
            value = value or {}
            known = {f.name for f in fields(section_cls)}
            bad = sorted(set(value) - known)
            if bad:
                raise ValueError(f"unknown keys in `{name}`: {bad}")
            if "betas" in value:
                value = {**value, "betas": tuple(value["betas"])}
            kwargs[name] = section_cls(**value)
        if "model" not in kwargs or "data" not in kwargs:
            raise ValueError("config needs `model` and `data` sections")
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> TrainConfig:
        """Load a YAML config; ``overrides`` are ``dotted.key=value`` strings (value parsed as YAML), e.g.
        ``sampler.kind=random`` or ``model.overrides.attention_mode=full``, applied before validation."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise WildActorError(f"config not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
            for item in overrides:
                key, sep, raw = item.partition("=")
                if not sep or not key or any(not part for part in key.split(".")):
                    raise ValueError(f"override {item!r} is not of the form dotted.key=value")
                *parents, leaf = key.split(".")
                node = data
                for part in parents:
                    child = node.setdefault(part, {})
                    if not isinstance(child, dict):
                        raise ValueError(f"override {item!r}: {part!r} is not a section")
                    node = child
                node[leaf] = yaml.safe_load(raw)
            return cls.from_dict(data)
        except (ValueError, TypeError, yaml.YAMLError) as exc:
            raise WildActorError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


_SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "sampler": SamplerConfig,
    "optimizer": OptimizerConfig,
    "schedule": ScheduleConfig,
    "precision": PrecisionConfig,
    "checkpointing": CheckpointConfig,
    "ema": EMAConfig,
    "logging": LoggingConfig,
}


@dataclass
class TrainResult:
    """What a run did: the global mean loss of each optimizer step it ran, and where things are."""

    losses: list[float]
    start_step: int
    final_step: int
    output_dir: Path
    checkpoint: Path | None
    model: Any = field(
        default=None, repr=False
    )  # the trained transformer (unwrapped), for callers in-process


# ============================================================================================== data


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
        d.num_frames, d.height, d.width, d.frame_stride, d.ref_height or d.height, d.ref_width or d.width
    )
    if d.cache_dir is None:
        return ActorClipDataset(records, manifest.parent, sampler, spec, seed=cfg.seed)
    if accelerator.is_main_process:
        build_latent_cache(
            manifest, records, encoder, d.cache_dir, spec, encoder_id, seed=cfg.seed,
            shard_size=d.cache_shard_size, show_progress=show_progress,
        )  # fmt: skip
    accelerator.wait_for_everyone()
    return CachedLatentDataset(records, d.cache_dir, sampler, spec, seed=cfg.seed)


# ============================================================================================== models


def build_models(cfg: TrainConfig, output_dir: Path):
    """(transformer, encoder, encoder_id). Inline models are seeded and saved once to <output_dir>/model."""
    import torch

    from wildactor.diffusion.encode import VAETextEncoder, load_text_side, load_vae
    from wildactor.model import WildActorTransformer3DModel

    m = cfg.model
    if m.pretrained is not None:
        root = Path(m.pretrained)
        if not (root / "transformer").is_dir():
            raise WildActorError(
                f"model.pretrained: {root} has no transformer/ folder (a diffusers Wan folder?)"
            )
        transformer = WildActorTransformer3DModel.from_pretrained(
            root, subfolder="transformer", **m.overrides
        )
        vae = load_vae(root / "vae")
        text_encoder, tokenizer = load_text_side(root)
        encoder_id = f"pretrained:{root.resolve()}"
        from wildactor.pipeline import own_cpu_storage

        for module in (transformer, vae, text_encoder):  # bitwise-stable CPU results after a load
            own_cpu_storage(module)
    else:
        from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

        torch.manual_seed(cfg.seed)
        transformer = WildActorTransformer3DModel(**{**m.transformer, **m.overrides})
        vae_kwargs = {k: v for k, v in m.vae.items() if k != "kind"}
        vae_id: dict[str, str] = {}
        if m.vae.get("kind", "wan") == "pixel":
            from wildactor.model.pixel_vae import PixelShuffleVAE

            if "pretrained" in vae_kwargs:  # a fitted projection (`wildactor world fit-vae`)
                from wildactor.media import file_sha256

                folder = Path(vae_kwargs.pop("pretrained"))
                if vae_kwargs:
                    raise WildActorError(
                        f"model.vae: `pretrained` takes no other keys, got {sorted(vae_kwargs)}"
                    )
                if not (folder / "config.json").is_file():
                    raise WildActorError(f"model.vae.pretrained: {folder} holds no config.json")
                vae = PixelShuffleVAE.from_pretrained(folder)
                vae_id = {f.name: file_sha256(f) for f in sorted(folder.iterdir()) if f.is_file()}
            else:
                vae = PixelShuffleVAE(**vae_kwargs)
        else:
            from diffusers import AutoencoderKLWan

            vae = AutoencoderKLWan(**vae_kwargs)
        text_encoder = UMT5EncoderModel(UMT5Config(**m.text_encoder))
        tokenizer_id: dict[str, str] = {}
        if m.tokenizer is None:
            tokenizer = ByT5Tokenizer()
        else:
            from transformers import AutoTokenizer

            from wildactor.media import file_sha256

            folder = Path(m.tokenizer)
            if not (folder / "tokenizer_config.json").is_file():
                raise WildActorError(f"model.tokenizer: {folder} holds no tokenizer_config.json")
            tokenizer = AutoTokenizer.from_pretrained(folder)
            tokenizer_id = {f.name: file_sha256(f) for f in sorted(folder.iterdir()) if f.is_file()}
        if len(tokenizer) > text_encoder.config.vocab_size:
            raise WildActorError(
                f"the tokenizer has {len(tokenizer)} tokens but model.text_encoder.vocab_size is "
                f"{text_encoder.config.vocab_size}"
            )
        extra = [x for x in (vae_id, tokenizer_id) if x]  # fitted parts key the latent cache by content
        encoder_id = "inline:" + json.dumps(
            [m.transformer, m.vae, m.text_encoder, m.overrides, cfg.seed] + extra, sort_keys=True
        )
    _check_compatible(cfg, transformer, vae, text_encoder)
    encoder = VAETextEncoder(vae, text_encoder, tokenizer, max_text_length=m.max_text_length)
    return transformer, encoder, encoder_id


def _check_compatible(cfg: TrainConfig, transformer, vae, text_encoder) -> None:
    tc, d = transformer.config, cfg.data
    if tc.in_channels != vae.config.z_dim:
        raise WildActorError(
            f"transformer in_channels={tc.in_channels} but the VAE has z_dim={vae.config.z_dim}"
        )
    if tc.text_dim != text_encoder.config.d_model:
        raise WildActorError(
            f"transformer text_dim={tc.text_dim} but the text encoder has d_model={text_encoder.config.d_model}"
        )
    s, ft = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal or 1
    _, ph, pw = tc.patch_size
    sizes = {
        "height": (d.height, s * ph),
        "width": (d.width, s * pw),
        "ref_height": (d.ref_height or d.height, s * ph),
        "ref_width": (d.ref_width or d.width, s * pw),
    }
    for name, (size, mult) in sizes.items():
        if size % mult:
            raise WildActorError(f"data.{name}={size} must be a multiple of {mult} (VAE x patch)")
    if (d.num_frames - 1) % ft:
        raise WildActorError(f"data.num_frames={d.num_frames} must be 1 + a multiple of the VAE's {ft}")


def cast_frozen(module, device, dtype) -> None:
    """Move to ``device``; store in ``dtype`` except the module's declared fp32 islands (norms, RoPE, ...)."""
    import torch

    tensors = list(module.parameters()) + list(module.buffers())
    if any(t.device != torch.device(device) for t in tensors):
        module.to(device=device)
    if dtype == torch.float32:
        return
    keep = getattr(module, "_keep_in_fp32_modules", None) or []
    for name, sub in module.named_modules():
        if name and any(k in name.split(".") for k in keep):
            continue
        for p in sub.parameters(recurse=False):
            p.data = p.data.to(dtype)
        for bname, b in sub.named_buffers(recurse=False):
            if b.is_floating_point():
                setattr(sub, bname, b.to(dtype))


def save_inline_model(output_dir: Path, transformer, encoder, schedule: ScheduleConfig) -> None:
    """Write the seeded inline model as a diffusers folder (with a flow scheduler using the training shift),
    so `WildActorPipeline.from_pretrained(<output_dir>/model, lora=<checkpoint>/reference_lora.safetensors)`
    samples what was trained."""
    from diffusers import UniPCMultistepScheduler

    folder = output_dir / "model"
    if (folder / "transformer" / "config.json").is_file():
        return
    tmp = output_dir / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    transformer.save_pretrained(tmp / "transformer")
    encoder.vae.save_pretrained(tmp / "vae")
    encoder.text_encoder.save_pretrained(tmp / "text_encoder")
    encoder.tokenizer.save_pretrained(tmp / "tokenizer")
    UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=schedule.shift,
        num_train_timesteps=schedule.num_train_timesteps,
    ).save_pretrained(tmp / "scheduler")  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


# ============================================================================================== loss


def flow_matching_loss(
    model, encoder, batch: dict[str, Any], cfg: TrainConfig, device, null_text: Any = None
) -> Any:
    """Encode the batch (or read cached latents), noise it per sample, predict the velocity, weighted MSE.

    Noise, timestep and condition dropout of each sample are seeded by (seed, stream position), so they do
    not depend on which process or micro-batch the sample lands in. ``null_text`` (1, L, D): the empty
    prompt's embedding, used by ``schedule.text_dropout`` (encoded here when not given).
    """
    import torch

    from wildactor.data.dataset import seed_for
    from wildactor.diffusion.flow import flow_loss, model_timestep, noisy_latents, sample_timesteps

    sc = cfg.schedule
    if "video_latents" in batch:
        z0 = batch["video_latents"].to(device)  # (B, C, F, H', W')
        refs = batch["reference_latents"].to(device)  # (B, C, R, h', w')
        text = batch["text_embeddings"].to(device)  # (B, L, D)
    else:
        z0 = encoder.encode_video(batch["video"].to(device))
        refs = encoder.encode_references(batch["references"].to(device))
        text = encoder.encode_text(batch["prompt"])
    noise, t = [], []
    for position in batch["position"].tolist():
        g = torch.Generator().manual_seed(seed_for(cfg.seed, position, 3))
        t.append(sample_timesteps(1, g, sc.timestep_sampling, sc.logit_mean, sc.logit_std, sc.shift))
        noise.append(torch.randn(z0.shape[1:], generator=g))
    t = torch.cat(t).to(device)  # (B,)
    noise = torch.stack(noise).to(device)  # (B, C, F, H', W')
    zt = noisy_latents(z0, noise, t)
    types = batch["reference_types"] or None
    positions = batch["position"].tolist()
    if sc.text_dropout > 0:
        drop = torch.tensor(
            [_coin(seed_for(cfg.seed, p, 4), sc.text_dropout) for p in positions], device=device
        )
        if drop.any():
            if null_text is None:
                null_text = encoder.encode_text([""])
            text = torch.where(drop.view(-1, 1, 1), null_text.to(device, text.dtype), text)  # (B, L, D)
    if (
        sc.reference_dropout > 0
        and types
        and _coin(seed_for(cfg.seed, positions[0], 5), sc.reference_dropout)
    ):
        types = None  # one reference count per batch: the whole batch goes without
    pred = model(
        zt, model_timestep(t, sc.num_train_timesteps), text,
        reference_latents=refs if types else None, reference_types=types,
    ).sample  # fmt: skip
    weights = None
    if sc.loss_space == "raw_latent":
        from wildactor.diffusion.flow import raw_latent_channel_weights

        weights = raw_latent_channel_weights(encoder.vae.config.latents_std)
    return flow_loss(pred, z0, noise, t, sc.loss_weighting, weights)


def learning_rate(step: int, base: float, schedule: ScheduleConfig) -> float:
    """The rate of optimizer step ``step`` (0-based): linear warm-up, constant, then linear decay to 0 over the
    last ``decay_steps`` of ``schedule.max_steps`` (not of a --max-steps override: a run stopped early and
    resumed follows the same curve)."""
    rate = base
    if schedule.warmup_steps:
        rate *= min(1.0, (step + 1) / schedule.warmup_steps)
    if schedule.decay_steps:
        rate *= min(1.0, max(0.0, (schedule.max_steps - step) / schedule.decay_steps))
    return rate


def _coin(seed: int, p: float) -> bool:
    import torch

    return bool(torch.rand(1, generator=torch.Generator().manual_seed(seed)).item() < p)


def evaluation_loss(model, encoder, dataset, cfg: TrainConfig, positions: list[int], device="cpu") -> float:
    """Mean flow loss over fixed stream positions: fixed clips, references, noise and timesteps, so values
    are comparable between checkpoints of one run (an overfit check, or a validation curve)."""
    import torch

    from wildactor.data.dataset import collate

    was_training = model.training
    model.eval()
    with torch.no_grad():
        losses = [
            flow_matching_loss(model, encoder, collate([dataset[p]]), cfg, device).item() for p in positions
        ]
    model.train(was_training)
    return sum(losses) / len(losses)


# ============================================================================================== state I/O


TRANSFORMER_WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


def _full_options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(**{"full_state_dict": True, "cpu_offload": True, **kwargs})


def snapshot_training_state(model, optimizer, fsdp: bool, trainable: str) -> dict[str, Any]:
    """Full (unsharded, CPU) optimizer state keyed by parameter name, and the model weights when they are not
    simply the unwrapped module's. A collective under FSDP: every process must call it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    raw_optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
    snap: dict[str, Any] = {
        "optimizer": get_optimizer_state_dict(model, raw_optimizer, options=_full_options())
    }
    snap["model"] = (
        get_model_state_dict(model, options=_full_options()) if fsdp or trainable == "all" else None
    )
    return snap


def save_optimizer(state: dict[str, Any], path: Path) -> None:
    """Optimizer state without pickle: tensors to safetensors (``<param>::<slot>``), the rest to JSON metadata."""
    from safetensors.torch import save_file

    tensors, scalars = {}, {}
    for name, slots in state["state"].items():
        for slot, value in slots.items():
            if hasattr(value, "shape"):
                tensors[f"{name}::{slot}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{name}::{slot}"] = value
    meta = {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars)}
    save_file(tensors, str(path), metadata=meta)


def load_optimizer(model, optimizer, path: Path) -> None:
    from safetensors import safe_open
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    state: dict[str, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(json.loads(meta["scalars"]).items()):
        name, slot = key.rsplit("::", 1)
        state.setdefault(name, {})[slot] = value
    groups = json.loads(meta["param_groups"])
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    # strict=False: a parameter that never received a gradient (the last block's reference queries feed
    # nothing) has no optimizer state, in the saved run and in this one alike.
    set_optimizer_state_dict(
        model,
        optimizer,
        {"state": state, "param_groups": groups},
        options=_full_options(cpu_offload=False, strict=False),
    )


def save_checkpoint(
    output_dir: Path,
    step: int,
    model,
    snapshot: dict[str, Any],
    ema,
    trainable_names,
    state: dict,
    keep_last: int,
) -> Path:
    """Write checkpoints/step-XXXXXXXX atomically (a temporary folder renamed into place); prune old ones.

    ``model`` is the unwrapped transformer; ``snapshot`` comes from `snapshot_training_state`.
    """
    import torch
    from safetensors.torch import save_file

    from wildactor.model.transformer import LORA_PREFIX

    root = output_dir / "checkpoints"
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    full = snapshot["model"]
    if full is None:
        model.save_reference_lora(tmp / "reference_lora.safetensors")
    else:  # gathered weights (FSDP shards them): same file format as save_reference_lora
        lora = {k: v.contiguous() for k, v in full.items() if k.startswith(LORA_PREFIX)}
        save_file(lora, str(tmp / "reference_lora.safetensors"), metadata=model._lora_metadata())
        (tmp / "reference_lora.json").write_text(json.dumps(model._lora_metadata(), indent=2) + "\n")
    if (
        state["trainable"] == "all"
    ):  # the checkpoint is a complete pipeline folder: trained transformer + links
        (tmp / "transformer").mkdir()
        model.save_config(tmp / "transformer")
        save_file({k: v.contiguous() for k, v in full.items()}, str(tmp / TRANSFORMER_WEIGHTS))
        for name in ("vae", "text_encoder", "tokenizer", "scheduler"):
            if state["base_model"] is None:  # inline model: <run>/model, linked relatively (the run can move)
                if (output_dir / "model" / name).is_dir():
                    (tmp / name).symlink_to(Path("..") / ".." / "model" / name)
            elif (Path(state["base_model"]) / name).is_dir():
                (tmp / name).symlink_to(Path(state["base_model"]).resolve() / name)
    save_optimizer(snapshot["optimizer"], tmp / "optimizer.safetensors")
    if ema is not None:
        save_file(
            {n: e.detach().cpu().contiguous() for n, e in zip(trainable_names, ema)},
            str(tmp / "ema.safetensors"),
            # LoRA-only runs: the EMA file is itself a reference LoRA (`load_reference_lora` reads it).
            metadata=model._lora_metadata() if state["trainable"] == "lora" else None,
        )
    rng = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["torch_cuda"] = torch.cuda.get_rng_state()
    save_file(rng, str(tmp / "rng.safetensors"))
    (tmp / "trainer_state.json").write_text(json.dumps({**state, "step": step}, indent=2) + "\n")
    if final.exists():
        trash = root / f".old-step-{step:08d}"
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        shutil.rmtree(trash)
    os.replace(tmp, final)
    for old in sorted(root.glob("step-*"))[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint (temporary folders of an interrupted save are ignored)."""
    done = [
        p for p in sorted((output_dir / "checkpoints").glob("step-*")) if (p / "trainer_state.json").is_file()
    ]
    return done[-1] if done else None


def load_checkpoint(path: Path, model, optimizer, ema, trainable_names) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    state = json.loads((path / "trainer_state.json").read_text())
    if state["trainable"] == "all":
        model.load_state_dict(load_file(str(path / TRANSFORMER_WEIGHTS)))
    else:
        model.load_reference_lora(path / "reference_lora.safetensors")
    load_optimizer(model, optimizer, path / "optimizer.safetensors")
    if ema is not None:
        saved = load_file(str(path / "ema.safetensors"))
        if set(saved) != set(trainable_names):
            raise WildActorError(f"{path}: EMA weights do not match the trainable parameters")
        for name, e in zip(trainable_names, ema):
            e.copy_(saved[name])
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng["torch_cpu"])
    if "torch_cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["torch_cuda"])
    return state


# ============================================================================================== the run


def train(
    cfg: TrainConfig,
    resume: bool = False,
    max_steps: int | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    show_progress: bool = True,
    cpu: bool = False,
) -> TrainResult:
    """Run (or continue) training up to ``max_steps`` optimizer steps; returns the loss trace of this call.

    Runs on CUDA when available unless ``cpu`` (bitwise reproducibility is a CPU property)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, DistributedType, set_seed
    from tqdm.auto import tqdm

    out = Path(output_dir or cfg.output_dir)
    max_steps = max_steps or cfg.schedule.max_steps
    sc, oc = cfg.schedule, cfg.optimizer
    accelerator = Accelerator(
        cpu=cpu or not torch.cuda.is_available(),
        mixed_precision=cfg.precision.mixed_precision,
        log_with="tensorboard" if cfg.logging.tensorboard else None,
        project_dir=str(out),
        # Some reference-LoRA weights can get no gradient (e.g. the last block's reference queries feed nothing).
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    device = accelerator.device
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)

    if accelerator.is_main_process:  # leftovers of a save that was interrupted
        for stale in list(out.glob("checkpoints/.tmp-step-*")) + list(out.glob("checkpoints/.old-step-*")):
            shutil.rmtree(stale, ignore_errors=True)
    if not resume and latest_checkpoint(out) is not None:
        raise WildActorError(f"{out} already holds checkpoints: pass --resume, or pick another --output-dir")

    # 1. data first: a bad manifest stops the run before any weight is loaded (the main process checks files)
    if accelerator.is_main_process:
        manifest, records = load_records(cfg, out)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        manifest, records = load_records(cfg, out, check_files=False)
    check_sampler_coverage(cfg, records)

    # 2. models: frozen parts in frozen_dtype, trainable weights in fp32
    set_seed(cfg.seed)
    transformer, encoder, encoder_id = build_models(cfg, out)
    if cfg.model.pretrained is None and accelerator.is_main_process:
        save_inline_model(out, transformer, encoder, cfg.schedule)
    frozen_dtype = getattr(torch, cfg.precision.frozen_dtype)
    for module in (encoder.vae, encoder.text_encoder, transformer):
        cast_frozen(module, device, frozen_dtype)
    if oc.trainable == "lora":
        transformer.enable_reference_training()
    else:
        transformer.requires_grad_(True)
    if cfg.model.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    named = [(n, p) for n, p in transformer.named_parameters() if p.requires_grad]
    for _, p in named:
        p.data = p.data.float()
    trainable_names, trainable = [n for n, _ in named], [p for _, p in named]

    dataset = build_dataset(cfg, manifest, records, encoder, encoder_id, accelerator, show_progress)
    null_text = encoder.encode_text([""]).cpu() if cfg.schedule.text_dropout > 0 else None  # (1, L, D)
    if cfg.data.cache_dir is not None:  # training reads cached latents: free the encoders' device memory
        encoder.to(device="cpu")

    # 3. optimizer, EMA, and the state to resume from
    optimizer = torch.optim.AdamW(
        trainable, lr=oc.lr, betas=oc.betas, eps=oc.eps, weight_decay=oc.weight_decay
    )
    ema = [p.detach().clone() for p in trainable] if cfg.ema.decay is not None else None
    start_step = 0
    if resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            raise WildActorError(f"--resume: no checkpoint in {out / 'checkpoints'}")
        saved = load_checkpoint(ckpt, transformer, optimizer, ema, trainable_names)
        start_step = int(saved["step"])
        if (
            saved.get("global_batch")
            != cfg.data.batch_size * sc.gradient_accumulation_steps * accelerator.num_processes
        ):
            accelerator.print(
                "warning: the global batch differs from the checkpoint's; the data order changes"
            )
    if start_step >= max_steps:
        accelerator.print(f"already at step {start_step} >= max_steps {max_steps}; nothing to do")
        return TrainResult([], start_step, start_step, out, latest_checkpoint(out))

    metrics_path = out / "metrics.jsonl"
    if accelerator.is_main_process and metrics_path.is_file():  # drop steps logged after the checkpoint
        rows = [
            line for line in metrics_path.read_text().splitlines() if json.loads(line)["step"] <= start_step
        ]
        metrics_path.write_text("".join(row + "\n" for row in rows))

    model, optimizer = accelerator.prepare(transformer, optimizer)
    fsdp = accelerator.distributed_type == DistributedType.FSDP

    # 4. the data stream, from the resume point
    from wildactor.data.dataset import PositionSampler, collate

    positions = PositionSampler(
        cfg.data.batch_size, sc.gradient_accumulation_steps, accelerator.num_processes,
        accelerator.process_index, start_step, max_steps,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.data.batch_size, sampler=positions, collate_fn=collate,
        num_workers=cfg.data.num_workers, persistent_workers=False,
    )  # fmt: skip
    batches: Iterator[dict[str, Any]] = iter(loader)

    if cfg.logging.tensorboard:
        accelerator.init_trackers("wildactor-train", config={"seed": cfg.seed, "max_steps": max_steps})
    global_batch = cfg.data.batch_size * sc.gradient_accumulation_steps * accelerator.num_processes
    state = {
        "seed": cfg.seed,
        "trainable": oc.trainable,
        "global_batch": global_batch,
        "config": cfg.to_dict(),
        "base_model": cfg.model.pretrained,
    }
    losses: list[float] = []
    checkpoint = None
    bar = tqdm(range(start_step, max_steps), initial=start_step, total=max_steps, desc="train",
               disable=not (show_progress and accelerator.is_main_process))  # fmt: skip

    # 5. the loop: accumulate micro-batches, clip, warm-up LR, step, EMA, log, checkpoint
    for step in bar:
        t0 = time.perf_counter()
        step_loss = torch.zeros((), device=device)
        for micro in range(sc.gradient_accumulation_steps):
            batch = next(batches)
            sync = micro == sc.gradient_accumulation_steps - 1
            with accelerator.no_sync(model) if not sync else contextlib.nullcontext():
                loss = flow_matching_loss(model, encoder, batch, cfg, device, null_text)
                accelerator.backward(loss / sc.gradient_accumulation_steps)
            step_loss += loss.detach() / sc.gradient_accumulation_steps
        if oc.max_grad_norm is not None:
            accelerator.clip_grad_norm_(trainable, oc.max_grad_norm)
        lr = learning_rate(step, oc.lr, sc)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in trainable], 1.0 - cfg.ema.decay)

        mean_loss = accelerator.reduce(step_loss, reduction="mean").item()
        if not math.isfinite(mean_loss):
            raise WildActorError(
                f"loss is {mean_loss} at step {step + 1}; lower optimizer.lr or check the data"
            )
        losses.append(mean_loss)
        done = step + 1
        if accelerator.is_main_process:
            bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
            with metrics_path.open("a") as f:
                f.write(
                    json.dumps(
                        {"step": done, "loss": mean_loss, "lr": lr, "step_s": time.perf_counter() - t0}
                    )
                    + "\n"
                )
        if cfg.logging.tensorboard and (done % cfg.logging.every_steps == 0 or done == max_steps):
            step_s = time.perf_counter() - t0
            accelerator.log(
                {"train/loss": mean_loss, "train/lr": lr, "train/samples_per_s": global_batch / step_s},
                step=done,
            )
        if done % cfg.checkpointing.every_steps == 0 or done == max_steps:
            snapshot = snapshot_training_state(model, optimizer, fsdp, oc.trainable)  # collective under FSDP
            if accelerator.is_main_process:
                checkpoint = save_checkpoint(
                    out, done, accelerator.unwrap_model(model), snapshot, ema, trainable_names, state,
                    cfg.checkpointing.keep_last,
                )  # fmt: skip
            accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(losses, start_step, max_steps, out, checkpoint, accelerator.unwrap_model(model))


# ============================================================================================== CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML training config (see configs/)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in the output dir"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="override schedule.max_steps")
    parser.add_argument("--output-dir", default=None, help="override output_dir")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set sampler.kind=random (repeatable; VALUE is YAML)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even where CUDA is available")


def main(args: argparse.Namespace) -> int:
    cfg = TrainConfig.from_yaml(args.config, args.set)
    if args.max_steps is not None and args.max_steps < 1:
        raise WildActorError("--max-steps must be >= 1")
    result = train(cfg, resume=args.resume, max_steps=args.max_steps, output_dir=args.output_dir,
                   show_progress=not args.no_progress, cpu=args.cpu)  # fmt: skip
    if int(os.environ.get("RANK", "0")) != 0:  # one summary per launch, from the main process
        return 0
    if result.losses:
        print(
            f"steps {result.start_step}->{result.final_step}: loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}"
        )
    if result.checkpoint is not None:
        print(f"checkpoint: {result.checkpoint}")
    return 0
