"""Table 3 / Table 4 analogues on ActorWorld: compare models trained with one change each, on the same actors.

Each input is a result JSON of `benchmarks/default_model_eval.py` (same ``--actors``, so the same held-out
actors, prompts and seeds). For every variant: body consistency with references (mean, 95 % bootstrap CI over
actors), by read viewpoint (front / side / back), and the paired difference to the reference variant (the
first one given), also with a bootstrap CI over actors.

Inputs written by `benchmarks/reference_use.py` are compared on its identity gain at each noise level instead
(same held-out clips and noise for every variant; paired differences over actors).

    python benchmarks/ablations.py --table table4 \\
        "AIPA + I-RoPE=benchmarks/results/ablation_main.json" \\
        "full attention=benchmarks/results/ablation_full.json" \\
        "AIPA, shared RoPE=benchmarks/results/ablation_shared.json" \\
        --out benchmarks/results/ablations_table4.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from wildactor.bench.report import VIEWS, bootstrap_ci


def _fmt(mean: float | None, ci: tuple[float, float] | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{mean:.3f}"


def _mean_ci(values: list[float | None]) -> dict:
    kept = [v for v in values if v is not None]
    return {"mean": float(np.mean(kept)) if kept else None, "ci95": bootstrap_ci(kept), "actors": len(kept)}


def compare_reference_use(variants: dict[str, dict]) -> dict:
    """{name: reference_use JSON} -> identity gain per noise level, and paired differences to the first."""
    names = list(variants)
    base = variants[names[0]]["per_actor"]
    keys = [k for k in next(iter(base.values())) if k.startswith("identity_gain@")]
    table = {}
    for name in names:
        rows = variants[name]["per_actor"]
        if set(rows) != set(base):
            raise SystemExit(f"{name}: judged other actors than {names[0]} (use the same --clips)")
        entry = {"model": variants[name]["model"]}
        for key in keys:
            entry[key] = _mean_ci([rows[a][key] for a in rows])
            if name != names[0]:
                entry[f"{key} minus {names[0]}"] = _mean_ci([rows[a][key] - base[a][key] for a in rows])
        table[name] = entry
    return table


def markdown_reference_use(table: dict) -> str:
    names = list(table)
    keys = [k for k in table[names[0]] if k.startswith("identity_gain@")]
    head = (
        "| variant | " + " | ".join(keys) + " | " + " | ".join(f"{k} minus {names[0]}" for k in keys) + " |"
    )
    lines = [head, "|" + "---|" * (1 + 2 * len(keys))]
    for name, e in table.items():
        cells = [_fmt(e[k]["mean"], e[k]["ci95"]) for k in keys]
        for k in keys:
            d = e.get(f"{k} minus {names[0]}")
            cells.append(_fmt(d["mean"], d["ci95"]) if d else "—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(variants: dict[str, dict]) -> dict:
    """{name: eval JSON} -> per-variant scores and paired differences to the first variant."""
    names = list(variants)
    base_rows = {r["actor_id"]: r for r in variants[names[0]]["per_actor"]}
    table = {}
    for name in names:
        rows = {r["actor_id"]: r for r in variants[name]["per_actor"]}
        if set(rows) != set(base_rows):
            raise SystemExit(f"{name}: judged other actors than {names[0]} (use the same --actors)")
        entry = {
            "model": variants[name]["model"],
            "with_references": _mean_ci([r["wildactor"] for r in rows.values()]),
            "no_reference": _mean_ci(
                [r.get("no_reference") for r in rows.values()]
            ),  # v2: the base, not judged
            "by_view": {v: _mean_ci([r["wildactor_by_view"].get(v) for r in rows.values()]) for v in VIEWS},
        }
        if name != names[0]:
            diffs = [rows[a]["wildactor"] - base_rows[a]["wildactor"] for a in rows]
            entry["minus_" + names[0]] = _mean_ci(diffs)
            entry["minus_by_view"] = {}
            for v in VIEWS:
                paired = [
                    rows[a]["wildactor_by_view"].get(v) - base_rows[a]["wildactor_by_view"].get(v)
                    for a in rows
                    if rows[a]["wildactor_by_view"].get(v) is not None
                    and base_rows[a]["wildactor_by_view"].get(v) is not None
                ]
                entry["minus_by_view"][v] = _mean_ci(paired)
        table[name] = entry
    return table


def markdown(table: dict) -> str:
    names = list(table)
    head = "| variant | with references | no references | front | side | back | minus " + names[0] + " |"
    lines = [head, "|" + "---|" * 7]
    for name, e in table.items():
        diff = e.get("minus_" + names[0])
        cells = [
            _fmt(e["with_references"]["mean"], e["with_references"]["ci95"]),
            _fmt(e["no_reference"]["mean"], e["no_reference"]["ci95"]),
            *(_fmt(e["by_view"][v]["mean"], e["by_view"][v]["ci95"]) for v in VIEWS),
            _fmt(diff["mean"], diff["ci95"]) if diff else "—",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", metavar="NAME=RESULT_JSON", help="the reference variant first")
    parser.add_argument("--table", required=True, help="a name for the comparison (table3, table4)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    variants = {}
    for item in args.variants:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected NAME=RESULT_JSON")
        variants[name] = json.loads(Path(path).read_text())
    if all(v.get("benchmark") == "reference_use" for v in variants.values()):
        table = compare_reference_use(variants)
        md = markdown_reference_use(table)
    else:
        table = compare(variants)
        md = markdown(table)
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "benchmark": f"ablations_{args.table}",
            "inputs": dict(i.partition("=")[::2] for i in args.variants),
        }
        args.out.write_text(json.dumps({**result, "table": table, "markdown": md}, indent=2) + "\n")


if __name__ == "__main__":
    main()
