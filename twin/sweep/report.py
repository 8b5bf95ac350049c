"""The sweep's report: one HTML file with its plots embedded as PNG (matplotlib, Agg).

It names the cheapest design per PFLOP-day, its binding limit and its ratio to the
terrestrial reference, then shows each KPI against each parameter, a tornado of
sensitivities, the Pareto front of $/PFLOP-day against risk, and installed capacity,
delivered compute and cost over time.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from twin.sweep.spec import SweepSpec

LIFECYCLE_FIRST = ("accelerators_installed_count", "mass_in_orbit_kg", "reentries_count",
                   "propellant_used_kg", "battery_capacity_mean_frac")
"""The lifecycle totals plotted over time first, when a run published them."""
LIFECYCLE_LABELS = {
    "battery_capacity_mean_frac": "battery capacity left, mean over nodes in orbit",
    "array_health_mean_frac": "array output left, mean over nodes in orbit",
}
"""Panel titles that say more than the total's name: these means leave out re-entered
nodes, so they can rise when worn nodes come down."""
PRIMARY = "usd_per_pflop_day"
RISK = "violation_frac"
LABELS = {
    "usd_per_pflop_day": "$ per PFLOP-day", "space_over_terrestrial": "space ÷ terrestrial",
    "delivered_over_installed": "delivered ÷ installed", "violation_frac":
    "risk: node-time in battery/thermal violation", "usd_per_compute_kwh": "$ per kWh compute",
    "terrestrial_usd_per_pflop_day": "terrestrial $ per PFLOP-day", "cost_usd": "cost, $",
    "capex_usd": "capex, $", "node_wet_mass_kg": "node wet mass, kg",
    "launch_usd_per_kg": "launch $/kg", "pflop_days_useful": "useful PFLOP-days",
    "violation_probability": "risk: probability of a battery/thermal violation (over seeds)",
}


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


def _numeric(values: list[Any]) -> bool:
    return all(_finite(v) for v in values)


def designs(rows: list[dict[str, Any]], parameters: tuple[str, ...]) -> list[dict[str, Any]]:
    """Successful runs grouped by their parameter values (seeds pooled): mean KPIs, the
    probability of a violation over the seeds, the most frequent binding limit."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("status") == "ok":
            groups[tuple(repr(row.get(p)) for p in parameters)].append(row)
    out = []
    for members in groups.values():
        first = members[0]
        design = {p: first.get(p) for p in parameters}
        for key in first:
            values = [m.get(key) for m in members]
            if key not in design and _numeric(values):
                design[key] = float(np.mean(values))
        design["violation_probability"] = float(np.mean([bool(m.get("violation"))
                                                         for m in members]))
        for key in ("binding_limit", "binding_physical_limit"):
            design[key] = Counter(m.get(key) or "none" for m in members).most_common(1)[0][0]
        design["seeds"] = len(members)
        design["run_ids"] = [m["run_id"] for m in members]
        out.append(design)
    return sorted(out, key=lambda d: d.get(PRIMARY, math.inf))


def _kpi_vs_parameters(rows: list[dict[str, Any]], parameters: tuple[str, ...],
                       kpi: str) -> str:
    ok = [r for r in rows if r.get("status") == "ok" and _finite(r.get(kpi))]
    n = max(1, len(parameters))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2), squeeze=False, sharey=True)
    for ax, parameter in zip(axes[0], parameters or ("(none)",), strict=False):
        xs = [r.get(parameter) for r in ok]
        ys = [r[kpi] for r in ok]
        if _numeric(xs):
            ax.scatter(xs, ys, s=22, alpha=0.75, color="tab:blue")
        else:
            names = sorted({str(x) for x in xs})
            pos = {n: k for k, n in enumerate(names)}
            jitter = np.linspace(-0.12, 0.12, max(1, len(xs)))
            ax.scatter([pos[str(x)] + j for x, j in zip(xs, jitter, strict=True)], ys, s=22,
                       alpha=0.75, color="tab:orange")
            ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set_xlabel(parameter)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(LABELS.get(kpi, kpi))
    return _png(fig)


def sensitivities(rows: list[dict[str, Any]], parameters: tuple[str, ...],
                  kpi: str = PRIMARY) -> dict[str, tuple[float, float]]:
    """For each parameter, the KPI at its low and its high end: the mean KPI of the runs
    at its lowest and highest value (a grid, or a few values), else a straight-line fit
    over the runs evaluated at its 10th and 90th percentiles (Monte Carlo)."""
    ok = [r for r in rows if r.get("status") == "ok" and _finite(r.get(kpi))]
    out = {}
    for parameter in parameters:
        xs = [r.get(parameter) for r in ok]
        ys = np.array([r[kpi] for r in ok])
        distinct = sorted({repr(x) for x in xs})
        if len(distinct) < 2:
            continue
        if not _numeric(xs) or len(distinct) <= 8:
            means = {}
            for value in dict.fromkeys(repr(x) for x in xs):
                means[value] = float(np.mean([y for x, y in zip(xs, ys, strict=True)
                                              if repr(x) == value]))
            if _numeric(xs):
                ordered = sorted(means, key=float)
                out[parameter] = (means[ordered[0]], means[ordered[-1]])
            else:
                out[parameter] = (min(means.values()), max(means.values()))
            continue
        x = np.array(xs, dtype=float)
        slope, intercept = np.polyfit(x, ys, 1)
        low, high = np.percentile(x, [10.0, 90.0])
        out[parameter] = (float(slope * low + intercept), float(slope * high + intercept))
    return out


