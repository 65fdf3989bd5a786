"""Actor-Bench report: several runs side by side in the paper's Table 2 layout (per axis and setting) and
the Table 3 layout (body consistency by viewpoint), as Markdown + CSV + JSON, plus PNG plots (drawn with
PIL: per-subject scores and score vs viewpoint).

Aggregation: items -> per-subject mean -> mean over subjects, with a bootstrap 95% CI over subjects.
An n/a metric stays "n/a: <why>" in every format; it is never averaged in as a number.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wildactor.bench.spec import AXES, SETTINGS
from wildactor.data.schema import VIEW_BINS
from wildactor.errors import WildActorError

METRICS: tuple[str, ...] = (
    "face",
    "body",
    "semantic",
    "copy_paste",
    "motion",
    "pose_spread",
    "body_vlm",
    "semantic_vlm",
    "semantic_clip",
)
HEADERS = {
    "face": "Face",
    "body": "Body",
    "semantic": "Semantic",
    "body_vlm": "Body (VLM)",
    "semantic_vlm": "Semantic (VLM)",
    "semantic_clip": "Semantic (CLIP)",
    "copy_paste": "Copy-paste (lower)",
    "motion": "Motion",
    "pose_spread": "Pose spread (deg)",
}
VIEWS = VIEW_BINS  # Table 3 columns
ALL = "all"


def bootstrap_ci(
    values: Any, n: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean of `values` (one value per subject). None for no values."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None
    if v.size == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n, v.size))].mean(axis=1)  # (n,)
    a = (1.0 - level) / 2.0
    return float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))


@dataclass
class Cell:
    """One aggregated number (or n/a) of a table."""

    value: float | None
    ci: tuple[float, float] | None = None
    n_subjects: int = 0
    n_items: int = 0
    backend: str = ""
    na_reason: str | None = None
    per_subject: dict[str, float] = field(default_factory=dict)

    def format(self, digits: int = 3) -> str:
        if self.value is None:
            return f"n/a: {self.na_reason}"
        s = f"{self.value:.{digits}f}"
        if self.ci is not None and self.n_subjects > 1:
            s += f" [{self.ci[0]:.{digits}f}, {self.ci[1]:.{digits}f}]"
        return s

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "ci95": list(self.ci) if self.ci else None,
            "n_subjects": self.n_subjects,
            "n_items": self.n_items,
            "backend": self.backend,
            "na_reason": self.na_reason,
            "display": self.format(),
            "per_subject": self.per_subject,
        }


@dataclass
class Run:
    folder: Path
    method: str
    params: str
    backends: dict[str, str]
    items: list[dict[str, Any]]
    suite_items: int | None = None  # items in the whole suite (None: a run written before this was recorded)
    realism: dict[str, Any] | None = None  # OUT/realism.json (ActorWorld: the set-level Fréchet distance)


def load_run(folder: str | os.PathLike[str]) -> Run:
    folder = Path(folder)
    run_file = folder / "run.json"
    if not run_file.is_file():
        raise WildActorError(f"{folder} is not a bench run folder (run.json missing)")
    meta = json.loads(run_file.read_text())
    items = [json.loads(p.read_text()) for p in sorted((folder / "items").glob("*.json"))]
    if not items:
        raise WildActorError(f"{folder} has no scored items yet (run `wildactor bench run` first)")
    suite_items = meta.get("suite_items")
    realism_file = folder / "realism.json"
    realism = json.loads(realism_file.read_text()) if realism_file.is_file() else None
    return Run(
        folder, meta["method"], meta.get("params", ""), meta.get("backends", {}), items, suite_items, realism
    )


def _aggregate(values: dict[str, list[float]], na: Counter, backends: Counter, n_items: int) -> Cell:
    per_subject = {s: float(np.mean(v)) for s, v in values.items() if v}
    backend = backends.most_common(1)[0][0] if backends else ""
    if not per_subject:
        reason = na.most_common(1)[0][0] if na else "no items"
        return Cell(None, backend=backend, na_reason=reason, n_items=n_items)
    subj = list(per_subject.values())
    return Cell(
        float(np.mean(subj)),
        bootstrap_ci(subj),
        n_subjects=len(subj),
        n_items=n_items,
        backend=backend,
        per_subject=per_subject,
    )


def aggregate(run: Run, metric: str, axis: str = ALL, setting: str = ALL, view: str | None = None) -> Cell:
    """Mean over subjects of per-subject means of one metric (optionally one viewpoint of `by_view`)."""
    values: dict[str, list[float]] = {}
    na: Counter = Counter()
    backends: Counter = Counter()
    n = 0
    for rec in run.items:
        it = rec["item"]
        if (axis != ALL and it["axis"] != axis) or (setting != ALL and it["setting"] != setting):
            continue
        m = rec["metrics"].get(metric)
        if m is None:
            continue
        n += 1
        backends[m["backend"]] += 1
        v = m.get("value") if view is None else (m.get("by_view") or {}).get(view)
        if m.get("value") is None:
            na[m.get("na_reason", "n/a")] += 1
        elif v is not None:
            values.setdefault(it["subject"], []).append(float(v))
    if view is not None and not values and not na:
        na[f"no frames read as {view}"] += 1
    return _aggregate(values, na, backends, n)


def present_metrics(runs: list[Run]) -> list[str]:
    seen = {k for r in runs for rec in r.items for k in rec["metrics"]}
    return [m for m in METRICS if m in seen]


def build_report(runs: list[Run]) -> dict[str, Any]:
    """Every table cell of every run, JSON-ready."""
    metrics = present_metrics(runs)
    out: dict[str, Any] = {"metrics": metrics, "runs": []}
    for run in runs:
        axes = [a for a in AXES if any(rec["item"]["axis"] == a for rec in run.items)]
        settings = [s for s in SETTINGS if any(rec["item"]["setting"] == s for rec in run.items)]
        table2 = {
            axis: {
                setting: {m: aggregate(run, m, axis, setting).to_json() for m in metrics}
                for setting in settings + [ALL]
            }
            for axis in axes + [ALL]
        }
        table3 = {v: aggregate(run, "body", view=v).to_json() for v in VIEWS}
        # Whole clips, every view: not the mean of the view columns, which pool only the frames read as that view.
        table3["all"] = aggregate(run, "body").to_json()
        out["runs"].append(
            {
                "method": run.method,
                "params": run.params,
                "folder": str(run.folder),
                "backends": run.backends,
                "n_items": len(run.items),
                "suite_items": run.suite_items,
                "partial": run.suite_items is not None and len(run.items) < run.suite_items,
                "table2": table2,
                "table3": table3,
                "realism": run.realism,
            }
        )
    return out


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


class _Notes:
    """Long n/a reasons become numbered notes under the tables, so the cells stay readable."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def cell(self, c: dict[str, Any]) -> str:
        if c["value"] is not None:
            return c["display"]
        reason = c["na_reason"] or "n/a"
        if len(reason) <= 40:
            return f"n/a: {reason}"
        if reason not in self.reasons:
            self.reasons.append(reason)
        return f"n/a [{self.reasons.index(reason) + 1}]"

    def lines(self) -> list[str]:
        return [f"[{k + 1}] n/a: {r}  " for k, r in enumerate(self.reasons)]


