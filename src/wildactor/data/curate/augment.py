"""Stage 7 — augmented references through an `Editor`: View-Aug (six angles), Attr-Aug (environment,
lighting, expression, motion; lists in configs/curate/attributes.yaml) and a 3-View sheet.

Editors (``augment.editor``):

- ``none`` (default for real videos with no editing model): no augmented references.
- ``world``: the ActorWorld editor. For ActorWorld input (the clip's ``.json`` sidecar names the
  actor and scene) it re-renders that actor exactly at the requested angle or attribute. It is a
  generator, like the image-editing model it stands in for; its outputs are still checked by the
  identity-check stage.
- ``qwen``: a diffusers image-editing pipeline loaded from a local folder (Qwen-Image-Edit-2509) with
  a multiple-angles LoRA file; instructions from configs/curate/editor_prompts.yaml.

The requested view is the label of an edited reference (``metadata.requested``), as the editor was
asked to produce it; the identity check then decides whether it is kept.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildactor.data.curate.images import read_png, write_png
from wildactor.data.curate.stage import Item, Stage, drop_reference
from wildactor.errors import WildActorError

# yaw label (schema convention) of the six View-Aug angles; "down" = top-down (the camera looks down
# on the actor), "up" = bottom-up, as in ActorWorld
VIEW_YAW: dict[str, float] = {
    "front": 0.0,
    "right": 90.0,
    "back": 180.0,
    "left": 270.0,
    "up": 0.0,
    "down": 0.0,
}


@dataclass(frozen=True)
class EditRequest:
    kind: str  # "view" | "attribute" | "three_view"
    region: str  # "face" | "body"
    value: str = ""  # view name, or attribute value
    attribute: str = ""  # attribute kind for kind == "attribute"


class Editor:
    """Interface: `edit(image, request, item) -> image or None` (None = cannot do this edit)."""

    name = ""

    def edit(self, image: np.ndarray, request: EditRequest, item: Item) -> np.ndarray | None:
        raise NotImplementedError


def _load_yaml(path: str) -> dict:
    import yaml

    p = Path(path)
    if not p.is_absolute() and not p.is_file():
        p = Path(__file__).resolve().parents[4] / path  # repository checkout
    if not p.is_file():
        raise WildActorError(f"augmentation list not found: {path}")
    return yaml.safe_load(p.read_text(encoding="utf-8")) or {}


class WorldEditor(Editor):
    """Re-renders the ActorWorld actor named in the clip's sidecar with ActorWorld's own editor
    (`wildactor.world.ActorWorldEditor`): exact identity, requested angle / scene / lighting / pose."""

    name = "world"
    SCENES = {
        "beach": "beach",
        "forest": "forest",
        "city street": "city_street",
        "snow field": "snow",
        "night street": "night",
        "photo studio": "studio",
    }
    LIGHTS = {
        "daylight": "daylight",
        "overcast sky": "overcast",
        "sunset light": "sunset",
        "lamplight": "lamplight",
        "moonlight": "moonlight",
        "studio softbox": "softbox",
    }
    MOTIONS = {
        "waving": "wave",
        "jumping": "jump",
        "walking": "walk_in_place",
        "turning around": "turn_around",
        "standing still": "idle",
    }

    def __init__(self, size: int) -> None:
        from wildactor.world import ActorWorldEditor

        self.editor = ActorWorldEditor(out_size=size, render_size=max(192, size))

    def _scene(self, side: dict, kind: str | None = None, lighting: str | None = None):
        from wildactor.world import LIGHTINGS, Scene

        kind = kind or side.get("scene", "studio")
        if kind not in LIGHTINGS:
            kind = "studio"
        light = lighting if lighting is not None else side.get("lighting")
        if light not in LIGHTINGS[kind]:
            if lighting is not None:
                return None  # that lighting does not exist in this scene
            light = LIGHTINGS[kind][0]
        return Scene(kind=kind, lighting=light)

    def _pose_render(self, actor, region: str, scene, state=None) -> np.ndarray | None:
        from wildactor.world import self_crop

        img, lab = self.editor.render_view(actor, 0.0, 5.0, state, scene)
        ref = self_crop(img, lab, region, 0, self.editor.out_size)
        return None if ref is None else ref.image

    def edit(self, image, request, item):
        from wildactor.world import Actor, Motion

        side = item.get("sidecar") or {}
        if "actor_id" not in side:
            return None  # not ActorWorld input: nothing to re-render
        actor = Actor.from_id(side["actor_id"])
        if request.kind == "view":
            ref = self.editor.rerender(actor, request.region, request.value, scene=self._scene(side))
            return None if ref is None else ref.image
        if request.kind == "three_view":
            return self.editor.three_view(actor).image
        if request.attribute == "environment" and request.value in self.SCENES:
            return self._pose_render(
                actor, request.region, self._scene(side, kind=self.SCENES[request.value])
            )
        if request.attribute == "lighting" and request.value in self.LIGHTS:
            scene = self._scene(side, lighting=self.LIGHTS[request.value])
            return None if scene is None else self._pose_render(actor, request.region, scene)
        if request.attribute == "motion" and request.value in self.MOTIONS:
            state = Motion(kind=self.MOTIONS[request.value]).state(0.3)
            return self._pose_render(actor, request.region, self._scene(side), state)
        return None  # ActorWorld actors have no facial expressions


def check_qwen_paths(path: str, lora_path: str) -> tuple[Path, Path | None]:
    if not path:
        raise WildActorError("augment.editor=qwen needs augment.editor_path: a local diffusers folder")
    folder = Path(path)
    if not (folder / "model_index.json").is_file():
        raise WildActorError(
            f"image-editing pipeline not found: {folder}/model_index.json (augment.editor_path)"
        )
    lora = None
    if lora_path:
        lora = Path(lora_path)
        if not lora.is_file():
            raise WildActorError(f"multiple-angles LoRA not found: {lora} (augment.lora_path)")
    return folder, lora


class DiffusersEditor(Editor):
    """An instruction image-editing pipeline (e.g. Qwen-Image-Edit-2509) from a local folder."""

    name = "qwen"

    def __init__(self, path: str, lora_path: str, prompts: dict) -> None:
        import torch
        from diffusers import DiffusionPipeline

        folder, lora = check_qwen_paths(path, lora_path)
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        self.pipe = DiffusionPipeline.from_pretrained(str(folder), torch_dtype=dtype)
        if lora is not None:
            self.pipe.load_lora_weights(str(lora.parent), weight_name=lora.name)
        self.pipe.to("cuda" if torch.cuda.is_available() else "cpu")
        self.prompts = prompts

    def edit(self, image, request, item):
        from PIL import Image

        if request.kind == "view":
            prompt = self.prompts["view"][request.value]
        elif request.kind == "three_view":
            prompt = self.prompts["three_view"]
        else:
            prompt = self.prompts["attribute"][request.attribute].format(value=request.value)
        out = self.pipe(
            image=Image.fromarray(image),
            prompt=prompt,
            negative_prompt=self.prompts.get("negative"),
            num_inference_steps=int(self.prompts.get("steps", 40)),
            true_cfg_scale=float(self.prompts.get("guidance", 4.0)),
        ).images[0]
        return np.asarray(out.convert("RGB"))


def pick_attributes(clip_id: str, lists: dict, k: int) -> list[tuple[str, str]]:
    """k distinct (attribute, value) pairs (fewer if the lists hold fewer), a deterministic function of
    the clip id. Two pairs may share an attribute kind (two lightings, say)."""
    kinds = sorted(lists)
    pairs = [(kind, str(v)) for kind in kinds for v in lists[kind]]
    out: list[tuple[str, str]] = []
    j = 0
    while len(out) < min(k, len(pairs)):
        h = int(hashlib.sha1(f"{clip_id}/{j}".encode()).hexdigest(), 16)
        kind = kinds[h % len(kinds)]
        values = list(lists[kind])
        pair = (kind, str(values[(h // len(kinds)) % len(values)]))
        if pair in out:  # a repeat draw: take the next unused pair in list order
            pair = next(p for p in pairs[pairs.index(pair) :] + pairs if p not in out)
        out.append(pair)
        j += 1
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def reference_name(source: str, request: EditRequest) -> str:
    """File stem of an augmented reference, one per distinct edit: ``view_aug_face_left``,
    ``attr_aug_body_lighting_sunset_light``, ``canonical_body_sheet``."""
    if request.kind == "view":
        tag = request.value
    elif request.kind == "attribute":
        tag = f"{request.attribute}_{request.value}"
    else:
        tag = "sheet"
    return f"{source}_{request.region}_{_slug(tag)}"


class AugmentStage(Stage):
    name = "augment"
    batch_size = 1

    def resources(self) -> dict[str, float]:
        return {"num_cpus": self.num_cpus, "num_gpus": 1.0 if self.config.augment.editor == "qwen" else 0.0}

    def check(self) -> None:
        cfg = self.config.augment
        if cfg.editor == "qwen":
            check_qwen_paths(cfg.editor_path, cfg.lora_path)
        if cfg.editor != "none" and cfg.attr_per_clip:
            _load_yaml(cfg.attributes_file)

    def setup(self) -> None:
        cfg = self.config.augment
        self.editor: Editor | None = None
        self.lists = _load_yaml(cfg.attributes_file) if cfg.editor != "none" and cfg.attr_per_clip else {}
        if cfg.editor == "world":
            self.editor = WorldEditor(cfg.world_size)
        elif cfg.editor == "qwen":
            self.editor = DiffusersEditor(cfg.editor_path, cfg.lora_path, _load_yaml(cfg.prompts_file))

    def process(self, items: list[Item]) -> list[Item]:
        return [self._one(it) for it in items]

    def _one(self, item: Item) -> Item:
        cfg = self.config.augment
        item.setdefault("dropped_refs", [])
        if self.editor is None:
            item["augment"] = {"editor": "none"}
            return item
        sources = {}
        for ref in item["refs"]:
            sources.setdefault(ref["region"], ref)  # the first (best) self-crop of each region
        jobs: list[tuple[EditRequest, str, dict]] = []
        for region, src in sources.items():
            for view in cfg.views:
                if (
                    cfg.skip_source_view
                    and view == src.get("view")
                    and view in ("front", "left", "right", "back")
                ):
                    continue  # View-Aug adds the views a clip lacks
                jobs.append((EditRequest("view", region, view), "view_aug", src))
        if "body" in sources:
            for attr, value in pick_attributes(item["clip_id"], self.lists, cfg.attr_per_clip):
                jobs.append((EditRequest("attribute", "body", value, attr), "attr_aug", sources["body"]))
            if cfg.three_view:
                jobs.append((EditRequest("three_view", "body"), "canonical", sources["body"]))
        new_refs = []
        used: set[str] = set()
        for req, source, src in jobs:
            stem = reference_name(source, req)
            k = 1
            while stem + ("" if k == 1 else f"_{k}") in used:  # two values that slug alike keep two files
                k += 1
            stem += "" if k == 1 else f"_{k}"
            used.add(stem)
            rel = f"refs/{item['clip_id']}/{stem}.png"
            out = self.editor.edit(read_png(f"{self.out_dir}/{src['path']}"), req, item)
            if out is None:
                detail = f"{self.editor.name} cannot do {req.kind} {req.attribute} {req.value}"
                drop_reference(item, rel, self.name, "editor_unsupported", " ".join(detail.split()))
                continue
            write_png(out, f"{self.out_dir}/{rel}")
            if req.kind == "view":
                yaw = VIEW_YAW[req.value]
                view, angle, region = req.value, yaw, req.region
            elif req.kind == "three_view":
                view, angle, region = "canonical", None, "three_view"
            else:
                view, angle, region = src["view"], src["angle"], req.region
            new_refs.append(
                {
                    "path": rel,
                    "region": region,
                    "view": view,
                    "angle": angle,
                    "visibility": None,
                    "source_frame": src["source_frame"],
                    "metadata": {
                        "source": source,
                        "editor": self.editor.name,
                        "from": src["path"],
                        "requested": f"{req.kind}:{req.attribute + '=' if req.attribute else ''}{req.value}".rstrip(
                            ":"
                        ),
                    },
                }
            )
        item["augmented"] = new_refs
        item["augment"] = {"editor": self.editor.name, "made": len(new_refs)}
        return item