def _tornado(rows: list[dict[str, Any]], parameters: tuple[str, ...], kpi: str) -> str | None:
    spans = sensitivities(rows, parameters, kpi)
    if not spans:
        return None
    ordered = sorted(spans, key=lambda p: abs(spans[p][1] - spans[p][0]))
    centre = float(np.median([r[kpi] for r in rows if r.get("status") == "ok"
                              and _finite(r.get(kpi))]))
    fig, ax = plt.subplots(figsize=(7.5, 0.6 * len(ordered) + 1.6))
    for k, parameter in enumerate(ordered):
        low, high = spans[parameter]
        ax.barh(k, low - centre, left=centre, color="tab:blue", alpha=0.8,
                label="at low value" if k == 0 else None)
        ax.barh(k, high - centre, left=centre, color="tab:red", alpha=0.8,
                label="at high value" if k == 0 else None)
    ax.axvline(centre, color="black", lw=1)
    ax.set_yticks(range(len(ordered)), ordered)
    ax.set_xlabel(f"{LABELS.get(kpi, kpi)} (median of runs {centre:,.4g})")
    ax.set_title("Sensitivity (tornado): the KPI at each parameter's low and high end")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (lower is better on both)."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any((ox <= x and oy <= y) and (ox < x or oy < y) for ox, oy in points):
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def _pareto(design_rows: list[dict[str, Any]], parameters: tuple[str, ...]) -> str | None:
    # With several seeds per design the risk is the probability of a violation over the
    # seeds; with one seed, or where every design has the same probability, the share of
    # node-time in violation (a probability of 0 or 1 for all says little).
    probabilities = {d.get("violation_probability") for d in design_rows}
    several = any(d.get("seeds", 1) > 1 for d in design_rows)
    risk = "violation_probability" if several and len(probabilities) > 1 else RISK
    usable = [d for d in design_rows if _finite(d.get(PRIMARY)) and _finite(d.get(risk))]
    if not usable:
        return None
    points = [(d[risk], d[PRIMARY]) for d in usable]
    front = pareto_front(points)
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=26, color="tab:gray",
               alpha=0.7, label="designs (mean over seeds)", zorder=1)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "o-",
            color="tab:red", label="Pareto front")
    for k, i in enumerate(front[:6]):  # staggered, so neighbours on the front stay legible
        text = ", ".join(f"{p.split('.')[-1]}={_short(usable[i].get(p))}" for p in parameters)
        ax.annotate(text, points[i], fontsize=7, xytext=(6, 10 + 14 * k),
                    textcoords="offset points", arrowprops={"arrowstyle": "-", "lw": 0.5})
    ax.set_xlabel(LABELS[risk])
    ax.set_ylabel(LABELS[PRIMARY])
    ax.set_title("Cost against risk")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def _duration(seconds: float) -> str:
    if seconds >= 86400.0:
        return f"{seconds / 86400.0:g} days"
    return f"{seconds / 3600.0:g} h"


def _short(value: Any) -> str:
    return f"{value:.6g}" if _finite(value) else str(value)