def report_markdown(rep: dict[str, Any]) -> str:
    metrics = rep["metrics"]
    notes = _Notes()
    lines = ["# Actor-Bench report", ""]
    lines.append(
        "Mean over subjects of per-subject means; [95% bootstrap CI over subjects]. Copy-paste: lower is better."
    )
    lines.append("")
    for r in rep["runs"]:
        if r.get("partial"):
            lines += [
                f"**Partial run: {r['method']}** scored {r['n_items']} of the suite's {r['suite_items']} items "
                "(a --subjects / --limit subset or an unfinished run); its numbers are not the full benchmark.",
                "",
            ]
    axes = [a for a in list(AXES) + [ALL] if any(a in r["table2"] for r in rep["runs"])]
    titles = {
        "contextual": "Contextual Generalization",
        "narrative": "Sequential Narrative",
        ALL: "All items",
    }
    for axis in axes:
        lines += [f"## Table 2 layout: {titles[axis]}", ""]
        lines.append("| Method | Params | Setting | " + " | ".join(HEADERS[m] for m in metrics) + " |")
        lines.append("|" + "---|" * (3 + len(metrics)))
        for r in rep["runs"]:
            for setting, cells in r["table2"].get(axis, {}).items():
                row = [r["method"], r["params"] or "-", setting] + [notes.cell(cells[m]) for m in metrics]
                lines.append("| " + " | ".join(_md_escape(str(c)) for c in row) + " |")
        lines.append("")
    lines += ["## Table 3 layout: body consistency by viewpoint (all items)", ""]
    lines.append("| Method | Front | Side | Back | All frames |")
    lines.append("|---|---|---|---|---|")
    for r in rep["runs"]:
        t3 = r["table3"]
        lines.append(
            "| "
            + " | ".join(_md_escape(c) for c in [r["method"]] + [notes.cell(t3[k]) for k in (*VIEWS, "all")])
            + " |"
        )
    lines += [
        "",
        "Front / Side / Back pool the frames the judge reads as that view; All frames scores whole clips (every "
        "view), so it is not the mean of the three view columns.",
    ]
    lines += _realism_lines(rep["runs"])
    if notes.reasons:
        lines += ["", "Notes:", ""] + notes.lines()
    lines += ["", "## Back-ends", ""]
    for r in rep["runs"]:
        be = ", ".join(f"{k}: {v}" for k, v in r["backends"].items())
        used = {m: r["table2"][ALL][ALL][m]["backend"] for m in metrics}
        lines.append(
            f"- **{r['method']}** ({r['n_items']} items{' of ' + str(r['suite_items']) if r.get('partial') else ''}, "
            f"`{r['folder']}`): metric back-ends "
            + ", ".join(f"{m}={b}" for m, b in used.items())
            + f"; configured: {be}"
        )
    lines.append("")
    return "\n".join(lines)


