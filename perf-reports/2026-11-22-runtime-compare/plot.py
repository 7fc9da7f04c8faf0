#!/usr/bin/env python3
"""Plots of the runtime comparison from run-1.json and run-2.json (standard library only).

- ratios.svg: glommio's cost relative to compio for every metric, run 1 and run 2 side by side.
  Cost is glommio/compio for latency and CPU rows and compio/glommio for throughput rows, so
  above 1 always means glommio is worse.
- repetitions.svg: the per-repetition values of the metrics that reproduce (p50 round trips,
  CPU per round trip, 4 KiB write + fdatasync p50 and CPU), one dot per repetition.
Usage: plot.py [DIR]  (DIR holds run-*.json; the SVGs are written there)."""
import json
import math
import os
import sys

here = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
runs = [json.load(open(os.path.join(here, f"run-{n}.json"))) for n in (1, 2)]
COLORS = {"run 1": "#1f77b4", "run 2": "#ff7f0e", "compio": "#2ca02c", "glommio": "#d62728"}


def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cost(row):
    ratio = row["ratio_glommio_over_compio"]
    return 1 / ratio if row["higher_is_better"] else ratio


def ratios_svg():
    metrics = [row["metric"] for row in runs[0]["medians"]]
    by_run = [{row["metric"]: cost(row) for row in run["medians"]} for run in runs]
    left, width, bar, gap = 300, 460, 9, 8
    top = 50
    height = top + len(metrics) * (2 * bar + gap) + 60
    lo, hi = math.log2(0.25), math.log2(4)

    def x(value):
        v = min(max(math.log2(value), lo), hi)
        return left + (v - lo) / (hi - lo) * width

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 40}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="10" y="18" font-size="13">glommio 0.9 cost relative to compio 0.19.2, '
        "medians of 5 repetitions (log scale; &gt; 1: glommio worse)</text>",
        '<text x="10" y="34">latency and CPU: glommio / compio; throughput: compio / glommio'
        "</text>",
    ]
    for tick in (0.25, 0.5, 1, 2, 4):
        out.append(
            f'<line x1="{x(tick):.1f}" y1="{top - 8}" x2="{x(tick):.1f}" y2="{height - 45}" '
            f'stroke="{"#000" if tick == 1 else "#ddd"}"/>'
        )
        out.append(f'<text x="{x(tick):.1f}" y="{height - 30}" text-anchor="middle">{tick}×</text>')
    y = top
    for metric in metrics:
        out.append(f'<text x="{left - 6}" y="{y + bar + 3}" text-anchor="end">{esc(metric)}</text>')
        for index, name in enumerate(("run 1", "run 2")):
            value = by_run[index].get(metric)
            if value is None:
                continue
            x0, x1 = sorted((x(1), x(value)))
            out.append(
                f'<rect x="{x0:.1f}" y="{y + index * bar}" width="{max(x1 - x0, 1):.1f}" '
                f'height="{bar - 1}" fill="{COLORS[name]}"><title>{esc(metric)} {name}: '
                f"{value:.2f}</title></rect>"
            )
        y += 2 * bar + gap
    for index, name in enumerate(("run 1", "run 2")):
        out.append(
            f'<rect x="{left + index * 80}" y="{height - 18}" width="10" height="10" '
            f'fill="{COLORS[name]}"/><text x="{left + index * 80 + 14}" y="{height - 9}">{name}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


PANELS = [
    ("tcp 1 conn p50 (µs)", lambda r: r["tcp_1_connection"]["latency"]["p50_us"]),
    ("tcp 16 conn p50 (µs)", lambda r: r["tcp_16_connections"]["latency"]["p50_us"]),
    ("tcp 1 conn server CPU/round trip (µs)", lambda r: r["tcp_1_connection"]["server_cpu"]["cpu_us_per_operation"]),
    ("tcp 16 conn server CPU/round trip (µs)", lambda r: r["tcp_16_connections"]["server_cpu"]["cpu_us_per_operation"]),
    ("4K write+fdatasync p50 (µs)", lambda r: r["write_fdatasync_4k"]["latency"]["p50_us"]),
    ("4K write+fdatasync CPU/iteration (µs)", lambda r: r["write_fdatasync_4k"]["cpu"]["cpu_us_per_operation"]),
]


def repetitions_svg():
    panel_w, panel_h, cols = 300, 150, 3
    rows = math.ceil(len(PANELS) / cols)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{cols * panel_w + 20}" '
        f'height="{rows * panel_h + 60}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="10" y="18" font-size="13">Every repetition (5 per runtime per run; run 1 left, '
        "run 2 right of each column)</text>",
    ]
    for index, (title, get) in enumerate(PANELS):
        px = 10 + (index % cols) * panel_w
        py = 40 + (index // cols) * panel_h
        values = {
            (rt, n): [get(r) for r in run["runs"] if r["runtime"] == rt]
            for n, run in enumerate(runs)
            for rt in ("compio", "glommio")
        }
        top = max(v for vs in values.values() for v in vs) * 1.1
        plot_h = panel_h - 45
        out.append(f'<text x="{px}" y="{py}">{esc(title)}</text>')
        out.append(
            f'<line x1="{px + 40}" y1="{py + 8 + plot_h}" x2="{px + panel_w - 20}" '
            f'y2="{py + 8 + plot_h}" stroke="#999"/>'
        )
        out.append(f'<text x="{px + 36}" y="{py + 12}" text-anchor="end">{top:,.0f}</text>')
        out.append(f'<text x="{px + 36}" y="{py + 8 + plot_h}" text-anchor="end">0</text>')
        for column, rt in enumerate(("compio", "glommio")):
            cx = px + 70 + column * 110
            out.append(
                f'<text x="{cx + 15}" y="{py + plot_h + 24}" text-anchor="middle" '
                f'fill="{COLORS[rt]}">{rt}</text>'
            )
            for n in range(len(runs)):
                for value in values[(rt, n)]:
                    cy = py + 8 + plot_h - value / top * plot_h
                    out.append(
                        f'<circle cx="{cx + n * 30}" cy="{cy:.1f}" r="3.5" fill="{COLORS[rt]}" '
                        f'fill-opacity="0.6"><title>{rt} run {n + 1}: {value:.1f}</title></circle>'
                    )
    out.append("</svg>")
    return "\n".join(out)


for name, svg in (("ratios.svg", ratios_svg()), ("repetitions.svg", repetitions_svg())):
    with open(os.path.join(here, name), "w") as f:
        f.write(svg + "\n")
    print("wrote", os.path.join(here, name))
