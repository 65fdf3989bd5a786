"""`wildactor data build | stats | rejects | calibrate`: build an Actor-18M-style dataset from videos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wildactor.errors import WildActorError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    b = sub.add_parser(
        "build", help="videos -> filtered single-person clips + references + manifest (resumable)"
    )
    b.add_argument("input", help="folder of raw videos (searched recursively)")
    b.add_argument("--out", "-o", required=True, help="output folder (rerun with the same folder to resume)")
    b.add_argument("--config", help="YAML settings (e.g. configs/curate/actorworld.yaml); default: built-in")
    b.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. detect.backend=yolo",
    )
    b.add_argument("--executor", choices=("local", "ray"), default="local")
    b.add_argument(
        "--workers", type=int, default=1, help="worker processes (local) or actors per stage (ray)"
    )
    b.add_argument("--address", help="Ray cluster address (e.g. auto); default: a local Ray instance")
    b.add_argument("--limit", type=int, help="only the first N inputs (sorted by path)")
    b.add_argument("--no-progress", action="store_true")
    b.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="follow symbolic links that lead out of the input folder (default: list them as rejects)",
    )
    s = sub.add_parser("stats", help="print the Table 1 statistics and the run summary of a build")
    s.add_argument("out", help="output folder of a build")
    s.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    r = sub.add_parser("rejects", help="list rejected clips and dropped references")
    r.add_argument("out", help="output folder of a build")
    r.add_argument("--stage", help="only this stage")
    r.add_argument("--reason", help="only this reason")
    r.add_argument("--kind", choices=("clip", "reference"), help="only clips or only references")
    c = sub.add_parser(
        "calibrate", help="measure the dlib face-similarity threshold on faces that ship in packages"
    )
    c.add_argument("--json", action="store_true")


def printable(text: str | None) -> str:
    """One field of a tab-separated line: tabs, newlines and other control characters in a file name
    or a message shown escaped (\\t, \\n, \\x1b), so every row stays one line of fixed columns."""
    out = []
    for ch in text or "":
        if ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _overrides(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise WildActorError(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(args: argparse.Namespace) -> int:
    cmd = getattr(args, "data_command", None)
    if cmd == "build":
        from wildactor.data.curate.config import load_config
        from wildactor.data.curate.pipeline import build

        if args.workers < 1:
            raise WildActorError("--workers must be >= 1")
        config = load_config(args.config, _overrides(args.set))
        summary = build(
            args.input,
            args.out,
            config,
            executor=args.executor,
            workers=args.workers,
            address=args.address,
            limit=args.limit,
            progress=not args.no_progress,
            allow_outside_root=args.allow_outside_root,
        )
        print(json.dumps(summary, indent=2))
        print(f"manifest: {Path(args.out) / 'manifest.jsonl'}")
        return 0
    if cmd == "stats":
        out = Path(args.out)
        if not (out / "table1.json").is_file():
            raise WildActorError(f"no build found in {out} (table1.json missing)")
        if args.json:
            print((out / "table1.json").read_text(encoding="utf-8"))
        else:
            print((out / "table1.md").read_text(encoding="utf-8"))
            print(json.dumps(json.loads((out / "summary.json").read_text(encoding="utf-8")), indent=2))
        return 0
    if cmd == "rejects":
        import pyarrow.parquet as pq

        path = Path(args.out) / "rejects.parquet"
        if not path.is_file():
            raise WildActorError(f"no rejects table in {args.out}")
        rows = pq.read_table(path).to_pylist()
        for key in ("stage", "reason", "kind"):
            want = getattr(args, key)
            if want:
                rows = [r for r in rows if r[key] == want]
        for r in rows:
            fields = (r["kind"], r["stage"], r["reason"], r["path"], r["detail"])
            print("\t".join(printable(f) for f in fields))
        print(f"{len(rows)} row(s)")
        return 0
    if cmd == "calibrate":
        from wildactor.data.curate.calibrate import calibrate_dlib

        result = calibrate_dlib()
        print(
            json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items())
        )
        return 0
    raise WildActorError("usage: wildactor data build|stats|rejects|calibrate (see --help)")
