"""Checkpoints: atomic step folders (reference LoRA, optimizer, EMA, RNG, trainer state), written and read back."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError

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
    # strict=False: with `optimizer.trainable: all`, a weight no loss reaches has no optimizer state, in the saved
    # run and in this one alike. (Every reference-LoRA weight gets a gradient: the last block has no q LoRA.)
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

    from wildactor.model.transformer import reference_lora_file_tensors

    root = output_dir / "checkpoints"
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    full = snapshot["model"]
    # The fit the references were trained with travels with the LoRA, so generation uses the same one.
    lora_meta = {**model._lora_metadata(), "reference_fit": state["config"]["data"]["reference_fit"]}
    if full is None:
        model.save_reference_lora(tmp / "reference_lora.safetensors", lora_meta)
    else:  # gathered weights (FSDP shards them): same file format as save_reference_lora
        lora = {k: v.contiguous() for k, v in reference_lora_file_tensors(full).items()}
        save_file(lora, str(tmp / "reference_lora.safetensors"), metadata=lora_meta)
        (tmp / "reference_lora.json").write_text(json.dumps(lora_meta, indent=2) + "\n")
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
            {n: e.detach().cpu().contiguous() for n, e in zip(ema_keys(trainable_names, state), ema)},
            str(tmp / "ema.safetensors"),
            # LoRA-only runs: the EMA file is itself a reference LoRA (`load_reference_lora` reads it).
            metadata=lora_meta if state["trainable"] == "lora" else None,
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


def ema_keys(trainable_names: list[str], state: dict[str, Any]) -> list[str]:
    """Keys of the EMA file: for LoRA-only runs the reference-LoRA file keys (the EMA file is itself a reference
    LoRA that `load_reference_lora` reads), else the parameter names."""
    if state["trainable"] != "lora":
        return list(trainable_names)
    from wildactor.model.transformer import reference_lora_file_tensors

    return list(reference_lora_file_tensors(dict.fromkeys(trainable_names)))


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
        keys = ema_keys(trainable_names, state)
        if set(saved) != set(keys):
            raise WildActorError(f"{path}: EMA weights do not match the trainable parameters")
        for name, e in zip(keys, ema):
            e.copy_(saved[name])
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng["torch_cpu"])
    if "torch_cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["torch_cuda"])
    return state
