"""Training configuration: frozen dataclasses that YAML files map onto 1:1, checked on construction."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError


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
    # How references are fitted into (ref_height, ref_width): "pad" (white padding, proportions kept; the shipped
    # model) or "stretch" (the official release). Generation must use the same (`--reference-fit`).
    reference_fit: str = "pad"
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
        if self.reference_fit not in ("pad", "stretch"):
            raise ValueError(f"data.reference_fit must be 'pad' or 'stretch', got {self.reference_fit!r}")


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
    # without references). The paper's recipe leaves both at 0; reference_dropout 1 trains a reference-free base.
    text_dropout: float = 0.0
    reference_dropout: float = 0.0
    # Image-to-video as Wan2.2 TI2V trains it: per sample with this probability, the first latent frame stays
    # clean (timestep 0 on its tokens) and is left out of the loss, so one model serves `--image` and text alone.
    first_frame_probability: float = 0.0

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
        if not 0.0 <= self.text_dropout < 1.0:
            raise ValueError("schedule.text_dropout must be in [0, 1)")
        if not 0.0 <= self.reference_dropout <= 1.0:  # 1: a text(-and-image)-to-video base without references
            raise ValueError("schedule.reference_dropout must be in [0, 1]")
        if not 0.0 <= self.first_frame_probability <= 1.0:
            raise ValueError("schedule.first_frame_probability must be in [0, 1]")


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
        if self.optimizer.trainable == "lora" and self.schedule.reference_dropout > 0:
            # Without references the reference LoRA is unused (the model is the frozen base, bitwise), so a
            # dropped batch has nothing to learn from, and reference guidance already has its branch: the base.
            raise ValueError(
                "schedule.reference_dropout must be 0 with optimizer.trainable lora: a batch without references "
                "does not touch the reference LoRA (the no-reference branch is the frozen base itself)"
            )

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
        loader = _yaml_loader()
        try:
            data = yaml.load(path.read_text(), Loader=loader) or {}
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
                value = yaml.load(raw, Loader=loader)
                # YAML 1.1 reads no/yes/on/off as booleans: `mixed_precision=no` means "no"
                if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
                    value = raw.strip()
                node[leaf] = value
            return cls.from_dict(data)
        except (ValueError, TypeError, yaml.YAMLError) as exc:
            raise WildActorError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def _yaml_loader():
    """PyYAML's safe loader, reading ``5e-4`` and ``1e3`` as numbers (YAML 1.2 does; PyYAML's 1.1 resolver wants a
    dot, ``5.0e-4``, and would hand the optimizer the string "5e-4")."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader


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
