"""Simulated active learning on Banking77: uncertainty + label cap vs random sampling.

The pool is the training split with its labels hidden; a simulated annotator reveals the
gold label of every text picked. Both strategies start from the same random seed set
(``--seed-size`` texts), then run ``--rounds`` rounds of ``--batch`` picks each. Every
round trains the bow config from scratch on the labels so far (the package's cv fold
trainer, :func:`textcat_kit.cv.run_fold`: spaCy's training loop), scores the rest of the
pool and the test split, and records test macro-F1 (argmax decisions, the package's
metrics). ``uncertainty`` picks by margin of the model's probabilities with at most
``2 x batch / n_labels`` picks per predicted label
(:func:`textcat_kit.maths.active_learning.select_diverse`), exactly what
``textcat-kit labelstudio suggest`` does; ``random`` picks uniformly.

Run (~25 min on 2 busy cores for 2 seeds)::

    python -m benchmarks active_learning CORPUS_DIR --plot docs/images/active_learning_banking77.png

``CORPUS_DIR`` is a ``textcat-kit corpus`` output (``train.spacy`` = pool, ``test.spacy``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
from spacy import util

from benchmarks._common import write_results
from textcat_kit.cv import FoldJob, read_corpus, run_fold, write_docs
from textcat_kit.maths.active_learning import (
    default_label_cap,
    predicted_label,
    select_diverse,
    uncertainty,
)
from textcat_kit.maths.metrics import prf_per_label

REPO = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def macro_f1(probs: np.ndarray, gold: np.ndarray) -> float:
    decided = np.zeros_like(probs, dtype=np.int64)
    decided[np.arange(len(probs)), probs.argmax(axis=1)] = 1
    return prf_per_label(decided, gold).macro_f


def train_and_score(
    config: Path,
    tokenizer: Any,
    texts: list[str],
    gold: np.ndarray,
    labels: list[str],
    labelled: np.ndarray,
    score_texts: list[str],
    overrides: dict[str, Any],
    workdir: Path,
) -> np.ndarray:
    """Train on the labelled pool docs; probabilities of ``score_texts`` (labels order)."""
    paths = {part: workdir / f"{part}.spacy" for part in ("train", "dev", "held")}
    write_docs(tokenizer, [texts[i] for i in labelled], gold[labelled], labels, paths["train"])
    # No labelled dev set exists in this setting: model-last after a fixed schedule.
    write_docs(tokenizer, [texts[i] for i in labelled[:200]], gold[labelled[:200]], labels,
               paths["dev"])  # fmt: skip
    write_docs(tokenizer, score_texts, np.zeros((len(score_texts), len(labels))), labels,
               paths["held"])  # fmt: skip
    result = run_fold(
        FoldJob(
            fold=0,
            config=str(config),
            train=str(paths["train"]),
            dev=str(paths["dev"]),
            held_out=str(paths["held"]),
            workdir=str(workdir),
            overrides=overrides,
            use_best=False,
        )
    )
    return result.raw[:, [result.labels.index(label) for label in labels]]


def run(
    corpus_dir: Path,
    config: Path,
    seeds: list[int],
    seed_size: int,
    batch: int,
    rounds: int,
    strategies: list[str],
    overrides: dict[str, Any],
) -> dict[str, Any]:
    pool = read_corpus(corpus_dir / "train.spacy")
    test = read_corpus(corpus_dir / "test.spacy")
    labels = pool.labels
    test_gold = test.gold[:, [test.labels.index(label) for label in labels]]
    lang = util.load_config(config, interpolate=False)["nlp"]["lang"]
    tokenizer = util.get_lang_class(lang)()
    n_labels = len(labels)
    curves: dict[str, dict[str, list[float]]] = {s: {} for s in strategies}
    sizes = [seed_size + r * batch for r in range(rounds + 1)]
    for seed in seeds:
        rng = np.random.default_rng(seed)
        start_set = rng.choice(len(pool.texts), size=seed_size, replace=False)
        for strategy in strategies:
            labelled = start_set.copy()
            scores_f1 = []
            for round_ in range(rounds + 1):
                t0 = time.perf_counter()
                rest = np.setdiff1d(np.arange(len(pool.texts)), labelled)
                with tempfile.TemporaryDirectory(prefix="textcat-kit-al-") as tmp:
                    probs = train_and_score(
                        config, tokenizer, pool.texts, pool.gold, labels, labelled,
                        [pool.texts[i] for i in rest] + test.texts, overrides, Path(tmp),
                    )  # fmt: skip
                pool_probs, test_probs = probs[: len(rest)], probs[len(rest) :]
                scores_f1.append(macro_f1(test_probs, test_gold))
                typer.echo(
                    f"seed {seed} {strategy} round {round_}: {len(labelled)} labels, test "
                    f"macro-F1 {scores_f1[-1]:.4f} ({time.perf_counter() - t0:.0f} s)"
                )
                if round_ == rounds:
                    break
                if strategy == "random":
                    picked = rng.choice(len(rest), size=batch, replace=False)
                else:
                    unc = uncertainty(pool_probs, exclusive=True, strategy="margin")
                    cap = default_label_cap(batch, n_labels)
                    picked = select_diverse(
                        unc, predicted_label(pool_probs, exclusive=True), batch, max_per_label=cap
                    )
                labelled = np.concatenate([labelled, rest[picked]])
            curves[strategy][str(seed)] = scores_f1
    summary = {}
    for strategy in strategies:
        matrix = np.array(list(curves[strategy].values()))
        summary[strategy] = {
            "mean": matrix.mean(axis=0).tolist(),
            "std": matrix.std(axis=0, ddof=1).tolist() if len(matrix) > 1 else [0.0] * len(sizes),
        }
    return {
        "pool": len(pool.texts),
        "test": len(test.texts),
        "labels": n_labels,
        "sizes": sizes,
        "seeds": seeds,
        "curves": curves,
        "summary": summary,
    }


def markdown_table(results: dict[str, Any]) -> str:
    strategies = list(results["summary"])
    lines = [
        "| labels | " + " | ".join(strategies) + " | difference |",
        "|---" * (len(strategies) + 2) + "|",
    ]
    for i, size in enumerate(results["sizes"]):
        cells = [
            f"{results['summary'][s]['mean'][i]:.3f} ± {results['summary'][s]['std'][i]:.3f}"
            for s in strategies
        ]
        diff = ""
        if {"uncertainty", "random"} <= set(strategies):
            d = (
                results["summary"]["uncertainty"]["mean"][i]
                - results["summary"]["random"]["mean"][i]
            )
            diff = f"{100 * d:+.1f} pt"
        lines.append(f"| {size} | " + " | ".join(cells) + f" | {diff} |")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, stats in results["summary"].items():
        mean, std = np.array(stats["mean"]), np.array(stats["std"])
        ax.plot(results["sizes"], mean, marker="o", label=strategy)
        ax.fill_between(results["sizes"], mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("labelled texts")
    ax.set_ylabel("test macro-F1")
    ax.set_title(f"Banking77, bow, {len(results['seeds'])} seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


@app.command()
def run_command(
    corpus_dir: Path = typer.Argument(..., exists=True, file_okay=False),
    output: Path | None = typer.Option(
        None, help="JSON file (default: benchmarks/results/active_learning_banking77.json)."
    ),
    plot_path: Path | None = typer.Option(None, "--plot", help="PNG of the learning curves."),
    config: Path = typer.Option(REPO / "configs" / "textcat_bow.cfg"),
    seeds: str = typer.Option("0,1"),
    seed_size: int = typer.Option(200),
    batch: int = typer.Option(200),
    rounds: int = typer.Option(5),
    strategies: str = typer.Option("random,uncertainty"),
    max_epochs: int = typer.Option(16, help="training.max_epochs (small labelled sets)."),
) -> None:
    """Learning curves of uncertainty sampling vs random sampling."""
    overrides = {"training.max_epochs": max_epochs}
    results = run(
        corpus_dir, config, [int(s) for s in seeds.split(",")], seed_size, batch, rounds,
        strategies.split(","), overrides,
    )  # fmt: skip
    shown = config.relative_to(REPO) if config.is_relative_to(REPO) else config
    results.update(
        {
            "config": str(shown),
            "seed_size": seed_size,
            "batch": batch,
            "rounds": rounds,
            "overrides": overrides,
        }
    )
    if output is None:
        written = write_results("active_learning_banking77", results, _command_line())
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        written = output
    typer.echo(f"wrote {written}")
    if plot_path is not None:
        plot(results, plot_path)
    typer.echo(markdown_table(results))


def _command_line() -> list[str]:
    """The command that ran, as a user would type it."""
    if sys.argv and sys.argv[0].endswith("__main__.py"):
        return ["python", "-m", "benchmarks", *sys.argv[1:]]
    return ["python", *sys.argv]


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks active_learning ...`` (see the module docstring)."""
    app(args=argv)


if __name__ == "__main__":
    main()
