"""Report plots drawn with PIL (no plotting dependency): per-subject scores and score vs viewpoint.
A run whose metric is n/a gets the words "n/a: <why>" in its place, never a point."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

PALETTE = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (23, 190, 207),
]
BOUNDED = {"face", "body", "semantic", "copy_paste"}  # scores in [0, 1]


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _y_range(values: list[float], metric: str) -> tuple[float, float]:
    if metric in BOUNDED or not values:
        return 0.0, 1.0
    top = max(values) * 1.1
    return 0.0, top if top > 0 else 1.0


def _axes(d: ImageDraw.ImageDraw, box: tuple[int, int, int, int], lo: float, hi: float) -> None:
    x0, y0, x1, y1 = box
    d.line([(x0, y0), (x0, y1), (x1, y1)], fill=(0, 0, 0))
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = y1 - (y1 - y0) * k / 4
        d.line([(x0 - 4, y), (x0, y)], fill=(0, 0, 0))
        d.line([(x0 + 1, y), (x1, y)], fill=(230, 230, 230))
        d.text((x0 - 44, y - 6), f"{v:.3g}", fill=(0, 0, 0), font=_font())


def plot_per_subject(rep: dict[str, Any], metric: str, path: Path) -> None:
    """Strip plot: one column per run, a dot per subject, the mean as a bar and its 95% CI."""
    runs = rep["runs"]
    col_w, left, top, plot_h = 150, 60, 40, 260
    w, h = left + col_w * max(1, len(runs)) + 20, top + plot_h + 90
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    cells = [r["table2"]["all"]["all"].get(metric) for r in runs]
    vals = [v for c in cells if c and c["value"] is not None for v in c["per_subject"].values()]
    lo, hi = _y_range(vals, metric)
    box = (left, top, w - 20, top + plot_h)
    _axes(d, box, lo, hi)
    d.text((left, 10), f"{metric}: per-subject means (all items)", fill=(0, 0, 0), font=_font())

    def ypix(v: float) -> float:
        return box[3] - (min(max(v, lo), hi) - lo) / (hi - lo) * plot_h

    for i, (r, c) in enumerate(zip(runs, cells)):
        cx = left + col_w * i + col_w // 2
        colour = PALETTE[i % len(PALETTE)]
        d.text(
            (cx - col_w // 2 + 6, box[3] + 8), textwrap.shorten(r["method"], 22), fill=(0, 0, 0), font=_font()
        )
        if c is None or c["value"] is None:
            reason = "n/a: " + (c["na_reason"] if c else "metric not computed")
            for k, line in enumerate(textwrap.wrap(reason, 22)[:8]):
                d.text((cx - col_w // 2 + 6, top + 20 + 12 * k), line, fill=(120, 0, 0), font=_font())
            continue
        for k, v in enumerate(sorted(c["per_subject"].values())):
            jitter = ((k * 37) % 41 - 20) * 1.2
            y = ypix(v)
            d.ellipse([cx + jitter - 3, y - 3, cx + jitter + 3, y + 3], fill=colour)
        y = ypix(c["value"])
        d.line([(cx - 35, y), (cx + 35, y)], fill=(0, 0, 0), width=3)
        if c["ci95"]:
            d.line([(cx + 40, ypix(c["ci95"][0])), (cx + 40, ypix(c["ci95"][1]))], fill=(0, 0, 0), width=2)
        d.text((cx - col_w // 2 + 6, box[3] + 22), f"mean {c['value']:.3f}", fill=(0, 0, 0), font=_font())
    img.save(path)


def plot_by_view(rep: dict[str, Any], path: Path) -> None:
    """Body consistency vs viewpoint (front / side / back), one line per run."""
    views = ("front", "side", "back")
    left, top, plot_w, plot_h = 60, 40, 300, 260
    runs = rep["runs"]
    w, h = left + plot_w + 260, top + plot_h + 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    box = (left, top, left + plot_w, top + plot_h)
    _axes(d, box, 0.0, 1.0)
    d.text((left, 10), "body consistency vs viewpoint", fill=(0, 0, 0), font=_font())
    xs = [left + 40 + k * (plot_w - 80) / 2 for k in range(3)]
    for x, v in zip(xs, views):
        d.text((x - 12, box[3] + 8), v, fill=(0, 0, 0), font=_font())
    for i, r in enumerate(runs):
        colour = PALETTE[i % len(PALETTE)]
        pts = []
        for x, v in zip(xs, views):
            c = r["table3"][v]
            if c["value"] is not None:
                pts.append((x, box[3] - c["value"] * plot_h))
        if len(pts) > 1:
            d.line(pts, fill=colour, width=2)
        for x, y in pts:
            d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
        for x, v in zip(xs, views):
            ci = r["table3"][v]["ci95"]
            if r["table3"][v]["value"] is not None and ci:
                xo = x + 3 * (i - (len(runs) - 1) / 2)  # small offset so overlapping bars stay visible
                d.line([(xo, box[3] - ci[0] * plot_h), (xo, box[3] - ci[1] * plot_h)], fill=colour, width=1)
        whole = r["table3"]["all"]
        label = r["method"] + (
            f": all frames {whole['value']:.3f}" if whole["value"] is not None else ": n/a"
        )
        ly = top + 16 * i
        d.rectangle([box[2] + 16, ly + 2, box[2] + 26, ly + 12], fill=colour)
        d.text((box[2] + 32, ly), textwrap.shorten(label, 36), fill=(0, 0, 0), font=_font())
    notes = [
        f"{r['method']}: n/a: {r['table3']['all']['na_reason']}"
        for r in runs
        if r["table3"]["all"]["value"] is None
    ]
    y = top + 16 * len(runs) + 16
    for note in notes:
        for line in textwrap.wrap(note, 40)[:4]:
            d.text((box[2] + 16, y), line, fill=(120, 0, 0), font=_font())
            y += 12
        y += 4
    img.save(path)
