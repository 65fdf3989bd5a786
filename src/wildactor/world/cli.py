"""`wildactor world make | train-probes | eval-probes | render | fit-vae | fit-tokenizer`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wildactor.errors import WildActorError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wildactor.world.motions import MOTION_KINDS
    from wildactor.world.scenes import SCENE_KINDS

    sub = parser.add_subparsers(dest="world_command", metavar="SUBCOMMAND", required=True)

    mk = sub.add_parser("make", help="write clips + references + manifest (Actor-18M schema)")
    mk.add_argument("--actors", type=int, required=True, help="number of actors")
    mk.add_argument("--clips-per-actor", type=int, required=True, help="clips rendered per actor")
    mk.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    mk.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    mk.add_argument("--first-actor", type=int, default=0, help="index of the first actor id")
    mk.add_argument("--frames", type=int, default=17, help="frames per clip (1 + 4k suits a Wan VAE)")
    mk.add_argument("--size", type=int, default=64, help="clip height and width in pixels (even)")
    mk.add_argument("--fps", type=int, default=8, help="frame rate of the MP4s (default 8)")
    mk.add_argument("--ref-size", type=int, default=64, help="reference image size in pixels")
    mk.add_argument(
        "--frontal-bias",
        type=float,
        nargs=3,
        metavar=("F", "S", "B"),
        default=None,
        help="view probabilities of self-crops in percent or fractions (default: the paper's 62.8 36.6 0.6)",
    )
    mk.add_argument(
        "--heldout-fraction",
        type=float,
        default=0.1,
        help="share of actors kept out of training (default 0.1)",
    )
    mk.add_argument("--attr-aug", type=int, default=1, help="attribute-augmented references per clip")
    mk.add_argument("--no-three-view", action="store_true", help="skip the canonical three-view sheet")
    mk.add_argument(
        "--view-aug-scene",
        choices=("other", "clip"),
        default="other",
        help="render View-Aug references in a scene of another kind (default) or in the clip's own scene",
    )
    mk.add_argument(
        "--prompts",
        choices=("described", "person"),
        default="described",
        help="described: prompts name the actor's attributes; person: scene and motion only",
    )
    mk.add_argument("--quiet", action="store_true", help="no progress bar")

    tp = sub.add_parser("train-probes", help="train the attribute / view / scene / motion probes on renders")
    tp.add_argument(
        "--out", type=Path, default=None, help="folder for weights (default: the package's assets)"
    )
    tp.add_argument("--train-frames", type=int, default=None)
    tp.add_argument(
        "--eval-frames", type=int, default=None, help="held-out frames behind the card's accuracy"
    )
    tp.add_argument("--frame-epochs", type=int, default=None)
    tp.add_argument("--train-clips", type=int, default=None)
    tp.add_argument("--threads", type=int, default=1)
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--lr", type=float, default=None)
    tp.add_argument(
        "--init", type=Path, default=None, help="continue training these probes (use a new --seed)"
    )

    ev = sub.add_parser("eval-probes", help="accuracy of trained probes on a fresh held-out render set")
    ev.add_argument("--probes", type=Path, default=None, help="probe folder (default: shipped weights)")
    ev.add_argument("--frames", type=int, default=1000)
    ev.add_argument("--clips", type=int, default=120)
    ev.add_argument("--seed", type=int, default=12345)

    rd = sub.add_parser("render", help="render one actor: a PNG frame, or an MP4 clip with --motion")
    rd.add_argument("--actor", default="actor_000000", help="actor id (actor_000042) or any string")
    rd.add_argument(
        "--yaw",
        type=float,
        default=0.0,
        help="body yaw in degrees, any number: 0 faces the camera, 90 shows the actor's right side, 180 the back "
        "(default 0)",
    )
    rd.add_argument("--scene", default="studio", choices=SCENE_KINDS, help="scene kind (default studio)")
    rd.add_argument(
        "--motion", default=None, choices=MOTION_KINDS, help="render an MP4 clip with this motion"
    )
    rd.add_argument("--frames", type=int, default=16, help="frames of a clip (default 16)")
    rd.add_argument("--size", type=int, default=256, help="height and width in pixels (default 256)")
    rd.add_argument("--seed", type=int, default=0, help="seed of the scene's lighting and layout (default 0)")
    rd.add_argument("--out", type=Path, required=True, help=".png (frame) or .mp4 (clip)")

    fv = sub.add_parser(
        "fit-vae",
        help="fit a codec on a world's clips and references: the projected pixel VAE (PCA of pixel blocks) "
        "or a tiny AutoencoderKLWan (trained, resumable)",
    )
    fv.add_argument("--data", type=Path, required=True, help="folder written by `world make`")
    fv.add_argument(
        "--kind", choices=("pca", "wan"), default="pca", help="pca: PixelShuffleVAE; wan: AutoencoderKLWan"
    )
    fv.add_argument("--latent-channels", type=int, default=20, help="pca: channels kept")
    fv.add_argument("--scale", type=int, default=4, help="pca: pixel block size (spatial factor)")
    fv.add_argument(
        "--every", type=int, default=None, help="use every k-th training clip (default: pca 8, wan 1)"
    )
    fv.add_argument("--steps", type=int, default=3000, help="wan: optimizer steps")
    fv.add_argument("--z-dim", type=int, default=16, help="wan: latent channels")
    fv.add_argument("--base-dim", type=int, default=16, help="wan: width of the first stage")
    fv.add_argument("--checkpoint-every", type=int, default=100, help="wan: steps between checkpoints")
    fv.add_argument("--threads", type=int, default=1, help="wan: torch CPU threads")
    fv.add_argument("--seed", type=int, default=0)
    fv.add_argument("--quiet", action="store_true", help="wan: no progress bar")
    fv.add_argument("--out", type=Path, required=True, help="diffusers folder to write (config + weights)")

    ft = sub.add_parser("fit-tokenizer", help="fit a word-level tokenizer on the prompts of a world")
    ft.add_argument("--data", type=Path, required=True, help="folder written by `world make`")
    ft.add_argument("--min-count", type=int, default=1, help="keep words seen at least this often")
    ft.add_argument("--out", type=Path, required=True, help="tokenizer folder to write (save_pretrained)")

    rp = sub.add_parser(
        "reprompt",
        help="write manifests of a made world with the other kind of prompt (no rendering)",
        description="Writes manifest_person.jsonl (or _described), manifest_train_... and manifest_heldout_... "
        "next to the world's manifests: the same clips and references, prompts rebuilt from the label files.",
    )
    rp.add_argument("--data", type=Path, required=True, help="folder written by `world make`")
    rp.add_argument("--prompts", choices=("described", "person"), required=True, help="prompt kind to write")


def _cmd_make(args: argparse.Namespace) -> int:
    from wildactor.world.make import PAPER_SELF_CROP_BIAS, WorldConfig, make_world

    bias = PAPER_SELF_CROP_BIAS
    if args.frontal_bias is not None:
        total = sum(args.frontal_bias)
        if total <= 0 or min(args.frontal_bias) < 0:
            raise WildActorError("--frontal-bias needs three non-negative numbers with a positive sum")
        bias = tuple(float(x) / total for x in args.frontal_bias)
    try:
        cfg = WorldConfig(
            actors=args.actors,
            clips_per_actor=args.clips_per_actor,
            seed=args.seed,
            first_actor=args.first_actor,
            num_frames=args.frames,
            size=args.size,
            fps=args.fps,
            ref_size=args.ref_size,
            frontal_bias=bias,
            heldout_fraction=args.heldout_fraction,
            attr_aug_per_clip=args.attr_aug,
            three_view=not args.no_three_view,
            view_aug_scene=args.view_aug_scene,
            prompts=args.prompts,
        )
    except ValueError as exc:
        raise WildActorError(str(exc)) from None
    stats = make_world(cfg, args.out, progress=not args.quiet)
    from wildactor.world.make import stats_markdown

    print(stats_markdown(stats), end="")
    print(f"wrote {stats['clips']} clips to {args.out} (manifest.jsonl, manifest.parquet, stats.md)")
    return 0


def _cmd_train_probes(args: argparse.Namespace) -> int:
    from wildactor.world.probe_training import ProbeTrainConfig, train_probes
    from wildactor.world.probes import default_probe_dir, save_probes

    overrides = {
        k: v
        for k, v in (
            ("train_frames", args.train_frames),
            ("eval_frames", args.eval_frames),
            ("frame_epochs", args.frame_epochs),
            ("train_clips", args.train_clips),
            ("lr", args.lr),
        )
        if v is not None
    }
    try:
        cfg = ProbeTrainConfig(threads=args.threads, seed=args.seed, **overrides)
    except ValueError as exc:
        raise WildActorError(str(exc)) from None
    init = None
    if args.init is not None:
        from wildactor.world.probes import load_probes

        init = load_probes(args.init)
    probes = train_probes(cfg, progress=True, init=init)
    out = args.out or default_probe_dir()
    save_probes(probes, out)
    print(
        json.dumps(
            {
                "heldout_frame_accuracy": probes.card["heldout_frame_accuracy"],
                "heldout_motion_accuracy": probes.card["heldout_motion_accuracy"],
            },
            indent=2,
        )
    )
    print(f"saved probes to {out}")
    return 0


def _cmd_eval_probes(args: argparse.Namespace) -> int:
    from wildactor.world.probe_training import (
        CORRUPTIONS,
        HELDOUT_ACTORS,
        evaluate_frame_probe,
        evaluate_motion_probe,
        render_probe_clips,
        render_probe_frames,
    )
    from wildactor.world.probes import load_probes

    if args.frames < 1 or args.clips < 1:
        raise WildActorError("--frames and --clips must be >= 1")
    probes = load_probes(args.probes)
    x, t = render_probe_frames(args.frames, args.seed, HELDOUT_ACTORS, progress=True)
    report = {"clean": evaluate_frame_probe(probes.frame, x, t)}
    for kind in CORRUPTIONS:
        report[kind] = evaluate_frame_probe(probes.frame, x, t, corruption=kind, seed=args.seed)
    clips, motions = render_probe_clips(args.clips, args.seed + 1, HELDOUT_ACTORS, progress=True)
    report["motion"] = evaluate_motion_probe(probes.motion, clips, motions)
    print(json.dumps(report, indent=2))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from wildactor.world.actors import Actor
    from wildactor.world.clips import ClipSpec, render_clip
    from wildactor.world.motions import sample_motion
    from wildactor.world.renderer import render_frame
    from wildactor.world.scenes import sample_scene

    try:
        actor = Actor.from_id(args.actor)
        rng = np.random.default_rng(args.seed)
        scene = sample_scene(args.scene, rng)
        suffix = args.out.suffix.lower()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.motion is None:
            if suffix != ".png":
                raise WildActorError("a single frame is written as .png (give --motion for an .mp4 clip)")
            Image.fromarray(render_frame(actor, yaw=args.yaw, scene=scene, size=args.size)).save(args.out)
        else:
            if suffix != ".mp4":
                raise WildActorError("a clip (--motion) is written as .mp4")
            from wildactor.media import write_mp4

            motion = sample_motion(args.motion, rng, yaw=args.yaw)
            size = args.size + args.size % 2
            clip = render_clip(
                ClipSpec(actor=actor, motion=motion, scene=scene, num_frames=args.frames, size=(size, size))
            )
            write_mp4(args.out, clip.frames, fps=8)
    except ValueError as exc:
        raise WildActorError(str(exc)) from None
    print(f"wrote {args.out}")
    return 0


def _cmd_fit_wan_vae(args: argparse.Namespace) -> int:
    import torch

    from wildactor.world.vae_training import (
        WanVAEFitConfig,
        latest_checkpoint,
        load_world_pixels,
        train_wan_vae,
    )

    torch.set_num_threads(args.threads)
    try:
        cfg = WanVAEFitConfig(
            base_dim=args.base_dim,
            z_dim=args.z_dim,
            steps=args.steps,
            checkpoint_every=args.checkpoint_every,
            seed=args.seed,
            every=args.every or 1,
        )
    except ValueError as exc:
        raise WildActorError(str(exc)) from None
    pixels = load_world_pixels(args.data, "train", every=cfg.every)
    resume = latest_checkpoint(args.out)
    print(f"{len(pixels.clips)} clips and {len(pixels.images)} reference images; "
          + (f"resuming from {resume}" if resume else "starting from random weights"))  # fmt: skip
    summary = train_wan_vae(cfg, pixels, args.out, progress=not args.quiet)
    last = summary["log"][-1]
    print(
        f"step {last['step']}: training-crop PSNR clips {last['psnr_clip']} dB, references {last['psnr_ref']} dB"
    )
    print(f"wrote {args.out}")
    return 0


def _cmd_fit_vae(args: argparse.Namespace) -> int:
    if args.kind == "wan":
        return _cmd_fit_wan_vae(args)
    import numpy as np
    from PIL import Image

    from wildactor.media import frames_to_pixels, read_mp4
    from wildactor.model.pixel_vae import PixelShuffleVAE

    manifest = args.data / "manifest_train.jsonl"
    if not manifest.is_file():
        raise WildActorError(f"{manifest} not found: run `wildactor world make --out {args.data}` first")
    every = 8 if args.every is None else args.every
    if every < 1:
        raise WildActorError("--every must be >= 1")
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()][::every]

    def videos():  # (3, T, H, W) in [-1, 1]
        for rec in records:
            yield frames_to_pixels(read_mp4(args.data / rec["video"]))[0]
            for ref in rec["refs"]:
                image = np.asarray(Image.open(args.data / ref["path"]).convert("RGB"))
                yield frames_to_pixels(image[None])[0]

    try:
        vae, explained = PixelShuffleVAE.fit_pca(videos(), args.latent_channels, args.scale)
    except ValueError as exc:
        raise WildActorError(str(exc)) from None
    vae.save_pretrained(args.out)
    print(f"fitted on {len(records)} clips and their references: {args.latent_channels} channels keep "
          f"{100 * explained[-1].item():.3f} % of the block variance")  # fmt: skip
    print(f"wrote {args.out}")
    return 0


def _cmd_fit_tokenizer(args: argparse.Namespace) -> int:
    from wildactor.model.word_tokenizer import fit_word_tokenizer

    manifest = args.data / "manifest.jsonl"  # every split: held-out prompts must not become [UNK]
    if not manifest.is_file():
        raise WildActorError(f"{manifest} not found: run `wildactor world make --out {args.data}` first")
    prompts = [json.loads(line)["prompt"] for line in manifest.read_text().splitlines() if line.strip()]
    try:
        tokenizer = fit_word_tokenizer(prompts, min_count=args.min_count)
    except ValueError as exc:
        raise WildActorError(str(exc)) from None
    tokenizer.save_pretrained(args.out)
    longest = max(len(ids) for ids in tokenizer(prompts).input_ids)
    print(f"fitted on {len(prompts)} prompts: {len(tokenizer)} tokens (with [PAD] [EOS] [UNK]); "
          f"the longest prompt is {longest} tokens")  # fmt: skip
    print(f"wrote {args.out}")
    return 0


def _cmd_reprompt(args: argparse.Namespace) -> int:
    from wildactor.world.prompts import prompt_from_labels

    names = ("manifest.jsonl", "manifest_train.jsonl", "manifest_heldout.jsonl")
    if not (args.data / names[0]).is_file():
        raise WildActorError(
            f"{args.data / names[0]} not found: run `wildactor world make --out {args.data}` first"
        )
    for name in names:
        src = args.data / name
        if not src.is_file():
            continue
        lines = []
        for line in src.read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            labels = json.loads((args.data / record["labels"]).read_text())
            record["prompt"] = prompt_from_labels(labels, describe=args.prompts == "described")
            lines.append(json.dumps(record))
        out = args.data / f"{src.stem}_{args.prompts}.jsonl"
        tmp = out.with_suffix(".partial")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(out)
        print(f"wrote {out} ({len(lines)} records)")
    return 0


def main(args: argparse.Namespace) -> int:
    commands = {
        "fit-tokenizer": _cmd_fit_tokenizer,
        "fit-vae": _cmd_fit_vae,
        "make": _cmd_make,
        "train-probes": _cmd_train_probes,
        "eval-probes": _cmd_eval_probes,
        "render": _cmd_render,
        "reprompt": _cmd_reprompt,
    }
    return commands[args.world_command](args)
