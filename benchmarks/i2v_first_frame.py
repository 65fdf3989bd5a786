"""Image-to-video on the embedded default model: how well the first decoded frame reconstructs the image.

The first latent frame is the encoded image, kept clean; the first decoded frame is the VAE's reconstruction of
it. Measured per image as PSNR (dB) of frame 0 against the image as the pipeline fitted it (cover, centre crop),
next to the PSNR of the VAE's own encode-decode round trip of that image (the ceiling: the shipped model's
8-channel pixel codec is lossy) and, for contrast, frame 1 against the same image.

    python benchmarks/i2v_first_frame.py --out benchmarks/results/i2v_first_frame_default.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import machine_info


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    from wildactor.default_model import load_default_model
    from wildactor.media import fit_image
    from wildactor.pipeline import load_rgb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = load_default_model()
    pipe, d = model.pipeline, model.defaults
    pipe.set_progress_bar_config(disable=True)
    width, height = d["size"]
    images = {ref.region + ":" + Path(str(ref.image)).name: ref.image for ref in model.example_references}
    try:  # a real photograph, if scikit-image (a test dependency) is installed
        from skimage import data

        images["skimage:astronaut"] = data.astronaut()
    except ImportError:
        pass
    rows = []
    for name, image in images.items():
        fitted = np.asarray(fit_image(load_rgb(image), width, height, "cover"))
        out = pipe(
            model.example_prompts[0], model.example_references, image=image, height=height, width=width,
            num_frames=d["frames"], num_inference_steps=d["steps"], guidance_scale=d["guidance_scale"],
            reference_guidance_scale=d.get("reference_guidance_scale"), seed=args.seed,
        )  # fmt: skip
        frames = out.frames[0]
        decoded = pipe.decode_latents(pipe.encode_first_frame(fitted, height, width))[0, :, 0]  # (3, H, W)
        round_trip = ((decoded + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        rows.append(
            {
                "image": name,
                "psnr_frame0_db": psnr(frames[0], fitted),
                "psnr_vae_round_trip_db": psnr(round_trip, fitted),
                "frame0_equals_vae_round_trip": bool(np.array_equal(frames[0], round_trip)),
                "psnr_frame1_db": psnr(frames[1], fitted),
            }
        )
        print(rows[-1])
    result = {
        "benchmark": "i2v_first_frame",
        "command": "python benchmarks/i2v_first_frame.py",
        "machine": machine_info(),
        "model": model.description,
        "settings": {"size": [width, height], "frames": d["frames"], "steps": d["steps"], "seed": args.seed},
        "results": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
