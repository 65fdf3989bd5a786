"""Fit a tiny `AutoencoderKLWan` (the real diffusers class, at toy width) on a world's clips and references.

The codec keeps Wan's structure: causal 3D convolutions, the first frame encoded alone and the rest in chunks
of four, 4x temporal compression (9 frames -> 3 latent frames; a reference image -> 1 latent frame). Training is
reconstruction (L1 + MSE on pixels in [-1, 1]) plus a small KL term, on random spatial crops (convolutions do
not care where a window lies, and a 32x32 crop costs a quarter of a 64x64 frame). Each step sees a batch of
clip crops and a batch of single reference images (the pipeline encodes references as one-frame videos).

`train_wan_vae` is resumable: a checkpoint folder holds the model (diffusers `save_pretrained`), the AdamW
state as safetensors and the step; the final folder gets per-channel `latents_mean` / `latents_std` measured on
training clips, which the trainer and the pipeline use to normalise latents.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from wildactor.errors import WildActorError

OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "training_state.json"
_EXTENDABLE = (
    "steps",
    "checkpoint_every",
)  # a resumed run may change these (the cosine stretches to the new end)


@dataclass(frozen=True)
class WanVAEFitConfig:
    """Architecture (AutoencoderKLWan kwargs) and training settings of `wildactor world fit-vae --kind wan`."""

    base_dim: int = 16
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 2)  # two downsamples: 4x spatial
    num_res_blocks: int = 1
    temperal_downsample: tuple[bool, ...] = (True, True)  # both downsamples also halve time: 4x, as Wan
    steps: int = 3000
    clip_batch: int = 4
    image_batch: int = 8
    clip_frames: int = 5  # 1 + 4k frames (the first alone, then one chunk of four)
    crop: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100
    kl_weight: float = 1e-6
    max_grad_norm: float = 1.0
    checkpoint_every: int = 100
    seed: int = 0
    every: int = 1  # use every k-th training clip

    def __post_init__(self) -> None:
        if len(self.temperal_downsample) != len(self.dim_mult) - 1:
            raise ValueError("temperal_downsample needs one entry per downsample (len(dim_mult) - 1)")
        if (self.clip_frames - 1) % 4 or self.clip_frames < 1:
            raise ValueError(f"clip_frames must be 1 + 4k, got {self.clip_frames}")
        factor = 2 ** (len(self.dim_mult) - 1)
        if self.crop % factor:
            raise ValueError(f"crop must be a multiple of the spatial factor {factor}, got {self.crop}")
        for name in ("steps", "clip_batch", "image_batch", "checkpoint_every", "every", "base_dim", "z_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.kl_weight < 0:
            raise ValueError("lr must be > 0 and kl_weight >= 0")

    @property
    def scale_factor_spatial(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def scale_factor_temporal(self) -> int:
        return 2 ** sum(self.temperal_downsample)


def build_wan_vae(cfg: WanVAEFitConfig, latents_mean=None, latents_std=None):
    """A randomly initialised `AutoencoderKLWan` of the configured toy size."""
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(
        base_dim=cfg.base_dim,
        z_dim=cfg.z_dim,
        dim_mult=list(cfg.dim_mult),
        num_res_blocks=cfg.num_res_blocks,
        attn_scales=[],
        temperal_downsample=list(cfg.temperal_downsample),
        latents_mean=list(latents_mean) if latents_mean is not None else [0.0] * cfg.z_dim,
        latents_std=list(latents_std) if latents_std is not None else [1.0] * cfg.z_dim,
        scale_factor_spatial=cfg.scale_factor_spatial,
        scale_factor_temporal=cfg.scale_factor_temporal,
    )


@dataclass
class WorldPixels:
    """A world split's clips and reference images as uint8 arrays (converted to [-1, 1] per batch)."""

    clips: np.ndarray  # (N, T, H, W, 3) uint8
    images: np.ndarray  # (M, S, S, 3) uint8 (references, resized to the clip size)
    actors: list[str] = field(default_factory=list)  # actor id of each clip