def _over_time(series: list[dict[str, Any]], best: dict[str, Any] | None) -> str | None:
    if not series:
        return None
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in series:
        by_run[s["run_id"]].append(s)
    best_ids = set(best["run_ids"]) if best else set()
    found = {k for s in series for k in s if k not in (
        "run_id", "t_s", "working_pflop_s", "delivered_pflop_s", "accelerators_failed",
        "useful_pflop_days", "cost_usd", "contact_node_s") and s.get(k) is not None}
    lifecycle = [k for k in LIFECYCLE_FIRST if k in found] + sorted(found - set(
        LIFECYCLE_FIRST))
    panels = [("working_pflop_s", "installed compute (working accelerators), PFLOP/s"),
              ("delivered_pflop_s", "delivered compute, PFLOP/s"),
              ("cost_usd", "cost so far, $"),
              *((k, LIFECYCLE_LABELS.get(k, k)) for k in lifecycle[:3])]
    columns = min(3, len(panels))
    rows_n = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows_n, columns, figsize=(4.6 * columns, 3.3 * rows_n),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (key, label) in zip(axes.flat, panels, strict=False):
        for run, rows in by_run.items():
            t = [r["t_s"] / 86400.0 for r in rows if r.get(key) is not None]
            y = [r[key] for r in rows if r.get(key) is not None]
            mine = run in best_ids
            ax.plot(t, y, color="tab:red" if mine else "tab:gray", lw=1.6 if mine else 0.6,
                    alpha=1.0 if mine else 0.4, zorder=3 if mine else 1)
        ax.set_xlabel("simulated days")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle("Over the simulated life (red: the cheapest design)")
    return _png(fig)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_short(r.get(c)))}</td>"
                                    for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(spec: SweepSpec, rows: list[dict[str, Any]], series: list[dict[str, Any]],
                 path: Path) -> Path:
    """Write the report for ``rows`` (runs.parquet rows) to ``path``; returns it."""
    parameters = spec.parameters
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    ranked = designs(rows, parameters)
    best = ranked[0] if ranked else None
    lifecycle = any(r.get("lifecycle_modelled") for r in ok)
    parts = [f"<h1>Sweep {html.escape(spec.name)}</h1>",
             f"<p>Base scenario <code>{html.escape(spec.scenario_source)}</code>, "
             f"{_duration(spec.duration_s)} simulated at {spec.step_s:g} s steps, "
             f"{spec.mode.replace('_', ' ')}; {len(rows)} runs: {len(ok)} ok, "
             f"{len(failed)} failed.</p>"]
    if best:
        setting = ", ".join(f"<code>{html.escape(p)}</code> = {html.escape(_short(best[p]))}"
                            for p in parameters) or "the base scenario"
        parts.append(
            f"<div class='best'><b>Cheapest design per PFLOP-day:</b> {setting}: "
            f"<b>${best[PRIMARY]:,.0f} per PFLOP-day</b> (mean of {best['seeds']} seed(s)); "
            f"binding limit <b>{html.escape(best['binding_limit'])}</b>"
            + (f" (first limit of the fleet itself: <b>"
               f"{html.escape(best['binding_physical_limit'])}</b>)"
               if best["binding_limit"] == "demand" else "") + "; "
            f"<b>{best.get('space_over_terrestrial', math.nan):.1f}×</b> the terrestrial "
            f"reference (${best.get('terrestrial_usd_per_pflop_day', math.nan):,.0f} per "
            "PFLOP-day).</div>")
    safe = [d for d in ranked if d.get("violation_probability") == 0.0]
    if best and safe and safe[0] is not best:
        low = safe[0]
        setting = ", ".join(f"<code>{html.escape(p)}</code> = {html.escape(_short(low[p]))}"
                            for p in parameters)
        parts.append(
            f"<p><b>Cheapest design with no battery or thermal violation:</b> {setting}: "
            f"${low[PRIMARY]:,.0f} per PFLOP-day, binding limit "
            f"{html.escape(low['binding_limit'])}, "
            f"{low.get('space_over_terrestrial', math.nan):.1f}× the terrestrial "
            "reference.</p>")
    parts.append("<p>" + ("Lifecycle totals (ageing, decay, disposal) were published and "
                          "are plotted over time." if lifecycle else
                          "No ageing modelled: installed capacity changes only through "
                          "failures the run itself raises.") + "</p>")
    images = []
    for kpi in spec.kpis:
        images.append((f"{LABELS.get(kpi, kpi)} against each parameter",
                       _kpi_vs_parameters(rows, parameters, kpi)))
    for title, image in (("Tornado of sensitivities", _tornado(rows, parameters, PRIMARY)),
                         ("Pareto front", _pareto(ranked, parameters)),
                         ("Over time", _over_time(series, best))):
        if image:
            images.append((title, image))
    for title, image in images:
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
                     f"src='data:image/png;base64,{image}'>")
    columns = [*parameters, PRIMARY, "space_over_terrestrial", "delivered_over_installed",
               RISK, "violation_probability", "binding_limit", "binding_physical_limit",
               "seeds"]
    parts.append("<h2>Designs, cheapest first</h2>" + _table(ranked[:20], columns))
    if failed:
        parts.append("<h2>Failed runs</h2>" + _table(failed, ["run_id", *parameters, "seed",
                                                               "error"]))
    style = ("body{font-family:sans-serif;margin:24px;max-width:1500px;color:#222}"
             "img{max-width:100%;border:1px solid #ddd;margin:6px 0}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
             "padding:3px 7px;text-align:right}.best{background:#eef6ee;padding:10px;"
             "border-left:4px solid #2a2;font-size:15px}")
    text = (f"<!doctype html><html><head><meta charset='utf-8'><title>Sweep "
            f"{html.escape(spec.name)}</title><style>{style}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
    path.write_text(text, encoding="utf-8")
    return path
