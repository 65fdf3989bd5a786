"""Actor-Bench suite spec: subjects (reference images per conditioning setting) x prompts per axis.

A suite is one YAML (or JSON) file::

    name: my-suite
    video: {num_frames: 16, height: 64, width: 64, fps: 8, steps: 20, guidance_scale: 5.0, seed: 0}
    subjects:
      - id: alice
        references:                # one list per setting; settings a subject lacks are simply absent
          three_view: [{path: alice/sheet.png, region: three_view, view: canonical}]
          arbitrary:   [{path: alice/left.png, region: body, view: left}, {path: alice/face.png, region: face}]
          in_the_wild: [{path: alice/holiday.jpg, region: body}]
        narrative:                 # Sequential Narrative: storylines of (usually) 3 prompts
          - ["Alice walks along a beach at sunset.", "Then she sits on a bench.", "Finally she waves."]
        contextual:                # Contextual Generalization: single prompts
          - "Alice jogs through a snowy forest, seen from the side."
          - {text: "Alice turns around in a night market.", scene: night, motion: turn_around}

Reference paths are relative to the suite file and must stay in its folder (no absolute paths, no `..` or
links out of it) unless the suite is loaded with `allow_outside_root`. An ActorWorld suite names an `actor` per subject and gives
references as render requests (`{actorworld: three_view}`, `{actorworld: view_aug, region: body, view: left}`,
`{actorworld: self_crop, region: face, scene: forest, yaw: 20, seed: 3}`), which the runner renders once.
Prompts may carry labels (scene, motion, view, clip) that exact metrics compare against; a contextual prompt's
`id` label names its item (imported benchmarks keep their case ids, see `bench/opens2v.py`).

`load_suite` reports every problem with its location (`subjects[3].references.arbitrary[0].region: ...`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError
from wildactor.paths import outside_root

SETTINGS: tuple[str, ...] = ("three_view", "arbitrary", "in_the_wild")
AXES: tuple[str, ...] = ("narrative", "contextual")
REGIONS: tuple[str, ...] = ("face", "body", "three_view")
ACTORWORLD_RENDERS: tuple[str, ...] = ("three_view", "view_aug", "self_crop")
SUITES_DIR = Path(__file__).resolve().parent / "suites"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class VideoSettings:
    """How the runner generates each item (ignored when scoring existing videos)."""

    num_frames: int = 16
    height: int = 64
    width: int = 64
    fps: int = 8
    steps: int = 20
    guidance_scale: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_frames", "height", "width", "fps", "steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {self.guidance_scale}")


@dataclass(frozen=True)
class RefSpec:
    """One reference: a file (`path`) or an ActorWorld render request (`actorworld` + its parameters)."""

    region: str = "body"
    view: str = "unknown"
    path: str | None = None
    actorworld: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"unknown region {self.region!r} (use one of {', '.join(REGIONS)})")
        if (self.path is None) == (self.actorworld is None):
            raise ValueError("give exactly one of 'path' and 'actorworld'")
        if self.actorworld is not None and self.actorworld not in ACTORWORLD_RENDERS:
            raise ValueError(
                f"unknown actorworld render {self.actorworld!r} (use one of {', '.join(ACTORWORLD_RENDERS)})"
            )

    def key(self) -> str:
        """A stable file-name-safe key for a rendered reference."""
        if self.path is not None:
            return Path(self.path).stem
        bits = [self.actorworld, self.region, self.view] + [
            f"{k}{self.params[k]}" for k in sorted(self.params)
        ]
        return re.sub(r"[^A-Za-z0-9._-]", "_", "_".join(str(b) for b in bits))


@dataclass(frozen=True)
class PromptSpec:
    """A prompt and the labels an exact metric may check (scene, motion, view, clip render parameters)."""

    text: str
    labels: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError("prompt text must be a non-empty string")


@dataclass(frozen=True)
class Subject:
    id: str
    references: dict[str, tuple[RefSpec, ...]]
    narrative: tuple[tuple[PromptSpec, ...], ...] = ()
    contextual: tuple[PromptSpec, ...] = ()
    actor: str | None = None

    def __post_init__(self) -> None:
        if not _ID_RE.match(self.id) or "__" in self.id:
            raise ValueError(f"subject id {self.id!r} must be letters, digits, '.', '_', '-' (no '__')")
        if not self.references:
            raise ValueError("subject has no references in any setting")
        for setting, refs in self.references.items():
            if setting not in SETTINGS:
                raise ValueError(f"unknown setting {setting!r} (use one of {', '.join(SETTINGS)})")
            if not refs:
                raise ValueError(f"setting {setting!r} has an empty reference list")
        if not self.narrative and not self.contextual:
            raise ValueError("subject has no prompts (give 'narrative' and/or 'contextual')")
        for story in self.narrative:
            if not story:
                raise ValueError("a narrative storyline is empty")


@dataclass(frozen=True)
class BenchItem:
    """One video to generate and score: a subject, a setting, one prompt (a shot of a storyline or a
    single contextual prompt). `group` ties the shots of one storyline together (generated in one call)."""

    item_id: str
    subject: str
    setting: str
    axis: str
    group: str
    shot: int
    prompt: PromptSpec
    references: tuple[RefSpec, ...]
    actor: str | None
    seed: int


@dataclass(frozen=True)
class Suite:
    name: str
    subjects: tuple[Subject, ...]
    video: VideoSettings = field(default_factory=VideoSettings)
    root: Path = Path(".")
    description: str = ""

    def __post_init__(self) -> None:
        if not self.subjects:
            raise ValueError("suite has no subjects")
        ids = [s.id for s in self.subjects]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate subject ids: {', '.join(dup)}")

    @property
    def is_actorworld(self) -> bool:
        return any(s.actor is not None for s in self.subjects)

    def items(self) -> list[BenchItem]:
        """Every (subject, setting, prompt) item, in a fixed order, with a deterministic seed each."""
        out: list[BenchItem] = []
        for s in self.subjects:
            for setting in SETTINGS:
                refs = s.references.get(setting)
                if not refs:
                    continue
                for k, story in enumerate(s.narrative):
                    group = f"{s.id}__{setting}__nar{k}"
                    for j, p in enumerate(story):
                        out.append(
                            BenchItem(
                                f"{group}-{j}", s.id, setting, "narrative", group, j, p, refs, s.actor, 0
                            )
                        )
                for k, p in enumerate(s.contextual):
                    # An imported benchmark keeps its own case ids (`id:` on the prompt), so a system's
                    # `<id>.mp4` scores as is; such a subject has exactly one setting.
                    iid = str(p.labels["id"]) if "id" in p.labels else f"{s.id}__{setting}__ctx{k}"
                    out.append(BenchItem(iid, s.id, setting, "contextual", iid, 0, p, refs, s.actor, 0))
        # A seed per generation call (storyline or single prompt), stable under suite edits elsewhere.
        return [replace(it, seed=self.video.seed + stable_hash(it.group) % 1_000_000) for it in out]


def stable_hash(text: str) -> int:
    """A 32-bit hash of a string that does not change between Python runs."""
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


# ----------------------------------------------------------------------------- parsing


class _Where:
    """Builds error locations like `subjects[2].references.arbitrary[0]`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def err(self, where: str, msg: str) -> None:
        self.errors.append(f"{where}: {msg}" if where else msg)


