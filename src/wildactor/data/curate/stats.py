"""Table 1 statistics of a built dataset: region x source x count x F/S/B %, as Markdown, JSON and
a PNG bar chart (drawn with Pillow: no plotting library needed)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from wildactor.data.schema import ManifestRecord, view_bin

BIN_COLOURS = {"front": (66, 133, 244), "side": (251, 188, 5), "back": (219, 68, 55)}


def table1(records: list[ManifestRecord]) -> list[dict]:
    """Rows {region, source, count, front, side, back} (percent of refs with an angle), plus an
    'all' source row per region. References without an angle count in `count` only."""
    groups: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for rec in records:
        for ref in rec.refs:
            src = ref.source or "unknown"
            b = view_bin(ref.angle) if ref.angle is not None else "none"
            groups[(ref.region, src)][b] += 1
            groups[(ref.region, "all")][b] += 1
    order = {"self_crop": 0, "view_aug": 1, "attr_aug": 2, "canonical": 3, "all": 9}
    rows = []
    for (region, src), c in sorted(
        groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 5), kv[0][1])
    ):
        n = sum(c.values())
        binned = c["front"] + c["side"] + c["back"]
        pct = {b: round(100.0 * c[b] / binned, 1) if binned else None for b in ("front", "side", "back")}
        rows.append({"region": region, "source": src, "count": n, **pct})
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = ["| region | source | count | F % | S % | B % |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        cells = ["n/a" if r[b] is None else f"{r[b]:.1f}" for b in ("front", "side", "back")]
        lines.append(f"| {r['region']} | {r['source']} | {r['count']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(rows: list[dict], path: str | Path) -> None:
    """Stacked F/S/B bars, one per (region, source)."""
    from PIL import Image, ImageDraw

    rows = [r for r in rows if r["front"] is not None]
    bar_h, gap, left, width = 22, 8, 190, 420
    height = max(1, len(rows)) * (bar_h + gap) + 50
    img = Image.new("RGB", (left + width + 20, height), "white")
    d = ImageDraw.Draw(img)
    for i, r in enumerate(rows):
        y = 10 + i * (bar_h + gap)
        d.text((6, y + 5), f"{r['region']}/{r['source']} ({r['count']})", fill="black")
        x = left
        for b in ("front", "side", "back"):
            w = round(width * r[b] / 100.0)
            if w > 0:
                d.rectangle([x, y, x + w - 1, y + bar_h], fill=BIN_COLOURS[b])
            x += w
    y = height - 30
    for k, (b, col) in enumerate(BIN_COLOURS.items()):
        d.rectangle([left + k * 110, y, left + k * 110 + 14, y + 14], fill=col)
        d.text((left + k * 110 + 20, y + 2), b, fill="black")
    img.save(path)


def write_stats(records: list[ManifestRecord], out_dir: str | Path, extra: dict | None = None) -> list[dict]:
    out = Path(out_dir)
    rows = table1(records)
    (out / "table1.md").write_text(to_markdown(rows), encoding="utf-8")
    (out / "table1.json").write_text(json.dumps({"rows": rows, **(extra or {})}, indent=2), encoding="utf-8")
    bar_chart(rows, out / "table1.png")
    return rows
