"""The pipeline: find inputs, run the stage chain (chain.py) through an executor (executors.py),
write the outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from wildactor.data.curate.chain import STAGE_NAMES, check_stages, make_stages
from wildactor.data.curate.config import CurateConfig
from wildactor.data.curate.executors import run_local, run_ray
from wildactor.data.curate.stage import Item, reject
from wildactor.data.curate.store import RunState, remove_stale_temporaries
from wildactor.errors import WildActorError
from wildactor.paths import is_within

__all__ = ["STAGE_NAMES", "build", "check_stages", "discover_inputs", "finalize", "make_stages"]


def input_id(rel: str) -> str:
    return hashlib.sha1(os.fsencode(rel)).hexdigest()[:16]


def discover_inputs(
    input_dir: str | Path, extensions: tuple[str, ...], allow_outside_root: bool = False
) -> list[Item]:
    """Every entry under `input_dir` whose name has a listed extension, sorted by relative path (bytes).

    Nothing with a video extension is skipped silently: hidden files, folders named like videos, and
    symbolic links that lead out of `input_dir` come back already rejected (``hidden_file``,
    ``special_file``, ``outside_root``), so they appear in the rejects table. Links to folders are
    followed when they stay inside `input_dir` (each real folder once); links out of it are listed,
    not followed, unless `allow_outside_root`.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise WildActorError(f"input folder not found: {root}")
    broot = os.fsencode(str(root))
    exts = {e.lower().encode() for e in extensions}
    found: list[tuple[bytes, str | None, str]] = []  # (path, reject reason or None, detail)
    seen_dirs = {os.path.realpath(broot)}

    def leaves(path: bytes) -> bool:
        return not allow_outside_root and os.path.islink(path) and not is_within(path, broot)

    for dirpath, dirs, files in os.walk(broot, followlinks=True):
        # real folders before links to them, so a folder is listed under its own name
        dirs.sort(key=lambda n: (os.path.islink(os.path.join(dirpath, n)), n))
        for name in list(dirs):
            full = os.path.join(dirpath, name)
            is_video_name = os.path.splitext(name)[1].lower() in exts
            if leaves(full):
                dirs.remove(name)
                found.append(
                    (full, "outside_root", f"a link to {display_path(os.fsdecode(os.path.realpath(full)))}")
                )
                continue
            real = os.path.realpath(full)
            if real in seen_dirs:  # a link back to a folder already walked (or a loop)
                dirs.remove(name)
                continue
            seen_dirs.add(real)
            if is_video_name:
                found.append((full, "special_file", "a folder, not a regular file"))
        for name in files:
            if os.path.splitext(name)[1].lower() not in exts:
                continue
            full = os.path.join(dirpath, name)
            if leaves(full):
                found.append(
                    (full, "outside_root", f"a link to {display_path(os.fsdecode(os.path.realpath(full)))}")
                )
            elif name.startswith(b"."):
                found.append((full, "hidden_file", "hidden (name starts with a dot): not read"))
            else:
                found.append((full, None, ""))
    items = []
    for bpath, reason, detail in sorted(found):
        rel = os.fsdecode(os.path.relpath(bpath, broot))
        it = {"clip_id": input_id(rel), "input_id": input_id(rel), "path": os.fsdecode(bpath), "rel": rel}
        items.append(reject(it, "probe", reason, detail) if reason else it)
    return items


def display_path(rel: str) -> str:
    """A printable path: bytes that are not UTF-8 shown as \\xNN."""
    return os.fsencode(rel).decode("utf-8", errors="backslashreplace")


def build(
    input_dir: str | Path,
    out_dir: str | Path,
    config: CurateConfig,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    allow_outside_root: bool = False,
) -> dict:
    """Run (or resume) a build; returns the summary that `finalize` writes. Symbolic links out of
    `input_dir` are rejects (``outside_root``) unless `allow_outside_root`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    state = RunState(out)
    saved = state.saved_config()
    if saved is not None and saved != json.loads(config.to_json()):
        raise WildActorError(f"{out} holds a run with other settings; use a new --out or the same config")
    stages = make_stages(config, str(out))
    check_stages(stages)
    state.save_config(config.to_json())
    inputs = discover_inputs(input_dir, config.extensions, allow_outside_root)
    if limit is not None:
        inputs = inputs[:limit]
    pending = [it for it in inputs if not state.input_done(it["input_id"])]
    if executor == "local":
        run_local(config, str(out), pending, state, workers=workers, progress=progress)
    elif executor == "ray":
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
                    "detail": display_path(r.get("detail", "")),
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
                    "detail": display_path(d.get("detail", "")),
                }
            )
    saved = state.saved_config() or {}
    # export.cut_clips: false points `video` at the source files, outside --out by design
    outside_ok = not saved.get("export", {}).get("cut_clips", True)
    problems = validate_records(records, root=out, allow_outside_root=outside_ok)
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
    wanted = set(expected) if expected is not None else done_inputs
    summary = {
        "inputs": len(wanted),  # this run's inputs (after --limit)
        "inputs_done": len(wanted & done_inputs),  # of those, finished (now or by an earlier run)
        "inputs_in_manifest": len(done_inputs),  # every finished input of this --out, earlier runs too
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