def _realism_lines(runs: list[dict[str, Any]]) -> list[str]:
    """The realism table (ActorWorld runs): each run's Fréchet distance to the real clips of its prompts, next to
    the floor its set size gives. Nothing when no run wrote `realism.json`."""
    if not any(r.get("realism") for r in runs):
        return []
    lines = ["", "## Realism: Fréchet distance to the real clips (lower is better)", ""]
    lines += ["| Method | Fréchet distance | Floor (other actors) | Clips |", "|---|---|---|---|"]
    for r in runs:
        rz = r.get("realism")
        if not rz:
            cells = ["n/a: no realism.json (not an ActorWorld run)", "-", "-"]
        else:
            cells = [
                rz["frechet_distance"]["display"]
                if rz["frechet_distance"]["value"] is not None
                else f"n/a: {rz['frechet_distance'].get('na_reason', 'n/a')}",
                rz["floor"]["display"] if rz["floor"]["value"] is not None else "n/a",
                str(rz["clips"]),
            ]
        lines.append("| " + " | ".join(_md_escape(c) for c in [r["method"], *cells]) + " |")
    lines += [
        "",
        "Biased upward for small sets: compare runs of the same suite. The floor is the distance of the same real "
        "clips played by other actors (a model that ignores the references, perfectly).",
    ]
    return lines


def write_csvs(rep: dict[str, Any], out: Path) -> None:
    cols = ["method", "params", "axis", "setting", "metric", "backend", "value", "ci_low", "ci_high",
            "n_subjects", "n_items", "display"]  # fmt: skip
    with open(out / "table2.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rep["runs"]:
            for axis, by_setting in r["table2"].items():
                for setting, cells in by_setting.items():
                    for m, c in cells.items():
                        ci = c["ci95"] or [None, None]
                        w.writerow([r["method"], r["params"], axis, setting, m, c["backend"],
                                    "n/a" if c["value"] is None else c["value"], ci[0], ci[1],
                                    c["n_subjects"], c["n_items"], c["display"]])  # fmt: skip
    with open(out / "table3.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "params", "view", "value", "ci_low", "ci_high", "n_subjects", "display"])
        for r in rep["runs"]:
            for view, c in r["table3"].items():
                ci = c["ci95"] or [None, None]
                w.writerow([r["method"], r["params"], view, "n/a" if c["value"] is None else c["value"],
                            ci[0], ci[1], c["n_subjects"], c["display"]])  # fmt: skip


def write_report(run_folders: list[str | os.PathLike[str]], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Load runs, write report.md, table2.csv, table3.csv, report.json and the PNG plots into `out`."""
    from wildactor.bench.plots import plot_by_view, plot_per_subject

    runs = [load_run(f) for f in run_folders]
    names = [r.method for r in runs]
    if len(set(names)) != len(names):
        raise WildActorError(
            f"two runs share a method name ({', '.join(names)}); rerun one with --method NAME"
        )
    rep = build_report(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(report_markdown(rep))
    (out / "report.json").write_text(json.dumps(rep, indent=1) + "\n")
    write_csvs(rep, out)
    for m in rep["metrics"]:
        plot_per_subject(rep, m, out / f"per_subject_{m}.png")
    plot_by_view(rep, out / "body_by_view.png")
    return rep
