"""`wildactor bench report --format opens2v`: runs in OpenS2V-Eval's own terms.

For each run: the per-metric JSON files OpenS2V's scripts write (`aesthetic_score.json`, `facesim.json`,
`gmescore.json`, `motion_amplitude.json`, `motion_smoothness.json`, `naturalscore_1.json`, `nexusscore.json`;
same keys, so OpenS2V's `merge_result.py` reads them too), the merged normalised scores
(`<method>_<Domain>-Domain.json`), and for all runs one `results_<Domain>-Domain.csv` in the leaderboard's
columns followed by labelled extra columns (FaceSim both ways, coverage, what is missing, what is not
comparable). TotalScore is computed only when every metric its domain weighs is present, else "n/a" with the
missing ones named. Per-metric JSON of OpenS2V's own scripts can be merged in (`--opens2v-json DIR`); its
values replace this project's for that metric.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from wildactor.bench.opens2v import LEADERBOARD_COLUMNS, METRIC_KEYS, WEIGHTS, domain_of_suite, total_score
from wildactor.bench.report import load_run
from wildactor.errors import WildActorError

DOMAIN_TITLES = {"human": "Human-Domain", "single": "Single-Domain", "open": "Open-Domain"}
# OpenS2V file name, and its value key -> our metric key.
FILES: dict[str, dict[str, str]] = {
    "aesthetic_score.json": {"aes_score": "aes_score"},
    "facesim.json": {
        "cur_score": "facesim_cur",
        "arc_score": "facesim_arc",
        "arc_score_drop0": "facesim_arc_drop0",
        "cur_score_keep0": "facesim_cur_keep0",
    },
    "gmescore.json": {"gme_score": "gme_score"},
    "motion_amplitude.json": {"motion_fb": "motion_amplitude"},
    "motion_smoothness.json": {"motion_smoothness": "motion_smoothness"},
    "nexusscore.json": {"nexus_score": "nexus_score"},
}
FACESIM_EXTRA = {
    "facesim_arc": "FaceSim-Arc (OpenS2V as coded: zero frames kept)",
    "facesim_arc_drop0": "FaceSim-Arc (corrected: zero frames dropped, as for Cur)",
    "facesim_cur_keep0": "FaceSim-Cur (zero frames kept)",
}
JUDGED = {"natural_score": "NaturalScore", "motion_smoothness": "MotionSmoothness"}


def run_values(
    items: list[dict[str, Any]],
) -> tuple[dict[str, dict[str, float]], dict[str, str], dict[str, str]]:
    """({case: {metric: value}}, {metric: back-end}, {metric: an n/a reason}) of a run's scored items."""
    values: dict[str, dict[str, float]] = {}
    backends: dict[str, str] = {}
    reasons: dict[str, str] = {}
    keys = set(METRIC_KEYS) | set(FACESIM_EXTRA)
    for rec in items:
        cid = rec["item"]["item_id"]
        for k, m in rec["metrics"].items():
            if k not in keys:
                continue
            backends.setdefault(k, m["backend"])
            if m.get("value") is None:
                reasons.setdefault(k, m.get("na_reason", "n/a"))
            else:
                values.setdefault(cid, {})[k] = float(m["value"])
    return values, backends, reasons


