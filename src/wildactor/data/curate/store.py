"""Resumable, idempotent run state under ``OUT/state/``.

Every finished clip is one JSON file keyed by its clip id (``state/clips/<clip_id>.json``); when all
clips of an input are written, the input's record (``state/inputs/<input_id>.json``: its clip ids)
is written last. Every file is written atomically (temporary file + rename), so a run killed at any
point leaves either a whole file or none. A rerun skips inputs that have a record and redoes the
others from the start (stages are deterministic and clips are encoded single-threaded, so rewritten
clip files are byte-identical), so every clip ends up exactly once in the manifest or in the rejects
table. Temporary files a killed run left behind are removed when the next run starts.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from wildactor.data.curate.stage import Item


def write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=True, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


_TEMP = re.compile(r"^\..+\.tmp-(\d+)(\.mp4)?$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(out_dir: str | Path) -> int:
    """Delete the temporary files (``.<name>.tmp-<pid>``) that a killed run left under `out_dir`;
    files of a process still alive are left alone. Returns how many were removed."""
    removed = 0
    for dirpath, _dirs, files in os.walk(out_dir):
        for name in files:
            m = _TEMP.match(name)
            if m and not _alive(int(m.group(1))):
                try:
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


class RunState:
    def __init__(self, out_dir: str | Path) -> None:
        self.root = Path(out_dir) / "state"
        self.clips = self.root / "clips"
        self.inputs = self.root / "inputs"

    def input_done(self, input_id: str) -> bool:
        return (self.inputs / f"{input_id}.json").is_file()

    def save_clip(self, item: Item) -> None:
        write_json_atomic(self.clips / f"{item['clip_id']}.json", item)

    def save_input(self, input_id: str, path_repr: str, clip_ids: list[str]) -> None:
        write_json_atomic(
            self.inputs / f"{input_id}.json",
            {"input_id": input_id, "path": path_repr, "clips": sorted(clip_ids)},
        )

    def finished(self) -> list[Item]:
        """Final items of every finished input, in input-id then clip-id order."""
        out: list[Item] = []
        if not self.inputs.is_dir():
            return out
        for rec_path in sorted(self.inputs.glob("*.json")):
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
            for clip_id in rec["clips"]:
                out.append(json.loads((self.clips / f"{clip_id}.json").read_text(encoding="utf-8")))
        return out

    def save_config(self, config_json: str) -> None:
        write_json_atomic(self.root / "config.json", json.loads(config_json))

    def saved_config(self) -> dict | None:
        p = self.root / "config.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


class Collector:
    """Receives final items in any order and closes an input once all of its clips are in."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.pending: dict[str, list[str]] = {}

    def add(self, item: Item) -> bool:
        """Save one final item; returns True when this completed its input."""
        self.state.save_clip(item)
        ids = self.pending.setdefault(item["input_id"], [])
        ids.append(item["clip_id"])
        expected = item.get("shot", {}).get("count", 1)
        if len(ids) >= expected:
            self.state.save_input(item["input_id"], item["rel"], ids)
            del self.pending[item["input_id"]]
            return True
        return False
