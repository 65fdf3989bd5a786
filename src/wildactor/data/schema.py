"""Manifest records in the released Actor-18M schema, their validation, and JSONL/Parquet I/O.

One record per training clip::

    {video, prompt, actor_id, source, width, height, duration_sec,
     refs: [{path, region: face|body|three_view,
             view: front|left|right|side|back|up|down|canonical,
             angle, visibility, source_frame,
             metadata: {source: self_crop|view_aug|attr_aug|canonical}}]}

Paths are relative to the folder holding the manifest and must stay inside it (checked with the files,
symbolic links followed; ``allow_outside_root=True`` lets absolute and ``..`` paths through).
Angles are yaw in degrees, 0 = facing the camera, 180 = back to the camera; any finite value in
[-360, 360] is accepted and wraps at 360. Fields outside the schema (e.g. ``split``) are kept in
``extra`` and written back unchanged.

Parsing is lenient (``from_dict`` keeps what it is given); ``validate_records`` reports every
problem with the record index and the field, so a bad manifest is rejected as a whole before any
work starts.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wildactor.errors import WildActorError
from wildactor.paths import outside_root

REGIONS: tuple[str, ...] = ("face", "body", "three_view")
VIEWS: tuple[str, ...] = ("front", "left", "right", "side", "back", "up", "down", "canonical")
REF_SOURCES: tuple[str, ...] = ("self_crop", "view_aug", "attr_aug", "canonical")
VIEW_BINS: tuple[str, ...] = ("front", "side", "back")

_RECORD_KEYS = ("video", "prompt", "actor_id", "source", "width", "height", "duration_sec", "refs")
_REF_KEYS = ("path", "region", "view", "angle", "visibility", "source_frame", "metadata")


def wrap_angle(angle_deg: float) -> float:
    """Angle in degrees mapped to [0, 360)."""
    return float(angle_deg) % 360.0


def angular_distance(a_deg: float, b_deg: float) -> float:
    """Distance on the circle in degrees, in [0, 180]: 350 and 10 are 20 apart."""
    d = abs(wrap_angle(a_deg) - wrap_angle(b_deg))
    return min(d, 360.0 - d)


def view_bin(angle_deg: float) -> str:
    """Coarse view of a yaw angle: "front" within 45 deg of 0, "back" within 45 of 180, else "side"."""
    yaw = angular_distance(angle_deg, 0.0)
    if yaw <= 45.0:
        return "front"
    if yaw >= 135.0:
        return "back"
    return "side"


@dataclass
class ReferenceRecord:
    """One reference image of the actor in a clip."""

    path: str
    region: str
    view: str | None = None
    angle: float | None = None
    visibility: float | None = None
    source_frame: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str | None:
        """How the reference was made (``metadata.source``): self_crop | view_aug | attr_aug | canonical."""
        return self.metadata.get("source")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "region": self.region,
            "view": self.view,
            "angle": self.angle,
            "visibility": self.visibility,
            "source_frame": self.source_frame,
            "metadata": dict(self.metadata),
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceRecord:
        metadata = data.get("metadata")
        return cls(
            path=data.get("path", ""),
            region=data.get("region", ""),
            view=data.get("view"),
            angle=data.get("angle"),
            visibility=data.get("visibility"),
            source_frame=data.get("source_frame"),
            metadata=dict(metadata) if isinstance(metadata, dict) else ({} if metadata is None else metadata),
            extra={k: v for k, v in data.items() if k not in _REF_KEYS},
        )


@dataclass
class ManifestRecord:
    """One training clip: the video, its caption, who is in it, and the actor's reference images."""

    video: str
    prompt: str
    actor_id: str
    source: str
    width: int
    height: int
    duration_sec: float
    refs: list[ReferenceRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "video": self.video,
            "prompt": self.prompt,
            "actor_id": self.actor_id,
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "duration_sec": self.duration_sec,
            "refs": [r.to_dict() if isinstance(r, ReferenceRecord) else r for r in self.refs],
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestRecord:
        refs = data.get("refs")
        if isinstance(refs, list):
            refs = [ReferenceRecord.from_dict(r) if isinstance(r, dict) else r for r in refs]
        elif refs is None:
            refs = []
        return cls(
            video=data.get("video", ""),
            prompt=data.get("prompt", ""),
            actor_id=data.get("actor_id", ""),
            source=data.get("source", ""),
            width=data.get("width", 0),
            height=data.get("height", 0),
            duration_sec=data.get("duration_sec", 0.0),
            refs=refs,
            extra={k: v for k, v in data.items() if k not in _RECORD_KEYS},
        )


@dataclass(frozen=True)
class ValidationProblem:
    """One problem in a manifest: record ``index`` (0-based), ``field`` (e.g. ``refs[2].angle``), message."""

    index: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"record {self.index}: {self.field}: {self.message}"


def resolve_path(root: str | os.PathLike[str] | None, path: str) -> Path:
    """A record path made absolute against the manifest's folder (absolute paths are returned as is)."""
    p = Path(path)
    if p.is_absolute() or root is None:
        return p
    return Path(root) / p


OUTSIDE_HINT = "set allow_outside_root (train: data.allow_outside_root) if that is meant"


def _file_problem(root: str | os.PathLike[str] | None, path: str, allow_outside_root: bool) -> str | None:
    """Why a record's file is unusable (outside the manifest's folder, or missing), or None."""
    if root is None:
        return None
    if not allow_outside_root:
        why = outside_root(root, path)
        if why is not None:
            return f"{why}: outside the manifest's folder; {OUTSIDE_HINT}"
    if not resolve_path(root, path).is_file():
        return f"file not found: {resolve_path(root, path)}"
    return None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_ref(
    ref: Any, index: int, j: int, root: str | os.PathLike[str] | None, allow_outside_root: bool = False
) -> list[ValidationProblem]:
    where = f"refs[{j}]"
    if isinstance(ref, dict):
        ref = ReferenceRecord.from_dict(ref)
    if not isinstance(ref, ReferenceRecord):
        return [ValidationProblem(index, where, f"must be an object, got {type(ref).__name__}")]
    problems: list[ValidationProblem] = []

    def bad(name: str, message: str) -> None:
        problems.append(ValidationProblem(index, f"{where}.{name}", message))

    if not isinstance(ref.path, str) or not ref.path:
        bad("path", "missing or empty")
    elif (why := _file_problem(root, ref.path, allow_outside_root)) is not None:
        bad("path", why)
    if ref.region not in REGIONS:
        bad("region", f"unknown region {ref.region!r} (expected one of {', '.join(REGIONS)})")
    if ref.view is not None and ref.view not in VIEWS:
        bad("view", f"unknown view {ref.view!r} (expected one of {', '.join(VIEWS)})")
    if ref.angle is not None:
        if not _is_number(ref.angle) or not math.isfinite(ref.angle):
            bad("angle", f"must be a finite number of degrees or null, got {ref.angle!r}")
        elif not -360.0 <= ref.angle <= 360.0:
            bad("angle", f"{ref.angle} is outside [-360, 360] degrees")
    if ref.visibility is not None and (not _is_number(ref.visibility) or not 0.0 <= ref.visibility <= 1.0):
        bad("visibility", f"must be a number in [0, 1] or null, got {ref.visibility!r}")
    if ref.source_frame is not None and (not _is_int(ref.source_frame) or ref.source_frame < 0):
        bad("source_frame", f"must be a non-negative integer or null, got {ref.source_frame!r}")
    if not isinstance(ref.metadata, dict):
        bad("metadata", f"must be an object, got {type(ref.metadata).__name__}")
    elif ref.source is not None and ref.source not in REF_SOURCES:
        bad("metadata.source", f"unknown source {ref.source!r} (expected one of {', '.join(REF_SOURCES)})")
    return problems


def validate_record(
    record: ManifestRecord | dict[str, Any],
    index: int,
    root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
) -> list[ValidationProblem]:
    """Every problem of one record. With ``root`` (the manifest's folder) files must exist and lie
    inside ``root`` (unless ``allow_outside_root``)."""
    if isinstance(record, dict):
        missing = [k for k in _RECORD_KEYS if k not in record]
        record = ManifestRecord.from_dict(record)
    elif isinstance(record, ManifestRecord):
        missing = []
    else:
        return [ValidationProblem(index, "<record>", f"must be an object, got {type(record).__name__}")]
    problems = [ValidationProblem(index, k, "missing") for k in missing]
    missing_set = set(missing)

    def bad(name: str, message: str) -> None:
        if name not in missing_set:
            problems.append(ValidationProblem(index, name, message))

    if not isinstance(record.video, str) or not record.video:
        bad("video", "missing or empty")
    elif (why := _file_problem(root, record.video, allow_outside_root)) is not None:
        bad("video", why)
    if not isinstance(record.prompt, str) or not record.prompt.strip():
        bad("prompt", "must be a non-empty string")
    if (
        not isinstance(record.actor_id, (str, int))
        or isinstance(record.actor_id, bool)
        or record.actor_id == ""
    ):
        bad("actor_id", f"must be a non-empty string, got {record.actor_id!r}")
    if not isinstance(record.source, str):
        bad("source", f"must be a string, got {record.source!r}")
    for name in ("width", "height"):
        value = getattr(record, name)
        if not _is_int(value) or value <= 0:
            bad(name, f"must be a positive integer, got {value!r}")
    if (
        not _is_number(record.duration_sec)
        or not math.isfinite(record.duration_sec)
        or record.duration_sec <= 0
    ):
        bad("duration_sec", f"must be a positive number, got {record.duration_sec!r}")
    if not isinstance(record.refs, list):
        bad("refs", f"must be a list, got {type(record.refs).__name__}")
    elif not record.refs:
        bad("refs", "empty: every clip needs at least one reference image")
    else:
        for j, ref in enumerate(record.refs):
            problems.extend(_check_ref(ref, index, j, root, allow_outside_root))
    return problems


def validate_records(
    records: Sequence[ManifestRecord | dict[str, Any]],
    root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
) -> list[ValidationProblem]:
    """Every problem of every record, in order. With ``root`` the video and reference files must exist
    and lie inside ``root`` (unless ``allow_outside_root``)."""
    problems: list[ValidationProblem] = []
    for i, record in enumerate(records):
        problems.extend(validate_record(record, i, root, allow_outside_root))
    return problems


def format_problems(problems: Sequence[ValidationProblem], limit: int = 5) -> str:
    """A one-line summary naming the first ``limit`` problems."""
    shown = "; ".join(str(p) for p in problems[:limit])
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return f"{len(problems)} problem(s): {shown}{more}"


def _strip_nulls(value: Any) -> Any:
    """Parquet gives every row every struct key; drop the null ones so extras round-trip."""
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _from_parquet_row(row: dict[str, Any]) -> ManifestRecord:
    refs = row.get("refs") or []
    clean_refs = []
    for ref in refs:
        ref = dict(ref)
        meta = _strip_nulls(ref.get("metadata") or {})
        extras = {k: v for k, v in ref.items() if k not in _REF_KEYS and v is not None}
        clean_refs.append({**{k: ref.get(k) for k in _REF_KEYS}, "metadata": meta, **extras})
    extras = {k: _strip_nulls(v) for k, v in row.items() if k not in _RECORD_KEYS and v is not None}
    base = {k: row.get(k) for k in _RECORD_KEYS if k in row}
    return ManifestRecord.from_dict({**base, "refs": clean_refs, **extras})


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRecord]:
    """Records of a ``.jsonl`` or ``.parquet`` manifest (not validated: see ``load_manifest``)."""
    path = Path(path)
    if not path.is_file():
        raise WildActorError(f"manifest not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records: list[ManifestRecord] = []
        with path.open("r", encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise WildActorError(f"{path}: line {line_no} is not valid JSON ({exc.msg})") from None
                if not isinstance(data, dict):
                    raise WildActorError(f"{path}: line {line_no} is not a JSON object")
                records.append(ManifestRecord.from_dict(data))
        return records
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return [_from_parquet_row(row) for row in table.to_pylist()]
    raise WildActorError(f"unknown manifest format {suffix!r} for {path} (use .jsonl or .parquet)")


def write_manifest(records: Iterable[ManifestRecord | dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write records as ``.jsonl`` or ``.parquet`` (by suffix), atomically (temporary file + rename)."""
    path = Path(path)
    rows = [r.to_dict() if isinstance(r, ManifestRecord) else dict(r) for r in records]
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise WildActorError(f"unknown manifest format {suffix!r} for {path} (use .jsonl or .parquet)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if suffix == ".jsonl":
            with tmp.open("w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                table = pa.Table.from_pylist(rows)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise WildActorError(f"cannot write {path} as Parquet: {exc}") from None
            pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_manifest(
    path: str | os.PathLike[str], check_files: bool = True, allow_outside_root: bool = False
) -> list[ManifestRecord]:
    """Read and validate a manifest; raise ``WildActorError`` naming record and field of the problems.
    With ``check_files`` every file must exist inside the manifest's folder (or anywhere, with
    ``allow_outside_root``)."""
    records = read_manifest(path)
    if not records:
        raise WildActorError(f"manifest {path} holds no records")
    root = Path(path).parent if check_files else None
    problems = validate_records(records, root=root, allow_outside_root=allow_outside_root)
    if problems:
        raise WildActorError(f"bad manifest {path}: {format_problems(problems)}")
    return records
