"""Plot time against D at fixed N (benches/wide.sh) with the model min(N, D)^2 max(N, D).

Usage: python plot_time_vs_d.py TIMES.csv N OUT.svg

The model is scaled through the widest point; each point's measured/model ratio is printed.
Writes a standalone SVG (log-log axes) with the standard library only.
"""

import csv
import math
import sys


def model(n: int, d: int) -> float:
    """The cost model of the spectrum and class statistics: min(N, D)^2 max(N, D)."""
    return min(n, d) ** 2 * max(n, d)


def main() -> None:
    path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(path) as f:
        points = [(int(r["d"]), float(r["seconds"])) for r in csv.DictReader(f)]
    scale = points[-1][1] / model(n, points[-1][0])
    for d, seconds in points:
        print(f"D = {d:>6}: {seconds:8.2f} s, model {scale * model(n, d):8.2f} s, ratio {seconds / (scale * model(n, d)):.2f}")
    width, height, margin = 640, 420, 60
    xs = [math.log10(d) for d, _ in points]
    ys = [math.log10(s) for _, s in points] + [math.log10(scale * model(n, d)) for d, _ in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys) - 0.1, max(ys) + 0.1

    def at(d: float, s: float) -> str:
        x = margin + (math.log10(d) - x0) / (x1 - x0) * (width - 2 * margin)
        y = height - margin - (math.log10(s) - y0) / (y1 - y0) * (height - 2 * margin)
        return f"{x:.1f},{y:.1f}"

    measured = " ".join(at(d, s) for d, s in points)
    predicted = " ".join(at(d, scale * model(n, d)) for d, _ in points)
    ticks = "".join(
        f'<text x="{at(d, 10 ** y0).split(",")[0]}" y="{height - margin + 18}" font-size="11" text-anchor="middle">{d}</text>'
        for d, _ in points
    )
    labels = "".join(
        f'<text x="{margin - 6}" y="{at(points[0][0], s).split(",")[1]}" font-size="11" text-anchor="end">{s:g}</text>'
        for s in (0.1, 0.3, 1, 3, 10, 30, 100, 300)
        if y0 <= math.log10(s) <= y1
    )
    svg = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{width / 2}" y="24" font-size="14" text-anchor="middle">embgeom analyze, N = {n:,}: seconds against D (log-log)</text>
<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" y2="{height - margin}" stroke="black"/>
<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" stroke="black"/>
{ticks}{labels}
<text x="{width / 2}" y="{height - 16}" font-size="12" text-anchor="middle">D (dimensions)</text>
<polyline points="{predicted}" fill="none" stroke="#999" stroke-dasharray="5,4"/>
<polyline points="{measured}" fill="none" stroke="#1f77b4" stroke-width="2"/>
{"".join(f'<circle cx="{at(d, s).split(",")[0]}" cy="{at(d, s).split(",")[1]}" r="3" fill="#1f77b4"/>' for d, s in points)}
<text x="{width - margin}" y="{margin}" font-size="12" text-anchor="end" fill="#1f77b4">measured</text>
<text x="{width - margin}" y="{margin + 16}" font-size="12" text-anchor="end" fill="#777">min(N, D)^2 max(N, D), through the widest point</text>
</svg>
"""
    with open(out, "w") as f:
        f.write(svg)


if __name__ == "__main__":
    main()