def read_opens2v_jsons(folder: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """{case: {metric: value}} from OpenS2V's per-metric files in `folder` (NaturalScore: mean of the runs)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WildActorError(f"OpenS2V result folder not found: {folder}")
    out: dict[str, dict[str, float]] = {}
    found = False
    for fname, keys in FILES.items():
        path = folder / fname
        if not path.is_file():
            continue
        found = True
        for cid, d in _load(path).items():
            for src, dst in keys.items():
                if isinstance(d, dict) and isinstance(d.get(src), (int, float)):
                    out.setdefault(cid, {})[dst] = float(d[src])
    natural: dict[str, list[float]] = {}
    for path in sorted(folder.glob("naturalscore_*.json")):
        found = True
        for cid, v in _load(path).items():
            try:
                natural.setdefault(cid, []).append(float(v))
            except (TypeError, ValueError):
                continue  # OpenS2V writes "error" for a failed call; merge_result.py cannot read those either
    for cid, vs in natural.items():
        out.setdefault(cid, {})["natural_score"] = sum(vs) / len(vs)
    if not found:
        raise WildActorError(
            f"{folder} holds none of OpenS2V's result files ({', '.join(FILES)}, naturalscore_*.json)"
        )
    return out


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WildActorError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise WildActorError(f"{path}: expected a mapping of case ids")
    return data


def write_opens2v_jsons(values: dict[str, dict[str, float]], out: Path) -> None:
    """The per-metric files, in OpenS2V's layout (only the cases that have the value)."""
    out.mkdir(parents=True, exist_ok=True)
    for fname, keys in FILES.items():
        data = {
            cid: {src: v[dst] for src, dst in keys.items() if dst in v}
            for cid, v in sorted(values.items())
            if any(dst in v for dst in keys.values())
        }
        if data:
            (out / fname).write_text(json.dumps(data, indent=4) + "\n")
    nat = {cid: v["natural_score"] for cid, v in sorted(values.items()) if "natural_score" in v}
    if nat:
        (out / "naturalscore_1.json").write_text(json.dumps(nat, indent=4) + "\n")


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def opens2v_summary(
    values: dict[str, dict[str, float]], domain: str, reasons: dict[str, str]
) -> dict[str, Any]:
    """Normalised metrics, TotalScore (or None) and, per missing metric, why."""
    norm, total, missing = total_score(values, domain)
    extra = {}
    for k in FACESIM_EXTRA:
        vals = [min(v[k], 1.0) for v in values.values() if k in v]
        extra[k] = sum(vals) / len(vals) if vals else None
    return {
        "total_score": total,
        **norm,
        **extra,
        "missing_for_total": {k: reasons.get(k, "no case has this metric") for k in missing},
        "n_cases": len(values),
    }


def write_opens2v_report(
    run_folders: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    domain: str | None = None,
    opens2v_json: list[str] | None = None,
    venue: str = "",
    evaluated_by: str = "WildActor bench",
    leaderboard: str | None = None,
) -> dict[str, Any]:
    """Write the per-metric JSON, merged JSON and leaderboard CSV of each run; returns {method: summary}.

    `leaderboard`: a copy of OpenS2V's `results_<Domain>.csv`; its published rows are appended (as published)
    below the runs, for side-by-side comparison."""
    runs = [load_run(f) for f in run_folders]
    if opens2v_json and len(opens2v_json) != len(runs):
        raise WildActorError(
            f"--opens2v-json: give one folder per run ({len(runs)} runs, {len(opens2v_json)} folders)"
        )
    if domain is None:
        metas = [json.loads((Path(f) / "run.json").read_text()) for f in run_folders]
        found = {domain_of_suite(m.get("suite", "")) for m in metas}
        if len(found) != 1 or None in found:
            raise WildActorError(
                "cannot tell the OpenS2V domain from the runs' suites; give --domain human|single|open"
            )
        domain = found.pop()
    if domain not in WEIGHTS:
        raise WildActorError(f"unknown domain {domain!r} (human | single | open)")
    title = DOMAIN_TITLES[domain]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, Any] = {}
    for k, run in enumerate(runs):
        values, backends, reasons = run_values(run.items)
        merged_from: list[str] = []
        if opens2v_json:
            for cid, d in read_opens2v_jsons(opens2v_json[k]).items():
                values.setdefault(cid, {}).update(d)
                merged_from += [m for m in d if m not in merged_from]
        write_opens2v_jsons(values, out / run.method)
        s = opens2v_summary(values, domain, reasons)
        s["backends"] = backends
        s["from_opens2v_json"] = sorted(merged_from)
        s["not_comparable"] = [
            f"{label}: {backends[k]} is a local judge, not the leaderboard's"
            for k, label in JUDGED.items()
            if k in backends and k not in merged_from and s.get(k) is not None
        ]
        (out / f"{run.method}_{title}.json").write_text(json.dumps(s, indent=4) + "\n")
        summaries[run.method] = s | {"params": run.params}
    cols = [k for k in LEADERBOARD_COLUMNS if k in WEIGHTS[domain]]
    header = ["Model", "Venue", "Evaluated by", "TotalScore↑"] + [LEADERBOARD_COLUMNS[k] for k in cols]
    header += list(FACESIM_EXTRA.values()) + ["Cases scored", "Missing for TotalScore", "Not comparable"]
    published = _published_rows(leaderboard, header[: 4 + len(cols)]) if leaderboard else []
    with open(out / f"results_{title}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for method, s in summaries.items():
            missing = "; ".join(f"{k}: {why}" for k, why in s["missing_for_total"].items())
            w.writerow(
                [method, venue, evaluated_by, _pct(s["total_score"])]
                + [_pct(s[k]) for k in cols]
                + [_pct(s[k]) for k in FACESIM_EXTRA]
                + [s["n_cases"], missing, "; ".join(s["not_comparable"])]
            )
        for row in published:
            w.writerow(row + [""] * (len(header) - len(row)))
    return summaries


def _published_rows(path: str, columns: list[str]) -> list[list[str]]:
    """The rows of a leaderboard CSV whose header starts with `columns` (the same domain's layout)."""
    p = Path(path)
    if not p.is_file():
        raise WildActorError(f"leaderboard CSV not found: {p}")
    with open(p, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][: len(columns)] != columns:
        got = rows[0][: len(columns)] if rows else []
        raise WildActorError(f"{p}: expected the leaderboard columns {columns}, got {got}")
    return [r[: len(columns)] for r in rows[1:] if r]
