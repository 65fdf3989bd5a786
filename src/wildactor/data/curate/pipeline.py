"""The pipeline: find inputs, run the stages (local or Ray executor), write the outputs.

Stage order: probe -> shots -> detect -> identity -> tracking -> viewpoint -> crops -> augment ->
idcheck -> export. (Viewpoint runs before the self-crops so that crops can be spread over views.)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from wildactor.data.curate.augment import AugmentStage
from wildactor.data.curate.config import CurateConfig
from wildactor.data.curate.crops import CropStage
from wildactor.data.curate.detect import DetectStage
from wildactor.data.curate.export import ExportStage
from wildactor.data.curate.idcheck import IdCheckStage
from wildactor.data.curate.identity import IdentityStage
from wildactor.data.curate.probe import ProbeStage
from wildactor.data.curate.shots import ShotSplitStage
from wildactor.data.curate.stage import Item, Stage
from wildactor.data.curate.store import RunState
from wildactor.data.curate.tracking import TrackStage
from wildactor.data.curate.viewpoint import ViewpointStage
from wildactor.errors import WildActorError

STAGE_CLASSES: tuple[type[Stage], ...] = (
    ProbeStage,
    ShotSplitStage,
    DetectStage,
    IdentityStage,
    TrackStage,
    ViewpointStage,
    CropStage,
    AugmentStage,
    IdCheckStage,
    ExportStage,
)
STAGE_NAMES = tuple(c.name for c in STAGE_CLASSES)


def make_stages(config: CurateConfig, out_dir: str) -> list[Stage]:
    return [cls(config, out_dir) for cls in STAGE_CLASSES]


def check_stages(stages: list[Stage]) -> None:
    """Fail fast, before any work, on missing local model paths of the chosen back-ends."""
    for st in stages:
        check = getattr(st, "check", None)
        if check is not None:
            check()


def input_id(rel: str) -> str:
    return hashlib.sha1(os.fsencode(rel)).hexdigest()[:16]


def discover_inputs(input_dir: str | Path, extensions: tuple[str, ...]) -> list[Item]:
    """Every file under `input_dir` whose extension is listed, sorted by relative path (bytes)."""
    root = Path(input_dir)
    if not root.is_dir():
        raise WildActorError(f"input folder not found: {root}")
    broot = os.fsencode(str(root))
    found = []
    exts = {e.lower().encode() for e in extensions}
    for dirpath, _dirs, files in os.walk(broot):
        for name in files:
            if os.path.splitext(name)[1].lower() in exts and not name.startswith(b"."):
                found.append(os.path.join(dirpath, name))
    items = []
    for bpath in sorted(found):
        rel = os.fsdecode(os.path.relpath(bpath, broot))
        items.append(
            {"clip_id": input_id(rel), "input_id": input_id(rel), "path": os.fsdecode(bpath), "rel": rel}
        )
    return items


def display_path(rel: str) -> str:
    """A printable path: bytes that are not UTF-8 shown as \\xNN."""
    return os.fsencode(rel).decode("utf-8", errors="backslashreplace")


def run_chain(stages: list[Stage], item: Item) -> tuple[list[Item], dict[str, int]]:
    """One input through every stage. Returns its final items and how many items each stage saw."""
    items = [item]
    seen: dict[str, int] = {}
    for st in stages:
        seen[st.name] = sum(1 for it in items if not it.get("reject"))
        items = st(items)
    return items, seen


def build(
    input_dir: str | Path,
    out_dir: str | Path,
    config: CurateConfig,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Run (or resume) a build; returns the summary that `finalize` writes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = RunState(out)
    saved = state.saved_config()
    if saved is not None and saved != json.loads(config.to_json()):
        raise WildActorError(f"{out} holds a run with other settings; use a new --out or the same config")
    stages = make_stages(config, str(out))
    check_stages(stages)
    state.save_config(config.to_json())
    inputs = discover_inputs(input_dir, config.extensions)
    if limit is not None:
        inputs = inputs[:limit]
    pending = [it for it in inputs if not state.input_done(it["input_id"])]
    if executor == "local":
        from wildactor.data.curate.executors import run_local

        run_local(config, str(out), pending, state, workers=workers, progress=progress)
    elif executor == "ray":
        from wildactor.data.curate.executors import run_ray

        run_ray(config, str(out), pending, state, workers=workers, address=address, progress=progress)
    else:
        raise WildActorError(f"unknown executor {executor!r} (local | ray)")
    return finalize(out, expected=[it["input_id"] for it in inputs])


def finalize(out_dir: str | Path, expected: list[str] | None = None) -> dict:
    """Write manifest.jsonl/.parquet, rejects.parquet/.csv and Table 1 from the finished state."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from wildactor.data.curate.stats import write_stats
    from wildactor.data.schema import ManifestRecord, validate_records, write_manifest

    out = Path(out_dir)
    state = RunState(out)
    items = state.finished()
    records, rejects = [], []
    for it in items:
        if it.get("reject"):
            r = it["reject"]
            rejects.append(
                {
                    "kind": "clip",
                    "path": display_path(it["rel"]),
                    "clip_id": it["clip_id"],
                    "stage": r["stage"],
                    "reason": r["reason"],
                    "detail": r.get("detail", ""),
                }
            )
        else:
            records.append(ManifestRecord.from_dict(it["record"]))
        for d in it.get("dropped_refs", []):
            rejects.append(
                {
                    "kind": "reference",
                    "path": d["path"],
                    "clip_id": it["clip_id"],
                    "stage": d["stage"],
                    "reason": d["reason"],
                    "detail": d.get("detail", ""),
                }
            )
    problems = validate_records(records, root=out)
    if problems:
        from wildactor.data.schema import format_problems

        raise WildActorError(f"built manifest is invalid: {format_problems(problems)}")
    write_manifest(records, out / "manifest.jsonl")
    write_manifest(records, out / "manifest.parquet")
    columns = ["kind", "path", "clip_id", "stage", "reason", "detail"]
    table = pa.table(
        {c: [r[c] for r in rejects] for c in columns}, schema=pa.schema([(c, pa.string()) for c in columns])
    )
    for suffix, writer in ((".parquet", pq.write_table), (".csv", pacsv.write_csv)):
        tmp = out / f".rejects{suffix}.tmp-{os.getpid()}"
        writer(table, tmp)
        os.replace(tmp, out / f"rejects{suffix}")
    done_inputs = {it["input_id"] for it in items}
    summary = {
        "inputs": len(expected) if expected is not None else len(done_inputs),
        "inputs_done": len(done_inputs),
        "clips_kept": len(records),
        "clips_rejected": sum(1 for r in rejects if r["kind"] == "clip"),
        "refs_dropped": sum(1 for r in rejects if r["kind"] == "reference"),
        "reject_reasons": dict(sorted(_count(r["reason"] for r in rejects if r["kind"] == "clip").items())),
    }
    write_stats(records, out, {"summary": summary})
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out