def _parse_ref(d: Any, where: str, w: _Where) -> RefSpec | None:
    if not isinstance(d, dict):
        w.err(where, f"a reference must be a mapping, got {type(d).__name__}")
        return None
    known = {"path", "region", "view", "actorworld"}
    params = {k: v for k, v in d.items() if k not in known}
    if "path" in d and params:
        w.err(where, f"unknown keys {sorted(params)} (a file reference has path, region, view)")
        return None
    try:
        return RefSpec(
            region=d.get("region", "three_view" if d.get("actorworld") == "three_view" else "body"),
            view=str(d.get("view", "unknown")),
            path=None if d.get("path") is None else str(d["path"]),
            actorworld=d.get("actorworld"),
            params=params,
        )
    except ValueError as exc:
        w.err(where, str(exc))
        return None


def _parse_prompt(d: Any, where: str, w: _Where) -> PromptSpec | None:
    if isinstance(d, str):
        d = {"text": d}
    if not isinstance(d, dict) or "text" not in d:
        w.err(where, "a prompt must be a string or a mapping with 'text'")
        return None
    try:
        return PromptSpec(text=d["text"], labels={k: v for k, v in d.items() if k != "text"})
    except ValueError as exc:
        w.err(where, str(exc))
        return None


def _parse_subject(d: Any, where: str, w: _Where) -> Subject | None:
    if not isinstance(d, dict):
        w.err(where, "a subject must be a mapping")
        return None
    unknown = set(d) - {"id", "references", "narrative", "contextual", "actor", "description"}
    if unknown:
        w.err(where, f"unknown keys {sorted(unknown)}")
    if "id" not in d:
        w.err(where, "missing 'id'")
        return None
    n_err = len(w.errors)
    refs: dict[str, tuple[RefSpec, ...]] = {}
    raw_refs = d.get("references")
    if not isinstance(raw_refs, dict):
        w.err(f"{where}.references", "must map settings (three_view, arbitrary, in_the_wild) to lists")
        raw_refs = {}
    for setting, lst in raw_refs.items():
        if not isinstance(lst, list):
            w.err(f"{where}.references.{setting}", "must be a list of references")
            continue
        parsed = [_parse_ref(r, f"{where}.references.{setting}[{i}]", w) for i, r in enumerate(lst)]
        refs[setting] = tuple(r for r in parsed if r is not None)
    narrative = []
    for k, story in enumerate(d.get("narrative") or []):
        if not isinstance(story, list):
            w.err(f"{where}.narrative[{k}]", "a storyline must be a list of prompts")
            continue
        ps = [_parse_prompt(p, f"{where}.narrative[{k}][{j}]", w) for j, p in enumerate(story)]
        narrative.append(tuple(p for p in ps if p is not None))
    contextual = [
        _parse_prompt(p, f"{where}.contextual[{k}]", w) for k, p in enumerate(d.get("contextual") or [])
    ]
    if len(w.errors) > n_err:
        return None
    try:
        return Subject(
            id=str(d["id"]),
            references=refs,
            narrative=tuple(narrative),
            contextual=tuple(p for p in contextual if p is not None),
            actor=None if d.get("actor") is None else str(d["actor"]),
        )
    except ValueError as exc:
        w.err(where, str(exc))
        return None


