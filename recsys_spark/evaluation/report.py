"""The self-contained HTML report of an evaluation, rendered from metrics.json alone.

Plots are PNG images inlined as base64, so report.html opens anywhere without its
folder. Each plot whose data is missing shows the reason instead. Plots need matplotlib,
a dependency of the package; where it fails to import, every plot shows that reason and
the tables remain.
"""

from __future__ import annotations

import base64
import html
import io as stdio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

STAGE_LABELS = {
    "two_tower": "two-tower candidates",
    "retrieval": "all candidates (retrieval order)",
    "ranked": "ranked (before rules)",
    "final": "final (after rules)",
}
STAGE_ORDER = ("two_tower", "retrieval", "ranked", "final")
TABLE_METRICS = ("ndcg", "recall", "precision", "map", "mrr", "hit_rate")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.missing { color: #8a6d3b; background: #fcf8e3; padding: 0.6em; border: 1px solid #faebcc; }
figure { margin: 1em 0; }
"""


class NotAvailable(Exception):
    """Error raised by a plot function whose data is missing; the message gives the reason."""


def _figure():
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise NotAvailable(
            "matplotlib is not installed; install it with pip install 'matplotlib>=3.8'"
        ) from error
    return Figure(figsize=(7, 4), dpi=100, layout="constrained")


def _png(figure) -> str:
    buffer = stdio.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _section(metrics: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = metrics.get(key)
    if not isinstance(section, Mapping):
        raise NotAvailable(f"metrics.json has no {key!r} section")
    if "not_available" in section:
        raise NotAvailable(str(section["not_available"]))
    return section


def plot_recall_by_stage(metrics: Mapping[str, Any]):
    accuracy = _section(metrics, "accuracy")
    ks = metrics.get("ks") or []
    figure = _figure()
    axes = figure.add_subplot()
    for stage in STAGE_ORDER:
        values = accuracy.get(stage)
        if not isinstance(values, Mapping):
            continue
        points = [(k, values.get(f"recall_at_{k}")) for k in ks]
        points = [(k, v) for k, v in points if v is not None]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", label=STAGE_LABELS.get(stage, stage))
    recall = metrics.get("candidate_recall")
    if isinstance(recall, Mapping) and recall.get("candidate_recall") is not None:
        axes.axhline(
            recall["candidate_recall"],
            linestyle="--",
            color="grey",
            label="all candidates (ceiling)",
        )
    if not axes.lines:
        raise NotAvailable("no stage has recall values")
    axes.set_xlabel("K")
    axes.set_ylabel("recall@K")
    axes.set_xticks(list(ks))
    axes.set_title("Recall@K per stage")
    axes.legend()
    return figure


def plot_long_tail(metrics: Mapping[str, Any]):
    profile = _section(metrics, "popularity_profile")
    bins = profile.get("bins") or []
    if not bins:
        raise NotAvailable("the popularity profile is empty")
    figure = _figure()
    axes = figure.add_subplot()
    positions = [row["bin"] for row in bins]
    width = 0.4
    axes.bar(
        [p - width / 2 for p in positions],
        [row["catalog_share"] for row in bins],
        width,
        label="catalog videos",
    )
    axes.bar(
        [p + width / 2 for p in positions],
        [row["recommendation_share"] for row in bins],
        width,
        label=f"recommended slots (top {profile.get('k')})",
    )
    axes.set_xlabel("popularity percentile bin (0 = least popular)")
    axes.set_ylabel("share")
    axes.set_title("Popularity of recommendations vs the catalog")
    axes.legend()
    return figure


def plot_lorenz(metrics: Mapping[str, Any]):
    exposure = _section(metrics, "exposure")
    curves = {
        stage: exposure[stage]
        for stage in ("ranked", "final")
        if isinstance(exposure.get(stage), Mapping)
    }

    def has_curve(units: Mapping[str, Any], unit: str) -> bool:
        curve = units.get(unit)
        return isinstance(curve, Mapping) and bool(curve.get("lorenz"))

    # One unit for every stage, so the curves share an x axis: creators when known.
    unit = next(
        (
            candidate
            for candidate in ("creator", "video")
            if curves and all(has_curve(units, candidate) for units in curves.values())
        ),
        None,
    )
    if unit is None:
        raise NotAvailable("no exposure was recorded for creators or videos")
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="equal exposure")
    for stage, units in curves.items():
        curve = units[unit]
        xs, ys = zip(*curve["lorenz"], strict=True)
        axes.plot(xs, ys, label=f"{STAGE_LABELS[stage]} (Gini {curve['gini']:.3f})")
    axes.set_xlabel(f"share of {unit}s, least exposed first")
    axes.set_ylabel("share of recommendation slots")
    axes.set_title(f"Exposure Lorenz curve per {unit}")
    axes.legend()
    return figure


def plot_ann_tradeoff(metrics: Mapping[str, Any]):
    ann = _section(metrics, "ann")
    points = ann.get("points") or []
    if not points:
        raise NotAvailable("the index metadata has no recall points")
    figure = _figure()
    axes = figure.add_subplot()
    points = sorted(points, key=lambda point: point["x"])
    axes.plot([p["x"] for p in points], [p["recall"] for p in points], marker="o")
    for point in points:
        axes.annotate(point["label"], (point["x"], point["recall"]), fontsize=8)
    axes.set_xlabel(ann.get("x_label", "query cost"))
    axes.set_ylabel("recall against exact search")
    axes.set_title(f"ANN recall vs query cost (index {ann.get('index_version', '?')})")
    return figure


def plot_rule_effects(metrics: Mapping[str, Any]):
    rules = _section(metrics, "rules").get("rules") or {}
    if not rules:
        raise NotAvailable("the run summary lists no rules")
    figure = _figure()
    axes = figure.add_subplot()
    names = sorted(rules)
    colors = ["tab:orange" if rules[n]["action"] == "demoted" else "tab:blue" for n in names]
    axes.barh(names, [rules[n]["rows"] for n in names], color=colors)
    axes.set_xlabel("candidate rows removed (blue) or demoted (orange)")
    axes.set_title("Rule effects")
    return figure


PLOTS: Sequence[tuple[str, Callable]] = (
    ("Recall@K per stage", plot_recall_by_stage),
    ("Long-tail popularity", plot_long_tail),
    ("Creator exposure", plot_lorenz),
    ("ANN recall vs query time", plot_ann_tradeoff),
    ("Rule effects", plot_rule_effects),
)


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_number(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _accuracy_tables(metrics: Mapping[str, Any]) -> str:
    accuracy = metrics.get("accuracy")
    if not isinstance(accuracy, Mapping) or "not_available" in accuracy:
        reason = accuracy.get("not_available") if isinstance(accuracy, Mapping) else "missing"
        return f'<p class="missing">Accuracy not available: {html.escape(str(reason))}</p>'
    parts = []
    for k in metrics.get("ks") or []:
        header = ["stage"] + [f"{name}@{k}" for name in TABLE_METRICS] + ["users"]
        rows = [
            [STAGE_LABELS.get(stage, stage)]
            + [accuracy[stage].get(f"{name}_at_{k}") for name in TABLE_METRICS]
            + [accuracy[stage].get("users_evaluated")]
            for stage in STAGE_ORDER
            if isinstance(accuracy.get(stage), Mapping)
        ]
        parts.append(_table(header, rows))
    final = accuracy.get("final") or {}
    parts.append(
        "<p>Users evaluated: {}; excluded without a relevant item: {}; evaluated without a "
        "recommendation (scored 0): {}.</p>".format(
            _number(final.get("users_evaluated")),
            _number(final.get("users_without_relevant")),
            _number(final.get("users_without_recommendations")),
        )
    )
    return "".join(parts)


def _beyond_tables(metrics: Mapping[str, Any]) -> str:
    beyond = metrics.get("beyond_accuracy")
    if not isinstance(beyond, Mapping) or not beyond:
        return '<p class="missing">Beyond-accuracy metrics not available.</p>'
    names = (
        "catalog_coverage",
        "novelty",
        "popularity_percentile",
        "long_tail_share",
        "intra_list_diversity",
    )
    parts = []
    for k in metrics.get("ks") or []:
        header = ["stage"] + [f"{name}@{k}" for name in names]
        rows = [
            [STAGE_LABELS.get(stage, stage)] + [values.get(f"{name}_at_{k}") for name in names]
            for stage, values in beyond.items()
        ]
        parts.append(_table(header, rows))
    return "".join(parts)


def _figure_html(title: str, plot: Callable, metrics: Mapping[str, Any]) -> str:
    heading = f"<h3>{html.escape(title)}</h3>"
    try:
        figure = plot(metrics)
    except NotAvailable as reason:
        return f'{heading}<p class="missing">Not available: {html.escape(str(reason))}</p>'
    image = _png(figure)
    return (
        f'{heading}<figure><img alt="{html.escape(title)}" '
        f'src="data:image/png;base64,{image}"></figure>'
    )


def render_report(metrics: Mapping[str, Any], title: str | None = None) -> str:
    """Render the HTML report for a metrics.json dict."""
    title = title or f"Evaluation of run {metrics.get('evaluated_run_id', '?')}"
    facts = _table(
        ["fact", "value"],
        [
            ["evaluation run", metrics.get("run_id")],
            ["evaluated run", metrics.get("evaluated_run_id")],
            ["model version", metrics.get("model_version")],
            ["run date", metrics.get("run_date")],
            ["held-out split", metrics.get("split")],
            ["list length", metrics.get("list_length")],
        ],
    )
    notes = metrics.get("not_available") or {}
    notes_html = "".join(
        f"<li>{html.escape(str(what))}: {html.escape(str(why))}</li>" for what, why in notes.items()
    )
    figures = "".join(_figure_html(name, plot, metrics) for name, plot in PLOTS)
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{facts}"
        f"<h2>Accuracy</h2>{_accuracy_tables(metrics)}"
        f"<h2>Beyond accuracy</h2>{_beyond_tables(metrics)}"
        f"<h2>Plots</h2>{figures}"
        + (f"<h2>Missing inputs</h2><ul>{notes_html}</ul>" if notes_html else "")
        + "</body></html>\n"
    )
