"""Executors: the same stage objects run in a local process pool or as Ray Data actor pools.

local: each worker process builds the stages once (``setup`` loads models once per worker) and runs
one input through the whole chain at a time; the parent writes results (one writer) and shows one
progress bar per stage (items that entered the stage).

ray: one ``map_batches`` per stage over a dataset of JSON-encoded items, each stage an actor pool of
``workers`` actors with the CPU/GPU resources the stage declares (scaled to fit on a local instance); the driver writes results as they
stream out. Stages turn bad inputs into rejects instead of raising, so no block fails.
"""

from __future__ import annotations

import json
import multiprocessing as mp

from wildactor.data.curate.chain import STAGE_NAMES, make_stages, run_chain
from wildactor.data.curate.config import CurateConfig
from wildactor.data.curate.stage import Item
from wildactor.data.curate.store import Collector, RunState
from wildactor.errors import WildActorError

_WORKER: dict = {}


def _init_worker(config_json: str, out_dir: str) -> None:
    _WORKER["stages"] = make_stages(CurateConfig.from_dict(json.loads(config_json)), out_dir)


def _work(item: Item) -> tuple[list[Item], dict[str, int]]:
    return run_chain(_WORKER["stages"], item)


def _bars(names: tuple[str, ...], total: int, enabled: bool) -> dict:
    from tqdm.auto import tqdm

    return {
        n: tqdm(total=total, desc=f"{n:>9}", position=i, unit="clip", disable=not enabled, leave=True)
        for i, n in enumerate(names)
    }


def run_local(
    config: CurateConfig,
    out_dir: str,
    pending: list[Item],
    state: RunState,
    workers: int = 1,
    progress: bool = True,
) -> None:
    collector = Collector(state)
    bars = _bars(STAGE_NAMES, len(pending), progress)

    finished = [0]

    def record(result: tuple[list[Item], dict[str, int]]) -> None:
        items, seen = result
        finished[0] += 1
        remaining = len(pending) - finished[0]
        for name, n in seen.items():
            # a stage's total: clips that reached it so far + inputs still to come (rejects never arrive)
            bars[name].total = bars[name].n + n + remaining
            bars[name].update(n)
        for it in items:
            collector.add(it)

    try:
        if workers <= 1:
            stages = make_stages(config, out_dir)
            for it in pending:
                record(run_chain(stages, it))
        else:
            ctx = mp.get_context("spawn")  # a clean interpreter per worker: no forked model state
            with ctx.Pool(workers, initializer=_init_worker, initargs=(config.to_json(), out_dir)) as pool:
                for result in pool.imap_unordered(_work, pending, chunksize=1):
                    record(result)
    finally:
        for b in bars.values():
            b.close()


class _RayStage:
    """A Ray Data callable class: builds one stage per actor, maps batches of JSON items."""

    def __init__(self, stage_name: str, config_json: str, out_dir: str) -> None:
        stages = make_stages(CurateConfig.from_dict(json.loads(config_json)), out_dir)
        self.stage = next(s for s in stages if s.name == stage_name)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        items = [json.loads(s) for s in batch["item"]]
        out = self.stage(items)
        return {"item": np.array([json.dumps(it, ensure_ascii=True) for it in out], dtype=object)}


def run_ray(
    config: CurateConfig,
    out_dir: str,
    pending: list[Item],
    state: RunState,
    workers: int = 2,
    address: str | None = None,
    progress: bool = True,
) -> None:
    try:
        import ray
    except ImportError:
        raise WildActorError('--executor ray needs Ray Data: pip install "ray[data]"') from None
    if not pending:
        return
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=max(1, workers),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.max_errored_blocks = -1  # a failing block must not abort 1.6M videos; stages reject instead
        stages = make_stages(config, out_dir)
        # On a local Ray instance every stage's pool shares `workers` CPUs, so the declared CPUs are
        # scaled down to fit (resources are logical); on a cluster the declared values hold.
        cpu_scale = 1.0 if address else 1.0 / len(stages)
        ds = ray.data.from_items(
            [{"item": json.dumps(it, ensure_ascii=True)} for it in pending],
            override_num_blocks=max(1, min(len(pending), 4 * max(1, workers))),
        )
        for st in stages:
            ds = ds.map_batches(
                _RayStage,
                fn_constructor_args=(st.name, config.to_json(), out_dir),
                batch_size=st.batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
                num_cpus=st.resources()["num_cpus"] * cpu_scale,
                num_gpus=st.resources()["num_gpus"],
            )
        collector = Collector(state)
        for row in ds.iter_rows():
            collector.add(json.loads(row["item"]))
    finally:
        if started:
            ray.shutdown()
