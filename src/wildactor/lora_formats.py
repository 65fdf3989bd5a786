"""Reference-LoRA file layouts and lossless conversion between them.

Three layouts hold the same tensors (per block i and projection p in q, k, v; "down" is (rank, dim), "up"
(dim, rank)):

- ``wildactor``: ``reference_lora.{i}.to_{p}.{down,up}.weight``, metadata ``format``, rank, alpha, num_layers, dim
  (what `WildActorTransformer3DModel.save_reference_lora` writes and `load_reference_lora` reads);
- ``official``: the WildActor release's (DiffSynth/PEFT style) ``blocks.{i}.self_attn.{p}.lora_{A,B}.weight``,
  A = down, B = up, scale 1.0;
- ``standin``: Stand-In's ``blocks.{i}.self_attn.{p}_loras.{down,up}.weight``, scale 1.0.

Conversion only renames keys: the tensors are the same bytes, so every round trip is bitwise. A WildActor file
whose alpha differs from its rank has its scale alpha/rank multiplied into ``up`` on the way to a scale-1.0
layout (the only case that is not bitwise). A file whose keys are not all of one layout (an ordinary Wan LoRA,
a full checkpoint) is refused: a reference LoRA must never be confused with a LoRA that touches video tokens.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wildactor.errors import WildActorError

if TYPE_CHECKING:  # `wildactor lora --help` must not import torch
    import torch

FORMATS: tuple[str, ...] = ("wildactor", "official", "standin")
WILDACTOR_FORMAT = "wildactor-reference-lora"  # the metadata `format` of a wildactor-layout file
_PATTERNS = {
    "wildactor": re.compile(r"^reference_lora\.(\d+)\.to_([qkv])\.(down|up)\.weight$"),
    "official": re.compile(r"^blocks\.(\d+)\.self_attn\.([qkv])\.lora_(A|B)\.weight$"),
    "standin": re.compile(r"^blocks\.(\d+)\.self_attn\.([qkv])_loras\.(down|up)\.weight$"),
}
_ROLE = {"down": "down", "up": "up", "A": "down", "B": "up"}
_LAYOUT_FIELDS = ("format", "rank", "alpha", "num_layers", "dim")


def _key(layout: str, block: int, proj: str, role: str) -> str:
    if layout == "wildactor":
        return f"reference_lora.{block}.to_{proj}.{role}.weight"
    if layout == "official":
        return f"blocks.{block}.self_attn.{proj}.lora_{'A' if role == 'down' else 'B'}.weight"
    return f"blocks.{block}.self_attn.{proj}_loras.{role}.weight"


def read_lora_file(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the metadata of a safetensors file; one-line `WildActorError` if it cannot be read."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WildActorError(f"LoRA file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise WildActorError(f"{path} is not a readable safetensors file ({exc})") from exc


def _parse(layout: str, key: str) -> tuple[int, str, str] | None:
    match = _PATTERNS[layout].match(key)
    return None if match is None else (int(match[1]), match[2], _ROLE[match[3]])


def detect_lora_format(tensors: Mapping[str, Any], source: str | os.PathLike[str] = "the file") -> str:
    """The layout every key of ``tensors`` follows; `WildActorError` if none does (not a reference LoRA)."""
    if not tensors:
        raise WildActorError(f"{source} holds no tensors: not a reference LoRA")
    for layout in FORMATS:
        if all(_parse(layout, k) is not None for k in tensors):
            return layout
    stray = [k for k in sorted(tensors) if not any(_parse(lay, k) for lay in FORMATS)]
    what = f"key {stray[0]!r} fits none of the layouts" if stray else "its keys mix the layouts"
    raise WildActorError(
        f"{source} is not a reference LoRA: {what} {', '.join(FORMATS)} "
        "(an ordinary Wan LoRA loads with WildActorPipeline.load_lora_weights)"
    )


def is_reference_lora(source: Any, weight_name: str | None = None) -> str | None:
    """The reference-LoRA layout of a state dict, a .safetensors file or a folder with ``weight_name``
    (diffusers' `load_lora_weights` inputs); None when it is something else (e.g. an ordinary LoRA)."""
    if isinstance(source, Mapping):
        keys: list[str] = list(source)
        meta: dict[str, str] = {}
    else:
        path = Path(source)
        if path.is_dir():
            path = path / (weight_name or "pytorch_lora_weights.safetensors")
        if not path.is_file() or path.suffix != ".safetensors":
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                keys, meta = list(f.keys()), dict(f.metadata() or {})
        except Exception:
            return None  # diffusers reports the unreadable file itself
    if meta.get("format") == WILDACTOR_FORMAT:
        return "wildactor"
    try:
        return detect_lora_format(dict.fromkeys(keys))
    except WildActorError:
        return None


def reference_fit_of(metadata: Mapping[str, str], layout: str) -> str | None:
    """How the file's references were fitted into the frame, if known: its ``reference_fit`` metadata, else
    "stretch" for a file released in the official layout (the release stretches references), else None."""
    if "reference_fit" in metadata:
        return metadata["reference_fit"]
    if layout == "official" and "source_layout" not in metadata:
        return "stretch"
    return None


def convert_lora(
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    to: str,
    source_format: str | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Rename a reference LoRA's keys into layout ``to``; (tensors, metadata). Tensors are shared, not copied,
    except ``up`` when a WildActor alpha/rank scale has to be folded into a scale-1.0 layout."""
    if to not in FORMATS:
        raise WildActorError(f"unknown LoRA layout {to!r} (use one of {', '.join(FORMATS)})")
    found = detect_lora_format(tensors)
    if source_format is not None and source_format != found:
        raise WildActorError(f"--from {source_format} given, but the file is in the {found} layout")
    parsed = {k: _parse(found, k) for k in tensors}
    downs = [tensors[k] for k, (_, _, role) in parsed.items() if role == "down"]
    if not downs:
        raise WildActorError("the file has no down-projections: not a complete reference LoRA")
    rank, dim = (int(s) for s in downs[0].shape)
    for key, (_, _, role) in parsed.items():
        expected = (rank, dim) if role == "down" else (dim, rank)
        if tuple(tensors[key].shape) != expected:
            raise WildActorError(f"{key} has shape {tuple(tensors[key].shape)}, expected {expected}")
    alpha = float(metadata.get("alpha", rank)) if found == "wildactor" else float(rank)
    fold = to != "wildactor" and alpha != float(rank)
    out: dict[str, torch.Tensor] = {}
    for key, (block, proj, role) in parsed.items():
        value = tensors[key]
        if fold and role == "up":
            value = (value.float() * (alpha / rank)).to(value.dtype)
        out[_key(to, block, proj, role)] = value

    # The layout fields first, in `save_reference_lora`'s order.
    meta = {"format": WILDACTOR_FORMAT} if to == "wildactor" else {}
    meta.update(
        rank=str(rank),
        alpha=str(float(rank) if fold else alpha),
        num_layers=str(max(block for block, _, _ in parsed.values()) + 1),
        dim=str(dim),
    )
    meta.update({k: v for k, v in metadata.items() if k not in (*_LAYOUT_FIELDS, "source_layout")})
    fit = reference_fit_of(metadata, found)
    if fit is not None:
        meta["reference_fit"] = fit
    if to != "wildactor":  # remembered so that a file that started as WildActor's is not taken for a release
        meta["source_layout"] = metadata.get("source_layout", found)
    return out, meta


def convert_lora_file(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], to: str, source_format: str | None = None
) -> Path:
    """Read ``src``, convert it into layout ``to`` and write ``dst`` (safetensors, written then renamed)."""
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise WildActorError("the output must be another file than the input")
    tensors, metadata = read_lora_file(src)
    try:
        detect_lora_format(tensors, src)
    except WildActorError:
        if metadata.get("format") not in (None, WILDACTOR_FORMAT):
            raise WildActorError(f"{src} is a {metadata['format']!r} file, not a reference LoRA") from None
        raise
    out, meta = convert_lora(tensors, metadata, to, source_format)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    save_file({k: v.contiguous() for k, v in out.items()}, str(tmp), metadata=meta)
    tmp.replace(dst)
    return dst
