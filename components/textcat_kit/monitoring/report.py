"""Write a monitor report: ``monitor.json``, ``monitor.md`` and PNG plots.

matplotlib (the ``report`` extra) is imported only here and only when plots are asked
for; without it the JSON and Markdown are still written and the Markdown says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import srsly

FIGURE_TITLES = {
    "label_psi": "Predicted-label PSI",
    "label_js": "Predicted-label Jensen–Shannon distance",
    "label_chi2_pvalue": "Predicted-label chi-square p-value",
    "confidence_ks_pvalue": "Confidence Kolmogorov–Smirnov p-value",
    "abstain_rate": "Abstain / no-label rate",
    "expected_accuracy": "Expected accuracy (CBPE)",
    "expected_macro_f1": "Expected macro-F1 (CBPE)",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_markdown(report: dict[str, Any], plots: list[str], plot_problem: str | None) -> str:
    lines = [
        "# Monitor report",
        "",
        f"Current data: {report.get('source', '')} ({report['n_docs']} texts); reference: "
        f"{report['reference']['source']} ({report['reference']['n_docs']} docs).",
        "",
        f"**{'ALERT: ' + ', '.join(report['alerts']) if report['alert'] else 'No alert'}**",
        "",
        "| figure | value | corridor | band / reference | alert |",
        "|---|---|---|---|---|",
    ]
    for name, fig in report["figures"].items():
        low, high = fig["corridor"]
        corridor = f"[{_fmt(low) if low is not None else '-inf'}, "
        corridor += f"{_fmt(high) if high is not None else '+inf'}]"
        band = fig.get("band")
        ref = fig.get("reference")
        extra = ""
        if band:
            extra = f"[{_fmt(band[0])}, {_fmt(band[1])}]"
        if ref is not None:
            extra += f" ref {_fmt(ref)}"
        lines.append(
            f"| {FIGURE_TITLES.get(name, name)} | {_fmt(fig['value'])} | {corridor} | {extra} | "
            f"{'**yes**' if fig['alert'] else 'no'} |"
        )
    lines += _prior_shift_lines(report.get("prior_shift"))
    observed = report.get("observed")
    if observed:
        lines += [
            "",
            f"Labels were present in the current data: realised accuracy "
            f"{observed['accuracy']:.4f}, realised macro-F1 {observed['macro_f1']:.4f}.",
        ]
    dist = report["label_distribution"]
    ref = np.asarray(dist["reference"], dtype=float)
    cur = np.asarray(dist["current"], dtype=float)
    ref_s, cur_s = ref / max(ref.sum(), 1), cur / max(cur.sum(), 1)
    order = np.argsort(-np.abs(cur_s - ref_s))[:10]
    lines += [
        "",
        "## Largest predicted-label changes",
        "",
        "| category | reference share | current share |",
        "|---|---|---|",
    ]
    for j in order:
        lines.append(f"| {dist['categories'][j]} | {ref_s[j]:.3f} | {cur_s[j]:.3f} |")
    lines += ["", "## Plots", ""]
    if plots:
        lines += [f"![{p}]({p})" for p in plots]
    else:
        lines.append(f"No plots: {plot_problem}")
    lines += [
        "",
        "Definitions and corridors: docs/monitoring.md of spacy-textcat-kit.",
        "",
    ]
    return "\n".join(lines)


def _prior_shift_lines(section: dict[str, Any] | None) -> list[str]:
    """What the label-prior correction of the expected scores did (docs/monitoring.md)."""
    if not section:
        return []
    if section.get("status") != "adjusted":
        return ["", f"Expected scores are plain CBPE: {section.get('reason', '')}."]
    lines = [
        "",
        "## Label-prior correction",
        "",
        f"Expected accuracy and macro-F1 use the probabilities re-weighted to this data's "
        f"label priors, estimated by {section['method']} ({section['n_iter']} iterations; "
        f"likelihood ratio {section['likelihood_ratio']:.1f} against a noise level of "
        f"{section['noise_level']:.1f}, so {section['shrinkage']:.0%} of the EM move is kept). "
        f"Estimated priors are {section['distance']:.3f} (total variation) from the "
        f"reference.",
    ]
    if section["shrinkage"] > 0:
        lines += ["", "| label | reference prior | estimated prior |", "|---|---|---|"]
        for row in section["largest_changes"]:
            lines.append(f"| {row['label']} | {row['reference']:.4f} | {row['estimated']:.4f} |")
    return lines


def _plots(
    report: dict[str, Any], ref_conf: np.ndarray, cur_conf: np.ndarray, out: Path
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    dist = report["label_distribution"]
    ref = np.asarray(dist["reference"], dtype=float)
    cur = np.asarray(dist["current"], dtype=float)
    ref_s, cur_s = ref / max(ref.sum(), 1), cur / max(cur.sum(), 1)
    order = np.argsort(-(ref_s + cur_s))[:30]
    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(order.size)
    ax.bar(x - 0.2, ref_s[order], width=0.4, label="reference")
    ax.bar(x + 0.2, cur_s[order], width=0.4, label="current")
    ax.set_xticks(x, [dist["categories"][j][:18] for j in order], rotation=75, fontsize=7)
    ax.set_ylabel("share of predictions")
    ax.set_title("Predicted-label distribution (30 most frequent)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "labels.png", dpi=100)
    plt.close(fig)
    written.append("labels.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = [i / 20 for i in range(21)]
    ax.hist(ref_conf, bins=bins, density=True, alpha=0.5, label="reference")
    ax.hist(cur_conf, bins=bins, density=True, alpha=0.5, label="current")
    ax.set_xlabel("top-label probability")
    ax.set_title("Confidence distribution")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "confidence.png", dpi=100)
    plt.close(fig)
    written.append("confidence.png")
    return written


def write_report(
    report: dict[str, Any],
    output_dir: Path,
    *,
    reference_confidences: np.ndarray,
    current_confidences: np.ndarray,
    overwrite: bool = False,
    plots: bool = True,
) -> Path:
    """Write ``monitor.json``, ``monitor.md`` (and plots) into ``output_dir`` atomically."""
    from ..safe_write import atomic_dir

    with atomic_dir(output_dir, overwrite=overwrite, command="textcat-kit monitor") as tmp:
        written: list[str] = []
        problem: str | None = "disabled (--no-plots)"
        if plots:
            try:
                written = _plots(report, reference_confidences, current_confidences, tmp)
                problem = None
            except ImportError:
                problem = "matplotlib is not installed (pip install 'spacy-textcat-kit[report]')"
        srsly.write_json(tmp / "monitor.json", report)
        (tmp / "monitor.md").write_text(render_markdown(report, written, problem), encoding="utf8")
    return Path(output_dir)
