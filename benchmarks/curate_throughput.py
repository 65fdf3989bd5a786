"""Curation throughput with the offline defaults: clips per minute per core, stage by stage, and the
Ray executor with 2 workers vs 1; plus, on ActorWorld input, the viewpoint confusion matrix against
true yaw and the Table 1 shares before and after View-Aug.

Stage timing runs every stage in one process with one thread on the same inputs (astronaut clips,
2 s, 192 px, 8 fps), so clips/min/core = clips entering the stage / stage seconds * 60. The Ray runs
time a whole build on a fresh local Ray instance (start-up included and reported separately).

    python benchmarks/curate_throughput.py --out benchmarks/results/curate_cpu.json [--ray] [--world]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine_info


def make_inputs(folder: Path, n: int) -> None:
    from wildactor.data.curate.synthetic import astronaut_frames, write_video

    for i in range(n):
        write_video(folder / f"astro_{i:02d}.mp4", astronaut_frames(16, seed=i, drift=1.0 + (i % 4) / 2))


def stage_throughput(folder: Path, out: Path) -> dict:
    from wildactor.data.curate.config import CurateConfig
    from wildactor.data.curate.pipeline import discover_inputs, make_stages

    cfg = CurateConfig()
    stages = make_stages(cfg, str(out))
    items = discover_inputs(folder, cfg.extensions)
    result = {}
    for st in stages:
        t0 = time.perf_counter()
        st.setup()
        st._ready = True
        setup_s = time.perf_counter() - t0
        live = sum(1 for it in items if not it.get("reject"))
        t0 = time.perf_counter()
        items = st(items)
        sec = time.perf_counter() - t0
        result[st.name] = {
            "clips": live,
            "seconds": round(sec, 3),
            "setup_seconds": round(setup_s, 3),
            # a stage that did no work (e.g. augment with editor "none") has no throughput
            "clips_per_min_per_core": round(live / sec * 60, 1) if sec > 1e-3 and live else None,
        }
    total = sum(r["seconds"] for r in result.values())
    n = result["probe"]["clips"]
    result["all_stages"] = {
        "clips": n,
        "seconds": round(total, 3),
        "clips_per_min_per_core": round(n / total * 60, 1),
    }
    return result


def ray_scaling(folder: Path) -> dict:
    import ray

    from wildactor.data.curate.config import CurateConfig
    from wildactor.data.curate.pipeline import build

    out = {}
    for workers in (1, 2):
        dst = Path(tempfile.mkdtemp(prefix=f"curate_ray{workers}_"))
        t0 = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        init_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = build(folder, dst, CurateConfig(), executor="ray", workers=workers, progress=False)
        run_s = time.perf_counter() - t0
        ray.shutdown()
        out[f"workers_{workers}"] = {
            "ray_init_seconds": round(init_s, 2),
            "build_seconds": round(run_s, 2),
            "clips_kept": summary["clips_kept"],
            "clips_per_min": round(summary["inputs"] / run_s * 60, 1),
        }
        shutil.rmtree(dst, ignore_errors=True)
    out["speedup_2_vs_1"] = round(out["workers_1"]["build_seconds"] / out["workers_2"]["build_seconds"], 2)
    return out


WORLD_SCENES = ("studio", "beach", "snow", "night")  # the backdrops of the ActorWorld measurements


def world_report(n_front: int = 10, n_any: int = 6) -> dict:
    from wildactor.data.curate.config import load_config
    from wildactor.data.curate.pipeline import build
    from wildactor.data.curate.synthetic import world_clip
    from wildactor.data.schema import VIEW_BINS, read_manifest, view_bin
    from wildactor.errors import WildActorError

    try:
        from wildactor.world.probes import default_probe_dir, load_probes

        probes = load_probes()
    except (ImportError, WildActorError) as exc:
        return {"viewpoint": f"n/a: {exc}"}
    probe_info = {
        "folder": str(default_probe_dir()),
        "card_heldout_view_accuracy": probes.card.get("heldout_frame_accuracy", {})
        .get("clean", {})
        .get("view"),
    }
    src = Path(tempfile.mkdtemp(prefix="curate_world_in_"))
    dst = Path(tempfile.mkdtemp(prefix="curate_world_out_"))
    rng = np.random.default_rng(0)
    scenes, motions = WORLD_SCENES, ("idle", "wave")
    for i in range(n_front + n_any):
        yaw = float(rng.uniform(-35, 35) % 360 if i < n_front else rng.uniform(0, 360))
        world_clip(src / f"single_{i:02d}.mp4", 1000 + i, yaw=yaw, motion=motions[i % 2], scene=scenes[i % 4])
    for i in range(3):
        world_clip(
            src / f"pair_{i}.mp4", 2000 + i, yaw=float(rng.uniform(0, 360)), scene=scenes[i], partner=3000 + i
        )
    t0 = time.perf_counter()
    summary = build(src, dst, load_config("configs/curate/actorworld.yaml"), progress=False)
    sec = time.perf_counter() - t0
    conf = np.zeros((3, 3), dtype=int)
    for rec in read_manifest(dst / "manifest.jsonl"):
        frames = json.loads((src / (rec.extra["source_video"] + ".json")).read_text())["frames"]
        for ref in rec.refs:
            if ref.source == "self_crop":
                true = view_bin(frames[min(ref.source_frame, len(frames) - 1)]["yaw"])
                conf[VIEW_BINS.index(true), VIEW_BINS.index(view_bin(ref.angle))] += 1
    table = json.loads((dst / "table1.json").read_text())["rows"]
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(dst, ignore_errors=True)
    return {
        "backends": "detect=silhouette identity=appearance viewpoint=world_probe editor=world",
        "world_probe": probe_info,
        "summary": summary,
        "build_seconds": round(sec, 2),
        "viewpoint_confusion": {"rows_true_cols_pred": list(VIEW_BINS), "matrix": conf.tolist()},
        "viewpoint_agreement": round(float(np.trace(conf) / conf.sum()), 4),
        "table1": table,
    }


def person_filter_report(per_motion: int = 12, pairs: int = 8) -> dict:
    """The person filter on ActorWorld renders: single-actor clips by motion (idle, wave, walk in place) and
    two-actor clips, through `configs/curate/actorworld.yaml` (no editor: the filter is what is measured)."""
    import pyarrow.parquet as pq

    from wildactor.data.curate.config import load_config
    from wildactor.data.curate.pipeline import build
    from wildactor.data.curate.synthetic import world_clip
    from wildactor.data.schema import read_manifest

    src = Path(tempfile.mkdtemp(prefix="curate_people_in_"))
    dst = Path(tempfile.mkdtemp(prefix="curate_people_out_"))
    rng = np.random.default_rng(1)
    scenes, motions = WORLD_SCENES, ("idle", "wave", "walk_in_place")
    kinds, shots = {}, {}
    for m, motion in enumerate(motions):
        for i in range(per_motion):
            name = f"{motion}_{i:02d}"
            yaw = float(rng.uniform(0, 360))
            world_clip(src / f"{name}.mp4", 4000 + 100 * m + i, yaw=yaw, motion=motion, scene=scenes[i % 4])
            kinds[name] = motion
            shots[name] = {"scene": scenes[i % 4], "yaw": round(yaw)}
    for i in range(pairs):
        name = f"pair_{i:02d}"
        world_clip(
            src / f"{name}.mp4",
            5000 + i,
            yaw=float(rng.uniform(0, 360)),
            scene=scenes[i % 4],
            partner=6000 + i,
        )
        kinds[name] = "two actors"
        shots[name] = {"scene": scenes[i % 4]}
    cfg = load_config("configs/curate/actorworld.yaml", {"augment.editor": "none"})
    t0 = time.perf_counter()
    build(src, dst, cfg, progress=False)
    sec = time.perf_counter() - t0
    rejects = [r for r in pq.read_table(dst / "rejects.parquet").to_pylist() if r["kind"] == "clip"]
    by_kind: dict[str, dict] = {k: {"clips": 0, "kept": 0, "rejected": {}} for k in (*motions, "two actors")}
    for kind in kinds.values():
        by_kind[kind]["clips"] += 1
    rejected = []
    for r in rejects:  # a clip reject's path is its input's (relative) file name
        name = Path(r["path"]).name.removesuffix(".mp4")
        kind = kinds[name]
        if kind != "two actors" or r["reason"] != "multi_person":
            rejected.append({"clip": name, **shots[name], "reason": r["reason"], "detail": r["detail"]})
        by_kind[kind]["rejected"][r["reason"]] = by_kind[kind]["rejected"].get(r["reason"], 0) + 1
    for rec in read_manifest(dst / "manifest.jsonl"):
        by_kind[kinds[rec.extra["source_video"].removesuffix(".mp4")]]["kept"] += 1
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(dst, ignore_errors=True)
    return {
        "config": "configs/curate/actorworld.yaml, augment.editor=none",
        "clips": "ActorWorld renders, 128 px, 16 frames at 8 fps, any yaw, studio/beach/snow/night",
        "build_seconds": round(sec, 2),
        "by_kind": by_kind,
        "unexpected_rejects": rejected,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--ray", action="store_true", help="also time the Ray executor with 2 workers vs 1")
    ap.add_argument("--world", action="store_true", help="also score viewpoint labels on ActorWorld")
    ap.add_argument(
        "--person-filter", action="store_true", help="only the person filter on ActorWorld renders"
    )
    ap.add_argument("--out", default="benchmarks/results/curate_cpu.json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.person_filter:
        report = {"machine": machine_info(threads=1), "person_filter": person_filter_report()}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return
    folder = Path(tempfile.mkdtemp(prefix="curate_bench_in_"))
    out = Path(tempfile.mkdtemp(prefix="curate_bench_out_"))
    make_inputs(folder, args.clips)
    report = {
        "machine": machine_info(threads=1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],  # a shared machine is noisy
        "inputs": f"{args.clips} astronaut clips, 2 s, 192x192, 8 fps",
    }
    report["stages"] = stage_throughput(folder, out)
    if args.ray:
        report["ray"] = ray_scaling(folder)
    if args.world:
        report["actorworld"] = world_report()
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
