"""ActorWorld renderer speed: frames per second on one core, at several sizes, one and two actors.

Each setting renders a turn-around sweep (every frame a new yaw and pose) over a lit scene; the median
of several repeats is kept, so a busy machine shows as spread, not as a biased number.

    OMP_NUM_THREADS=1 python benchmarks/render_speed.py --out benchmarks/results/render_cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import machine_info
from wildactor.world.actors import Actor
from wildactor.world.body import BodyState
from wildactor.world.camera import Camera
from wildactor.world.motions import Motion
from wildactor.world.renderer import render_scene
from wildactor.world.scenes import Scene

SIZES = (32, 64, 128, 256)


def frames_per_second(size: int, actors: int, frames: int, repeats: int) -> tuple[float, list[float]]:
    motion = Motion("turn_around", yaw=0.0, sweep=360.0)
    cast = [Actor.from_id(i) for i in range(actors)]
    scene = Scene(kind="city_street", lighting="daylight")
    camera = Camera()
    states = motion.states(frames)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in states:
            placements = [
                (
                    a,
                    BodyState(
                        yaw=s.yaw + 40 * i,
                        position=(0.5 * i - 0.25 * (actors - 1), 0.0, -0.3 * i),
                        pose=s.pose,
                    ),
                )
                for i, a in enumerate(cast)
            ]
            render_scene(placements, scene, camera, size)
        rates.append(frames / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    results = []
    for actors in (1, 2):
        for size in SIZES:
            frames = args.frames if size <= 128 else max(10, args.frames // 4)
            fps, rates = frames_per_second(size, actors, frames, args.repeats)
            row = {
                "size": size,
                "actors": actors,
                "fps_median": round(fps, 1),
                "fps_runs": [round(r, 1) for r in rates],
            }
            print(row)
            results.append(row)
    report = {
        "benchmark": "actorworld_render_speed",
        "target": ">= 200 frames/s at 64x64, one actor, one core",
        "machine": machine_info(threads=1),
        "note": "2 cores shared with other jobs while measured; medians of repeats",
        "results": results,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
