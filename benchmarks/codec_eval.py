"""A video codec (VAE folder: the PCA PixelShuffleVAE or a fitted AutoencoderKLWan) on held-out ActorWorld clips.

Per held-out clip (actors never in the codec's training split): encode -> decode with the posterior mean, then
PSNR (over all pixels of the clip), SSIM (grey frames, Gaussian window; the copy-paste metric's SSIM) and the
probes' attribute accuracy on the reconstruction and on the real frames (body consistency against the actor's
true attributes; the issue asks for >= 0.97 of the real frames' accuracy). Reference images (one-frame videos)
get PSNR too. Means with 95 % bootstrap CIs over clips.

    python benchmarks/codec_eval.py --vae configs/actorworld-tiny-vae --data data/actorworld --clips 64 \
        --out benchmarks/results/codec_pca_tiny.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from common import machine_info
from wildactor.bench.metrics.actorworld import build_probe_backend
from wildactor.bench.metrics.body import body_consistency_actorworld
from wildactor.bench.metrics.copypaste import ssim
from wildactor.bench.report import bootstrap_ci
from wildactor.diffusion.encode import load_vae
from wildactor.world import Actor
from wildactor.world.vae_training import from_pixels, load_world_pixels, to_pixels


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays (peak 255)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def clip_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over frames of two (T, H, W, 3) uint8 clips, on grey frames."""
    grey = np.array([0.299, 0.587, 0.114])
    return float(np.mean([ssim(fa @ grey, fb @ grey) for fa, fb in zip(a, b)]))


@torch.no_grad()
def round_trip(vae, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """uint8 (B, T, H, W, 3) -> decoded uint8 of the same shape, and the latent shape."""
    z = vae.encode(to_pixels(x)).latent_dist.mode()
    return from_pixels(vae.decode(z).sample), tuple(z.shape)


def summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "ci95": bootstrap_ci(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", type=Path, required=True, help="VAE folder (config.json + weights)")
    parser.add_argument("--data", type=Path, required=True, help="folder written by `wildactor world make`")
    parser.add_argument("--clips", type=int, default=64, help="held-out clips (evenly spread over the split)")
    parser.add_argument("--refs", type=int, default=128, help="held-out reference images")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    vae = load_vae(args.vae).eval()
    probes = build_probe_backend()
    every = max(1, len((args.data / "manifest_heldout.jsonl").read_text().splitlines()) // args.clips)
    pixels = load_world_pixels(args.data, "heldout", every=every, limit=args.clips)
    rows = []
    latent_shape = None
    for clip, actor in zip(pixels.clips, pixels.actors):
        recon, latent_shape = round_trip(vae, clip[None])
        recon = recon[0]
        truth = Actor.from_id(actor).attributes()
        rows.append(
            {
                "actor": actor,
                "psnr": psnr(recon, clip),
                "ssim": clip_ssim(recon, clip),
                "probe_accuracy_real": body_consistency_actorworld(clip, truth, probes).value,
                "probe_accuracy_recon": body_consistency_actorworld(recon, truth, probes).value,
            }
        )
    step = max(1, len(pixels.images) // args.refs)
    images = pixels.images[::step][: args.refs]
    ref_psnr = [psnr(round_trip(vae, im[None, None])[0][0, 0], im) for im in images]
    real = np.mean([r["probe_accuracy_real"] for r in rows])
    recon = np.mean([r["probe_accuracy_recon"] for r in rows])
    t, h, w = pixels.clips.shape[1:4]
    result = {
        "benchmark": "codec_actorworld",
        "command": (
            f"python benchmarks/codec_eval.py --vae {args.vae} --data {args.data} --clips {args.clips} "
            f"--refs {args.refs} --threads {args.threads}"
        ),
        "machine": machine_info(args.threads),
        "vae": str(args.vae),
        "vae_class": type(vae).__name__,
        "parameters": sum(p.numel() for p in vae.parameters()),
        "clip_shape": [t, h, w],
        "latent_shape": list(latent_shape[1:]),
        "latent_values_per_pixel_value": float(np.prod(latent_shape[1:]) / (3 * t * h * w)),
        "tokens_per_clip_patch_1x2x2": int(latent_shape[2] * (latent_shape[3] // 2) * (latent_shape[4] // 2)),
        "heldout_clips": len(rows),
        "heldout_reference_images": len(ref_psnr),
        "psnr_db": summary([r["psnr"] for r in rows]),
        "ssim": summary([r["ssim"] for r in rows]),
        "reference_psnr_db": summary(ref_psnr),
        "probe_accuracy_real": summary([r["probe_accuracy_real"] for r in rows]),
        "probe_accuracy_recon": summary([r["probe_accuracy_recon"] for r in rows]),
        "probe_accuracy_ratio": float(recon / real),
        "seconds": round(time.perf_counter() - start, 1),
        "per_clip": rows,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "per_clip"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