def _check_prompt_ids(subjects: list[Subject], w: _Where) -> None:
    """Explicit item ids (`id:` on a contextual prompt) must be valid, unique, and on a one-setting subject."""
    seen: dict[str, str] = {}
    for i, s in enumerate(subjects):
        for k, p in enumerate(s.contextual):
            if "id" not in p.labels:
                continue
            iid, where = str(p.labels["id"]), f"subjects[{i}].contextual[{k}].id"
            if not _ID_RE.match(iid) or "__" in iid:
                w.err(where, f"item id {iid!r} must be letters, digits, '.', '_', '-' (no '__')")
            elif iid in seen:
                w.err(where, f"item id {iid!r} is also used at {seen[iid]}")
            elif len(s.references) != 1:
                w.err(where, "an explicit item id needs a subject with exactly one reference setting")
            seen.setdefault(iid, where)


def suite_from_dict(data: Any, root: Path, source: str = "suite", allow_outside_root: bool = False) -> Suite:
    """Build and validate a suite; every problem is listed in one WildActorError. Reference files must
    lie inside `root` unless `allow_outside_root`."""
    w = _Where(source)
    if not isinstance(data, dict):
        raise WildActorError(f"{source}: a suite must be a mapping with 'name' and 'subjects'")
    unknown = set(data) - {"name", "description", "video", "subjects"}
    if unknown:
        w.err("", f"unknown top-level keys {sorted(unknown)}")
    video = VideoSettings()
    if "video" in data:
        try:
            video = VideoSettings(**(data["video"] or {}))
        except (TypeError, ValueError) as exc:
            w.err("video", str(exc))
    subjects_raw = data.get("subjects")
    if not isinstance(subjects_raw, list) or not subjects_raw:
        w.err("subjects", "must be a non-empty list")
        subjects_raw = []
    subjects = [_parse_subject(s, f"subjects[{i}]", w) for i, s in enumerate(subjects_raw)]
    if not w.errors:
        for i, s in enumerate(subjects):
            for setting, refs in s.references.items():
                for j, r in enumerate(refs):
                    why = None if r.path is None or allow_outside_root else outside_root(root, r.path)
                    if why is not None:
                        w.err(
                            f"subjects[{i}].references.{setting}[{j}].path",
                            f"{why}: outside the suite's folder (--allow-outside-root allows it)",
                        )
                    elif r.path is not None and not (root / r.path).is_file():
                        w.err(
                            f"subjects[{i}].references.{setting}[{j}].path",
                            f"file not found: {root / r.path}",
                        )
    if not w.errors:
        _check_prompt_ids(subjects, w)
    suite = None
    if not w.errors:
        try:
            suite = Suite(
                name=str(data.get("name") or "suite"),
                subjects=tuple(subjects),
                video=video,
                root=root,
                description=str(data.get("description", "")),
            )
        except ValueError as exc:
            w.err("", str(exc))
    if w.errors:
        shown = w.errors[:20]
        more = f" (+{len(w.errors) - 20} more)" if len(w.errors) > 20 else ""
        raise WildActorError(f"{source}: invalid suite: " + "; ".join(shown) + more)
    return suite


def resolve_suite_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A shipped suite name (`actorworld`, `template`) or a path to a YAML/JSON file."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for ext in (".yaml", ".yml", ".json"):
        cand = SUITES_DIR / f"{name_or_path}{ext}"
        if cand.is_file():
            return cand
    shipped = sorted(q.stem for q in SUITES_DIR.glob("*.yaml"))
    raise WildActorError(f"suite not found: {name_or_path} (a file, or one of: {', '.join(shipped)})")


def load_suite(name_or_path: str | os.PathLike[str], allow_outside_root: bool = False) -> Suite:
    """Load and validate a suite by shipped name or path (reference files inside its folder unless
    `allow_outside_root`)."""
    path = resolve_suite_path(name_or_path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise WildActorError(f"{path}: not valid JSON: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError; yaml is imported lazily
        raise WildActorError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    return suite_from_dict(data, path.parent, source=str(path), allow_outside_root=allow_outside_root)