def load_world_pixels(
    data: Path, split: str = "train", every: int = 1, limit: int | None = None
) -> WorldPixels:
    """Clips and references of `manifest_<split>.jsonl` in a folder written by `wildactor world make`."""
    from PIL import Image

    from wildactor.media import read_mp4

    manifest = Path(data) / f"manifest_{split}.jsonl"
    if not manifest.is_file():
        raise WildActorError(f"{manifest} not found: run `wildactor world make --out {data}` first")
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()][::every]
    if limit is not None:
        records = records[:limit]
    if not records:
        raise WildActorError(f"{manifest} lists no clips")
    clips, images, actors = [], [], []
    for rec in records:
        clip = read_mp4(Path(data) / rec["video"])
        clips.append(clip)
        actors.append(rec["actor_id"])
        size = clip.shape[1:3]
        for ref in rec["refs"]:
            image = Image.open(Path(data) / ref["path"]).convert("RGB")
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BICUBIC)
            images.append(np.asarray(image))
    lengths = {c.shape for c in clips}
    if len(lengths) != 1:
        raise WildActorError(f"clips of {manifest} differ in shape: {sorted(lengths)}")
    return WorldPixels(np.stack(clips), np.stack(images), actors)


def to_pixels(x: np.ndarray) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def from_pixels(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, T, H, W) in [-1, 1] -> uint8 (B, T, H, W, 3)."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).numpy()


