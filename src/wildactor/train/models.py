"""The run's models: a diffusers Wan folder or an inline tiny config, and the saved inline model folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from wildactor.errors import WildActorError
from wildactor.train.config import ScheduleConfig, TrainConfig


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
        encoder_id = "pretrained:" + json.dumps(_encoder_digest(root), sort_keys=True)
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
            from wildactor.model.pixel_vae import PixelShuffleVAE as vae_class
        else:
            from diffusers import AutoencoderKLWan as vae_class
        if "pretrained" in vae_kwargs:  # a fitted codec (`wildactor world fit-vae`, either kind)
            from wildactor.media import file_sha256

            folder = Path(vae_kwargs.pop("pretrained"))
            if vae_kwargs:
                raise WildActorError(f"model.vae: `pretrained` takes no other keys, got {sorted(vae_kwargs)}")
            if not (folder / "config.json").is_file():
                raise WildActorError(f"model.vae.pretrained: {folder} holds no config.json")
            saved = json.loads((folder / "config.json").read_text()).get("_class_name")
            if saved is not None and saved != vae_class.__name__:
                raise WildActorError(
                    f"model.vae.pretrained: {folder} holds {saved} weights, not the {vae_class.__name__} "
                    f"model.vae.kind={m.vae.get('kind', 'wan')!r} names"
                )
            vae = vae_class.from_pretrained(folder)
            vae_id = {f.name: file_sha256(f) for f in sorted(folder.iterdir()) if f.is_file()}
        else:
            vae = vae_class(**vae_kwargs)
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


WHOLE_FILE_HASH_LIMIT = 256 << 20  # bigger weight files (UMT5-XXL's 11 GB) are keyed by size and both ends


def _encoder_digest(root: Path) -> dict[str, str]:
    """What the latent cache depends on in a pretrained folder: its codec, text encoder and tokenizer files, by
    content, so a cache survives moving the folder or retraining its transformer and never outlives a change of
    those files. JSON configs count without ``_name_or_path`` (where they were loaded from). Files over 256 MiB are keyed by their size and the sha256 of their first and last 8 MiB."""
    import hashlib

    from wildactor.media import file_sha256

    digest = {}
    for name in ("vae", "text_encoder", "tokenizer"):
        for f in sorted((root / name).rglob("*")):
            if not f.is_file():
                continue
            size = f.stat().st_size
            if (
                f.suffix == ".json" and size <= WHOLE_FILE_HASH_LIMIT
            ):  # configs: minus where they were loaded from
                try:
                    config = json.loads(f.read_text())
                except ValueError:
                    config = None
                if isinstance(config, dict):
                    config.pop("_name_or_path", None)
                    text = json.dumps(config, sort_keys=True).encode()
                    digest[f.relative_to(root).as_posix()] = hashlib.sha256(text).hexdigest()
                    continue
            if size <= WHOLE_FILE_HASH_LIMIT:
                digest[f.relative_to(root).as_posix()] = file_sha256(f)
                continue
            h = hashlib.sha256(str(size).encode())
            with open(f, "rb") as stream:
                h.update(stream.read(8 << 20))
                stream.seek(max(0, size - (8 << 20)))
                h.update(stream.read())
            digest[f.relative_to(root).as_posix()] = f"ends:{h.hexdigest()}"
    return digest


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