def _batch(
    pixels: WorldPixels, cfg: WanVAEFitConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops: clips (B, 3, clip_frames, c, c) and reference images (B', 3, 1, c, c)."""
    n, t, h, w, _ = pixels.clips.shape
    c = cfg.crop
    clips = []
    for i in rng.integers(0, n, cfg.clip_batch):
        t0 = int(rng.integers(0, t - cfg.clip_frames + 1))
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        clips.append(pixels.clips[i, t0 : t0 + cfg.clip_frames, y : y + c, x : x + c])
    images = []
    for i in rng.integers(0, len(pixels.images), cfg.image_batch):
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        images.append(pixels.images[i, None, y : y + c, x : x + c])
    return to_pixels(np.stack(clips)), to_pixels(np.stack(images))


def reconstruction_loss(vae, x: torch.Tensor, kl_weight: float, generator=None) -> tuple[torch.Tensor, float]:
    """L1 + MSE of the decoded posterior sample, plus kl_weight * KL per latent element; and the batch PSNR."""
    posterior = vae.encode(x).latent_dist
    z = posterior.sample(generator=generator)
    y = vae.decode(z).sample
    mse = F.mse_loss(y, x)
    loss = F.l1_loss(y, x) + mse + kl_weight * posterior.kl().mean() / z[0].numel()
    psnr = float(10 * torch.log10(4.0 / mse.detach().clamp_min(1e-10)))  # peak-to-peak 2 in [-1, 1]
    return loss, psnr


def _lr(step: int, cfg: WanVAEFitConfig) -> float:
    """Linear warm-up, then cosine to a tenth of the base rate."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.45 * (1 + np.cos(np.pi * min(p, 1.0))))


def save_adamw(optimizer: torch.optim.Optimizer, names: list[str], path: Path) -> None:
    """AdamW state as safetensors (``<param>::<slot>``) with hyper-parameters in the metadata; no pickle."""
    from safetensors.torch import save_file

    sd = optimizer.state_dict()
    tensors = {}
    for idx, slots in sd["state"].items():
        for slot, value in slots.items():
            tensors[f"{names[idx]}::{slot}"] = torch.as_tensor(value).detach().cpu().contiguous()
    groups = [{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]]
    save_file(tensors, str(path), metadata={"param_groups": json.dumps(groups)})


def load_adamw(optimizer: torch.optim.Optimizer, names: list[str], path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        groups = json.loads(f.metadata()["param_groups"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    index = {name: i for i, name in enumerate(names)}
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        name, slot = key.rsplit("::", 1)
        state.setdefault(index[name], {})[slot] = value
    current = optimizer.state_dict()["param_groups"]
    for g, saved in zip(current, groups):
        g.update({k: tuple(v) if k == "betas" else v for k, v in saved.items()})
    optimizer.load_state_dict({"state": state, "param_groups": current})


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted((Path(out) / "checkpoints").glob("step-*"))
    return found[-1] if found else None


def _save_checkpoint(
    out: Path, vae, optimizer, names, step: int, cfg: WanVAEFitConfig, log: list, rngs: dict[str, Any]
) -> Path:
    folder = Path(out) / "checkpoints" / f"step-{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(folder)
    save_adamw(optimizer, names, folder / OPTIMIZER_FILE)
    state = {"step": step, "config": asdict(cfg), "log": log, "rng": rngs}
    (folder / STATE_FILE).write_text(json.dumps(state) + "\n")
    for old in sorted((Path(out) / "checkpoints").glob("step-*"))[:-2]:  # keep the last two
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    return folder


@torch.no_grad()
def latent_statistics(vae, clips: np.ndarray, batch: int = 8) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of posterior means over clips (B, T, H, W, 3) uint8."""
    zs = [vae.encode(to_pixels(clips[i : i + batch])).latent_dist.mode() for i in range(0, len(clips), batch)]
    z = torch.cat(zs).transpose(0, 1).reshape(zs[0].shape[1], -1)  # (C, B*T'*H'*W')
    return [round(float(v), 6) for v in z.mean(1)], [round(float(v), 6) for v in z.std(1)]


def train_wan_vae(
    cfg: WanVAEFitConfig, pixels: WorldPixels, out: Path, progress: bool = True, stats_clips: int = 256
) -> dict[str, Any]:
    """Train (or resume from out/checkpoints) and write the final codec to `out` (config.json + weights,
    latents normalised by training-clip statistics). Returns the training log summary."""
    from diffusers import AutoencoderKLWan

    out = Path(out)
    resume = latest_checkpoint(out)
    torch.manual_seed(cfg.seed)
    if resume is not None:
        state = json.loads((resume / STATE_FILE).read_text())
        same = {k: v for k, v in json.loads(json.dumps(asdict(cfg))).items() if k not in _EXTENDABLE}
        if {k: v for k, v in state["config"].items() if k not in _EXTENDABLE} != same:
            raise WildActorError(
                f"{resume} was trained with other settings; use another --out or the same ones"
            )
        vae = AutoencoderKLWan.from_pretrained(resume)
        start, log, rng_state = int(state["step"]), list(state["log"]), state.get("rng")
    else:
        vae, start, log, rng_state = build_wan_vae(cfg), 0, [], None
    vae.train()
    names = [n for n, _ in vae.named_parameters()]
    optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    if resume is not None:
        load_adamw(optimizer, names, resume / OPTIMIZER_FILE)
    # crops (numpy) and posterior samples (torch): a resumed run continues both streams where they stopped
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if rng_state is not None:
        rng.bit_generator.state = rng_state["numpy"]
        gen.set_state(torch.tensor(rng_state["torch"], dtype=torch.uint8))
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc="fit-vae")
    window: list[tuple[float, float, float]] = []
    t0 = time.perf_counter() - (log[-1]["seconds"] if log else 0.0)  # seconds count across resumes
    for step in bar:
        for g in optimizer.param_groups:
            g["lr"] = _lr(step, cfg)
        clips, images = _batch(pixels, cfg, rng)
        loss_c, psnr_c = reconstruction_loss(vae, clips, cfg.kl_weight, gen)
        loss_i, psnr_i = reconstruction_loss(vae, images, cfg.kl_weight, gen)
        loss = loss_c + 0.5 * loss_i
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.max_grad_norm)
        optimizer.step()
        window.append((loss.item(), psnr_c, psnr_i))
        bar.set_postfix(loss=f"{loss.item():.4f}", psnr_clip=f"{psnr_c:.1f}", psnr_ref=f"{psnr_i:.1f}")
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            m = np.mean(window, axis=0)
            log.append({"step": done, "loss": round(float(m[0]), 5), "psnr_clip": round(float(m[1]), 2),
                        "psnr_ref": round(float(m[2]), 2), "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
            window = []
            rngs = {"numpy": rng.bit_generator.state, "torch": gen.get_state().tolist()}
            _save_checkpoint(out, vae, optimizer, names, done, cfg, log, rngs)
    vae.eval()
    mean, std = latent_statistics(vae, pixels.clips[:stats_clips])
    final = build_wan_vae(cfg, mean, std)
    final.load_state_dict(vae.state_dict())
    final.save_pretrained(out)
    summary = {"config": asdict(cfg), "log": log, "parameters": sum(p.numel() for p in final.parameters())}
    (out / "fit_vae.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
