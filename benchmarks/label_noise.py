"""How well does ``textcat-kit cv`` find labels we broke on purpose?

Exclusive (Banking77): 5% of the training labels are flipped (seeded); a share of the flips
goes to the label the clean model most confuses with the true one (``confusable``), the
rest to a uniformly drawn other label. The confusability matrix comes from a clean cv run
(out-of-fold confusion counts, diagonal ignored). Multi-label (GoEmotions): 5% as many
(text, label) toggles as there are given labels, half removing a given label, half adding
one the text does not have. Then ``cv`` runs on the noisy labels with the package's own
code (:func:`textcat_kit.cv.run_cv`), and the ranked issues are scored against the known
flips: precision and recall of the first ``k`` issues, ``k`` = the number of flips (pairs
for multi-label). Recall is also given per kind of flip.

The real datasets have label errors of their own, which count as false positives here, so
these figures are a lower bound on the ranking's precision.

Run from the repository root (Banking77: 4 cv runs, each ~5 min on 2 idle cores and far
longer on a busy machine; GoEmotions: 1 cv run)::

    python -m benchmarks label_noise banking77 CORPUS_DIR
    python -m benchmarks label_noise goemotions CORPUS_DIR

``--config`` is repeatable: the first config is ``cv``'s main one, the others its
``--extra-config`` ones (trained on the same folds; their calibrated out-of-fold
probabilities pooled before ranking), and each member is also scored alone.

``CORPUS_DIR`` is a ``textcat-kit corpus`` output (its ``train.spacy`` is used; its
``data.json`` says whether the task is exclusive or multi-label), so the same benchmark
runs on your own corpus: ``python -m benchmarks label_noise NAME CORPUS_DIR``.

Other noise: ``--noise flip`` (GoEmotions) replaces given labels by other ones instead of
toggling cells, and ``python -m benchmarks label_noise synthetic`` scores the multi-label
rankings on simulated calibrated models of two strengths for each noise kind (no corpus,
no training; seconds).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from benchmarks._common import write_results
from textcat_kit.cv import LabelledCorpus, read_corpus, run_cv
from textcat_kit.maths.label_issues import (
    ExclusiveIssues,
    MultilabelIssues,
    find_multilabel_issues,
    inject_exclusive_noise,
    inject_multilabel_noise,
    pool_probabilities,
    precision_recall_at_k,
)
from textcat_kit.training import read_corpus_info

REPO = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def with_labels(corpus: LabelledCorpus, gold: np.ndarray) -> LabelledCorpus:
    return dataclasses.replace(corpus, gold=gold)


def confusability(probs: np.ndarray, gold_idx: np.ndarray, n_labels: int) -> np.ndarray:
    """Out-of-fold confusion counts plus the mean probability mass, diagonal removed."""
    counts = np.zeros((n_labels, n_labels))
    np.add.at(counts, (gold_idx, probs.argmax(axis=1)), 1.0)
    mass = np.zeros((n_labels, n_labels))
    np.add.at(mass, gold_idx, probs)
    scores = counts + mass / np.maximum(np.bincount(gold_idx, minlength=n_labels), 1)[:, None]
    np.fill_diagonal(scores, -np.inf)
    return scores


def score_exclusive(issues: ExclusiveIssues, flipped: np.ndarray, kinds: np.ndarray) -> dict:
    k = len(flipped)
    precision, recall = precision_recall_at_k(issues.order, flipped, k)
    top = set(issues.order[:k].tolist())
    per_kind = {}
    for kind in ("uniform", "confusable"):
        members = flipped[kinds == kind]
        if len(members):
            per_kind[kind] = {
                "n": int(len(members)),
                "recall_at_k": float(np.mean([i in top for i in members.tolist()])),
            }
    all_flagged = set(issues.order.tolist())
    return {
        "k": k,
        "n_issues": int(len(issues.order)),
        "precision_at_k": precision,
        "recall_at_k": recall,
        "recall_all_issues": float(np.mean([i in all_flagged for i in flipped.tolist()])),
        "per_kind": per_kind,
    }


def corpus_is_exclusive(corpus_dir: Path) -> bool:
    """Whether a ``textcat-kit corpus`` output is an exclusive task, by the rule training
    uses (:func:`textcat_kit.training.read_corpus_info`): its ``data.json`` says so;
    without the flag, every training doc has exactly one label."""
    return not read_corpus_info(corpus_dir).multilabel


def run_exclusive(
    corpus_dir: Path,
    config: Path,
    n_folds: int,
    n_jobs: int,
    seed: int,
    fraction: float,
    settings: list[str],
    overrides: dict[str, Any],
    extra_configs: list[Path] | None = None,
) -> dict[str, Any]:
    train = corpus_dir / "train.spacy"
    extras = list(extra_configs or [])
    corpus = read_corpus(train)
    given = corpus.gold.argmax(axis=1)
    n_labels = len(corpus.labels)
    results: dict[str, Any] = {"n_docs": len(corpus.texts), "n_labels": n_labels}
    # One cv setup for the clean run and every noisy one: only the labels differ.
    cv = functools.partial(
        run_cv,
        config,
        train,
        n_folds=n_folds,
        n_jobs=n_jobs,
        seed=seed,
        overrides=overrides,
        extra_configs=extras,
    )
    start = time.perf_counter()
    clean = cv()
    gold_idx = clean.corpus.gold.argmax(axis=1)
    column = [corpus.labels.index(label) for label in clean.labels]
    confusable = confusability(clean.calibrated, gold_idx, n_labels)
    # confusable is in clean.labels order; map back to the corpus's label order.
    inverse = np.argsort(column)
    confusable = confusable[np.ix_(inverse, inverse)]
    results["clean"] = {
        "macro_f": clean.report["summary"]["macro_f"],
        "n_issues": clean.report["label_issues"]["n_issues"],
        "seconds": round(time.perf_counter() - start, 1),
    }
    shares = {"mixed": 0.5, "uniform": 0.0, "confusable": 1.0}
    for setting in settings:
        start = time.perf_counter()
        noisy_idx, flipped = inject_exclusive_noise(
            given,
            n_labels,
            fraction,
            seed,
            confusable=confusable,
            confusable_share=shares[setting],
        )
        kinds = np.where(
            noisy_idx[flipped] == confusable[given[flipped]].argmax(axis=1),
            "confusable",
            "uniform",
        )
        gold = np.zeros_like(corpus.gold)
        gold[np.arange(len(noisy_idx)), noisy_idx] = 1.0
        noisy = cv(corpus=with_labels(corpus, gold))
        # run_cv orders the columns like the trained model: map the flips' doc ids only.
        assert isinstance(noisy.issues, ExclusiveIssues)
        scores = {}
        for rank_by in ("self_confidence", "normalized_margin"):
            from textcat_kit.maths.label_issues import find_label_issues

            issues = find_label_issues(
                noisy.calibrated,
                noisy.corpus.gold[:, [corpus.labels.index(lb) for lb in noisy.labels]].argmax(
                    axis=1
                ),
                rank_by=rank_by,  # type: ignore[arg-type]
            )
            scores[rank_by] = score_exclusive(issues, flipped, kinds)
        results[setting] = {
            "n_flipped": int(len(flipped)),
            "n_confusable": int((kinds == "confusable").sum()),
            "macro_f": noisy.report["summary"]["macro_f"],
            "estimated_noise_rate": noisy.report["label_issues"]["estimated_noise_rate"],
            "scores": scores,
            "seconds": round(time.perf_counter() - start, 1),
        }
        typer.echo(f"{setting}: {json.dumps(results[setting]['scores'])}")
    return results


MULTILABEL_VARIANTS: dict[str, dict[str, Any]] = {
    "label_set (default)": {"method": "label_set"},
    "label_set --no-swaps": {"method": "label_set", "swaps": False},
    "per_label / prune_by_noise_rate / self_confidence": {"method": "per_label"},
    "per_label / confident_joint / self_confidence": {
        "method": "per_label",
        "filter_by": "confident_joint",
    },
}


def score_multilabel(
    probs: np.ndarray,
    given: np.ndarray,
    toggled: np.ndarray,
    removed: np.ndarray,
    variants: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """P/R@k of the toggled (doc, label) pairs for each method, k = number toggled.

    ``precision_at_k`` / ``recall_at_k`` score the flagged issues (``pairs``, the list
    ``cv`` writes), first k; ``ranking_*`` score the first k cells of the whole ranking
    (every cell by its pair quality), which differs only when fewer than k are flagged.
    """

    k = len(toggled)
    docs = np.unique(toggled[:, 0])
    truth = np.zeros(given.shape, dtype=bool)
    truth[toggled[:, 0], toggled[:, 1]] = True
    positive = given >= 0.5
    # comments whose only label was removed (no other toggle): is the removed label the
    # model's first choice for them?
    n_toggles = np.bincount(toggled[:, 0], minlength=given.shape[0])
    stripped = toggled[removed & (positive[toggled[:, 0]].sum(axis=1) == 0)]
    stripped = stripped[n_toggles[stripped[:, 0]] == 1]
    stripped_top1 = (
        float(np.mean(probs[stripped[:, 0]].argmax(axis=1) == stripped[:, 1]))
        if len(stripped)
        else None
    )
    scores = {}
    for name, kwargs in (variants or MULTILABEL_VARIANTS).items():
        issues: MultilabelIssues = find_multilabel_issues(probs, given, **kwargs)
        precision, recall = precision_recall_at_k(issues.pairs, toggled, k)
        top = {tuple(p) for p in issues.pairs[:k].tolist()}
        hit = np.array([tuple(p) in top for p in toggled.tolist()])
        flat = issues.pair_quality.ravel()
        ranking = np.stack(
            np.unravel_index(np.lexsort((np.arange(flat.size), flat))[:k], given.shape), axis=1
        )
        rank_p, rank_r = precision_recall_at_k(ranking, toggled, k)
        doc_p, doc_r = precision_recall_at_k(issues.doc_order, docs, len(docs))
        first = issues.pairs[:k]
        hit_first = truth[first[:, 0], first[:, 1]]
        given_first = positive[first[:, 0], first[:, 1]]
        entry: dict[str, Any] = {
            "k": k,
            "n_issue_pairs": int(len(issues.pairs)),
            "precision_at_k": precision,
            "recall_at_k": recall,
            "recall_removed": float(hit[removed].mean()) if removed.any() else None,
            "recall_added": float(hit[~removed].mean()) if (~removed).any() else None,
            "ranking_precision_at_k": rank_p,
            "ranking_recall_at_k": rank_r,
            "docs": {"k": int(len(docs)), "precision_at_k": doc_p, "recall_at_k": doc_r},
            # wrong among the first k: given labels flagged as added, absent ones as dropped
            "false_given_at_k": int((~hit_first & given_first).sum()),
            "false_missing_at_k": int((~hit_first & ~given_first).sum()),
            "stripped_top1": stripped_top1,
            "n_stripped": int(len(stripped)),
            "estimated_noise_rate": issues.noise_rate(),
        }
        if issues.noise is not None:
            entry["estimated_add_rate"] = issues.noise.add_rate
            entry["estimated_remove_rate"] = issues.noise.remove_rate
            entry["estimated_flip_rate"] = issues.noise.flip_rate
            entry["em_iterations"] = issues.noise.n_iter
        scores[name] = entry
    return scores


def run_multilabel(
    corpus_dir: Path,
    config: Path,
    n_folds: int,
    n_jobs: int,
    seed: int,
    fraction: float,
    overrides: dict[str, Any],
    calibration: str,
    dump: Path | None = None,
    rescore: list[Path] | None = None,
    extra_configs: list[Path] | None = None,
    noise: str = "toggle",
    ceiling: bool = False,
) -> dict[str, Any]:
    train = corpus_dir / "train.spacy"
    corpus = read_corpus(train)
    positive = corpus.gold >= 0.5
    noisy_gold, toggled = inject_multilabel_noise(
        positive,
        fraction,
        seed,
        kind=noise,  # type: ignore[arg-type]
    )
    if rescore:
        return rescore_multilabel(rescore, positive, toggled, ceiling)
    start = time.perf_counter()
    noisy = run_cv(
        config,
        train,
        n_folds=n_folds,
        n_jobs=n_jobs,
        seed=seed,
        overrides=overrides,
        corpus=with_labels(corpus, noisy_gold),
        calibration=calibration,
        extra_configs=list(extra_configs or []),
    )
    column = [corpus.labels.index(label) for label in noisy.labels]
    # toggled pairs are in the corpus's label order; express them in the model's order.
    position = np.argsort(column)
    toggled_model = np.stack([toggled[:, 0], position[toggled[:, 1]]], axis=1)
    removed = positive[toggled[:, 0], toggled[:, 1]]
    k = len(toggled)
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        np.save(dump / "oof.npy", noisy.calibrated, allow_pickle=False)
        np.save(dump / "oof_raw.npy", noisy.raw, allow_pickle=False)
        np.save(dump / "folds.npy", noisy.folds, allow_pickle=False)
        np.save(dump / "noisy_gold.npy", noisy_gold[:, column], allow_pickle=False)
        np.save(dump / "toggled.npy", toggled_model, allow_pickle=False)
        np.save(dump / "removed.npy", removed, allow_pickle=False)
        if len(noisy.members) > 1:
            members = np.stack([member.calibrated for member in noisy.members])
            np.save(dump / "oof_members.npy", members, allow_pickle=False)
    cv_summary = {
        "command": " ".join(_command_line()),
        "calibration": noisy.calibration,
        "macro_f": noisy.report["summary"]["macro_f"],
        "cv_seconds": round(time.perf_counter() - start, 1),
    }
    if dump is not None:
        (dump / "cv_summary.json").write_text(json.dumps(cv_summary, indent=2) + "\n")
    scores = score_multilabel(noisy.calibrated, noisy_gold[:, column], toggled_model, removed)
    if len(noisy.members) > 1:
        cv_summary["members"] = {
            member.config: {
                "macro_f": report["summary"]["macro_f"],
                "label_set": score_label_set(
                    member.calibrated, noisy_gold[:, column], toggled_model, removed
                ),
            }
            for member, report in zip(noisy.members, noisy.report["members"])
        }
    result = {
        "n_docs": len(corpus.texts),
        "n_labels": len(corpus.labels),
        "n_given_pairs": int(positive.sum()),
        "n_toggled": k,
        "n_removed": int(removed.sum()),
        "n_added": int((~removed).sum()),
        **cv_summary,
        "scores": scores,
    }
    typer.echo(json.dumps(scores))
    return result


def score_label_set(
    probs: np.ndarray, given: np.ndarray, toggled: np.ndarray, removed: np.ndarray
) -> dict[str, Any]:
    """The scores of the default ``label_set`` ranking alone (each pooled member's own)."""
    variant = {"label_set": {"method": "label_set"}}
    return dict(score_multilabel(probs, given, toggled, removed, variant)["label_set"])


def truth_trained_ceiling(
    members: list[np.ndarray], given: np.ndarray, toggled: np.ndarray, n_splits: int = 5
) -> dict[str, Any]:
    """How far could *any* re-ranking of these probabilities go? A diagnostic, not a method.

    Scores the candidate cells (the ``6 k`` most probably wrong under ``label_set`` on the
    pooled probabilities, ``k`` = number toggled) with gradient-boosted trees trained on the
    injected truth, cross-fitted over docs (a doc's cells are scored by trees that never saw
    it). Features: the ``label_set`` posterior, the pooled and every member's logit, the
    cell's given state, the doc's label count, the cell's probability rank in its doc, the
    doc's top probability, the label's prevalence and the label itself. When this ceiling is
    close to ``label_set``'s precision@k, the ranking is not what limits it: the
    probabilities are (a better or less correlated member is needed).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    pooled = pool_probabilities(members, exclusive=False)
    positive = given >= 0.5
    k = len(toggled)
    truth = np.zeros(given.shape, dtype=bool)
    truth[toggled[:, 0], toggled[:, 1]] = True
    issues = find_multilabel_issues(pooled, given)
    wrong = 1.0 - issues.pair_quality
    cells = np.argsort(-wrong.ravel(), kind="stable")[: 6 * k]
    docs, labels = np.unravel_index(cells, given.shape)

    def logit(p: np.ndarray) -> np.ndarray:
        clipped = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(clipped) - np.log1p(-clipped)

    rank_in_doc = np.argsort(np.argsort(-pooled, axis=1), axis=1)
    features = np.column_stack(
        [
            wrong[docs, labels],
            logit(pooled)[docs, labels],
            *[logit(m)[docs, labels] for m in members],
            positive[docs, labels],
            positive.sum(axis=1)[docs],
            rank_in_doc[docs, labels],
            pooled.max(axis=1)[docs],
            np.log(np.maximum(positive.mean(axis=0), 1e-9))[labels],
            labels,
        ]
    )
    target = truth[docs, labels]
    score = np.zeros(len(cells))
    split = docs % n_splits
    for part in range(n_splits):
        trees = HistGradientBoostingClassifier(
            max_iter=200,
            learning_rate=0.05,
            categorical_features=[features.shape[1] - 1],
            random_state=0,
        ).fit(features[split != part], target[split != part])
        score[split == part] = trees.predict_proba(features[split == part])[:, 1]
    return {
        "candidates": int(len(cells)),
        "candidates_recall": float(target.sum() / k),
        "label_set_posterior_precision_at_k": float(target[:k].mean()),
        "truth_trained_precision_at_k": float(target[np.argsort(-score, kind="stable")[:k]].mean()),
    }


def rescore_multilabel(
    dumps: list[Path], positive: np.ndarray, toggled: np.ndarray, ceiling: bool = False
) -> dict[str, Any]:
    """Score the ranking again on the out-of-fold arrays earlier ``--dump`` runs saved
    (same corpus, seed and fraction; no training): for changes of the ranking maths.
    Several dumps (same folds: same corpus, seed and folds) are pooled like ``cv``'s
    extra configs (:func:`pool_probabilities` of their calibrated ``oof.npy``)."""
    loaded: list[dict[str, np.ndarray]] = []
    for dump in dumps:
        arrays = {
            name: np.load(dump / f"{name}.npy", allow_pickle=False)
            for name in ("oof", "noisy_gold", "toggled", "removed", "folds")
            if name != "folds" or len(dumps) > 1  # pooled dumps must share their folds
        }
        same_docs = np.array_equal(np.unique(arrays["toggled"][:, 0]), np.unique(toggled[:, 0]))
        if (
            len(arrays["toggled"]) != len(toggled)
            or arrays["oof"].shape != positive.shape
            or not same_docs
        ):
            raise typer.BadParameter(
                f"{dump} was dumped from another corpus, seed, fraction or --noise"
            )
        if loaded and not all(
            np.array_equal(arrays[name], loaded[0][name])
            for name in ("noisy_gold", "toggled", "folds")
        ):
            raise typer.BadParameter(f"{dump} and {dumps[0]} differ in labels, noise or folds")
        loaded.append(arrays)
    first = loaded[0]
    removed = first["removed"]
    summaries = [json.loads((dump / "cv_summary.json").read_text()) for dump in dumps]
    for summary in summaries:
        if "command" in summary:  # the run that trained the folds and dumped the arrays
            summary["dumped_by"] = summary.pop("command")
    probs = pool_probabilities([arrays["oof"] for arrays in loaded], exclusive=False)
    scores = score_multilabel(probs, first["noisy_gold"], first["toggled"], removed)
    result: dict[str, Any] = {
        "n_docs": int(positive.shape[0]),
        "n_labels": int(positive.shape[1]),
        "n_given_pairs": int(positive.sum()),
        "n_toggled": len(toggled),
        "n_removed": int(removed.sum()),
        "n_added": int((~removed).sum()),
    }
    if len(dumps) == 1:
        result |= summaries[0] | {"rescored_from": str(dumps[0])}
    else:
        result["rescored_from"] = [str(dump) for dump in dumps]
        result["members"] = {
            str(dump): summary
            | {
                "label_set": score_label_set(
                    arrays["oof"], first["noisy_gold"], first["toggled"], removed
                )
            }
            for dump, summary, arrays in zip(dumps, summaries, loaded)
        }
    result["scores"] = scores
    if ceiling:
        result["ceiling"] = truth_trained_ceiling(
            [arrays["oof"] for arrays in loaded], first["noisy_gold"], first["toggled"]
        )
    return result


@app.command()
def run_command(
    dataset: str = typer.Argument(
        ...,
        help="A name for the results (banking77, goemotions, your own), or synthetic "
        "(multi-label simulated models of known strength, each noise kind; no corpus, no "
        "training). Exclusive or multi-label comes from CORPUS_DIR's data.json.",
    ),
    corpus_dir: Path | None = typer.Argument(None, exists=True, file_okay=False),
    output: Path | None = typer.Option(
        None, help="JSON file (default: benchmarks/results/label_noise_<dataset>.json)."
    ),
    config: list[Path] = typer.Option(
        [],
        "--config",
        help="Default: configs/textcat[_multilabel]_bow.cfg. Repeatable: the configs after the "
        "first are cv's --extra-config (pooled out-of-fold probabilities).",
    ),
    n_folds: int = typer.Option(5),
    n_jobs: int = typer.Option(2),
    seed: int = typer.Option(0),
    fraction: float = typer.Option(0.05),
    settings: str = typer.Option("mixed,uniform,confusable", help="Exclusive noise settings."),
    noise: str = typer.Option(
        "toggle",
        help="Multi-label noise: toggle (half the broken cells drop a given label, half add "
        "one) or flip (given labels replaced by another label; two cells per flip).",
    ),
    max_epochs: int | None = typer.Option(None),
    calibration: str = typer.Option("auto", help="Multi-label calibration of the OOF scores."),
    dump: Path | None = typer.Option(None, help="Multi-label: save the OOF arrays here."),
    rescore: list[Path] = typer.Option(
        [],
        "--rescore",
        help="Multi-label: score the OOF arrays an earlier --dump saved (no training); "
        "repeatable: several dumps of the same folds are pooled.",
    ),
    ceiling: bool = typer.Option(
        False,
        "--ceiling",
        help="With --rescore: also re-rank the candidate cells with trees trained on the "
        "injected truth (cross-fitted), the most any ranking of these probabilities could "
        "reach. A diagnostic; it uses the answers.",
    ),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Config override KEY=VALUE (repeatable; VALUE parsed as JSON when it is), e.g. "
        "components.textcat.model.encoder.cache_dir=/tmp/emb for the embed config.",
    ),
) -> None:
    """Inject label noise, run cv, and print precision / recall of the top-k issues."""
    overrides: dict[str, Any] = {}
    for item in set_:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    if max_epochs is not None:
        overrides["training.max_epochs"] = max_epochs
    if dataset == "synthetic":
        synthetic = run_synthetic(fraction, seeds=(seed, seed + 1))
        path = output or REPO / "benchmarks" / "results" / "label_noise_synthetic.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        stamped = {"command": " ".join(_command_line()), **synthetic}
        path.write_text(json.dumps(stamped, indent=2) + "\n", encoding="utf-8")
        typer.echo(synthetic_table(synthetic))
        typer.echo(f"wrote {path}")
        return
    if corpus_dir is None:
        raise typer.BadParameter(f"{dataset} needs CORPUS_DIR (a `textcat-kit corpus` output)")
    if ceiling and not rescore:
        raise typer.BadParameter("--ceiling re-ranks saved arrays: use it with --rescore DUMP")
    exclusive = corpus_is_exclusive(corpus_dir)
    default = "textcat_bow.cfg" if exclusive else "textcat_multilabel_bow.cfg"
    configs = list(config) or [REPO / "configs" / default]
    main_config, extras = configs[0], configs[1:]
    if exclusive:
        results = run_exclusive(
            corpus_dir,
            main_config,
            n_folds,
            n_jobs,
            seed,
            fraction,
            settings.split(","),
            overrides,
            extras,
        )
    else:
        results = run_multilabel(
            corpus_dir,
            main_config,
            n_folds,
            n_jobs,
            seed,
            fraction,
            overrides,
            calibration,
            dump,
            rescore,
            extras,
            noise,
            ceiling,
        )
    results.update(
        {
            "dataset": dataset,
            "config": _shown(main_config),
            **({"extra_configs": [_shown(extra) for extra in extras]} if extras else {}),
            "n_folds": n_folds,
            "seed": seed,
            "fraction": fraction,
            **({"noise": noise} if not exclusive else {}),
            "overrides": overrides,
        }
    )
    if output is None:
        written = write_results(f"label_noise_{dataset}", results, _command_line())
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        stamped = {"command": " ".join(_command_line()), **results}
        output.write_text(json.dumps(stamped, indent=2) + "\n", encoding="utf-8")
        written = output
    typer.echo(markdown_table(results))
    typer.echo(f"wrote {written}")


SYNTHETIC_RANKINGS: dict[str, dict[str, Any]] = {
    "label_set": {"method": "label_set"},
    "label_set --no-swaps": {"method": "label_set", "swaps": False},
    "per_label": {"method": "per_label"},
}


def run_synthetic(
    fraction: float,
    seeds: tuple[int, ...] = (0, 1),
    n_docs: int = 6000,
    n_labels: int = 12,
    strengths: tuple[float, ...] = (1.5, 3.0),
) -> dict[str, Any]:
    """The rankings on simulated data, per noise kind and model strength (mean over seeds).

    Every text has 1+ labels (12% of the cells, plus one where a text drew none); the
    model's logit of a cell is ``N(0, 1) + strength`` for a true label and ``N(0, 1) -
    strength`` otherwise (1.5: a weak model, AUC ~0.98; 3.0: a strong one), calibrated on
    the noisy labels with per-label Platt, cross-fitted over two halves as ``cv`` does.
    Noise from :func:`inject_multilabel_noise`: ``toggle`` (drops and adds) and ``flip``
    (a given label replaced by another one)."""
    from textcat_kit.maths.calibration import PerLabelCalibration

    rows = []
    for noise in ("toggle", "flip"):
        for strength in strengths:
            found: dict[str, list[float]] = {name: [] for name in SYNTHETIC_RANKINGS}
            flip_rates = []
            for seed in seeds:
                rng = np.random.default_rng(seed)
                gold = rng.random((n_docs, n_labels)) < 0.12
                empty = ~gold.any(axis=1)
                gold[empty, rng.integers(n_labels, size=int(empty.sum()))] = True
                noisy, broken = inject_multilabel_noise(
                    gold.astype(float),
                    fraction,
                    seed + 1,
                    kind=noise,  # type: ignore[arg-type]
                )
                logits = rng.normal(size=gold.shape) + (2 * gold - 1) * strength
                raw = 1 / (1 + np.exp(-logits))
                half = np.arange(n_docs) % 2 == 0
                probs = np.empty_like(raw)
                names = [str(j) for j in range(n_labels)]
                for fit, apply in ((half, ~half), (~half, half)):
                    calibrator = PerLabelCalibration(method="platt").fit(
                        raw[fit], noisy[fit], names
                    )
                    probs[apply] = calibrator.transform(raw[apply])
                for name, kwargs in SYNTHETIC_RANKINGS.items():
                    issues = find_multilabel_issues(probs, noisy, **kwargs)
                    found[name].append(precision_recall_at_k(issues.pairs, broken, len(broken))[0])
                    if name == "label_set" and issues.noise is not None:
                        flip_rates.append(issues.noise.flip_rate)
            rows.append(
                {
                    "noise": noise,
                    "strength": strength,
                    "k": int(len(broken)),
                    "precision_at_k": {name: float(np.mean(v)) for name, v in found.items()},
                    "estimated_flip_rate": float(np.mean(flip_rates)),
                }
            )
    return {
        "dataset": "synthetic",
        "n_docs": n_docs,
        "n_labels": n_labels,
        "fraction": fraction,
        "seeds": list(seeds),
        "rows": rows,
    }


def synthetic_table(results: dict[str, Any]) -> str:
    """The docs' table of :func:`run_synthetic`."""
    names = list(SYNTHETIC_RANKINGS)
    lines = [
        "| noise | model strength | k | "
        + " | ".join(f"{name} P@k" for name in names)
        + " | estimated flip rate |",
        "|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for row in results["rows"]:
        cells = " | ".join(f"{row['precision_at_k'][name]:.3f}" for name in names)
        lines.append(
            f"| {row['noise']} | {row['strength']} | {row['k']} | {cells} | "
            f"{row['estimated_flip_rate']:.4f} |"
        )
    return "\n".join(lines)


def markdown_table(results: dict[str, Any]) -> str:
    """The docs' table for one dataset's results."""
    lines = []
    if "scores" in results:  # multi-label
        lines += [
            "| method | k (toggled pairs) | pairs flagged | precision@k | recall@k "
            "| recall removed | recall added | docs P@k | docs R@k |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, s in results["scores"].items():
            lines.append(
                f"| {name} | {s['k']} | {s['n_issue_pairs']} | {s['precision_at_k']:.3f} | "
                f"{s['recall_at_k']:.3f} | {s['recall_removed']:.3f} | "
                f"{s['recall_added']:.3f} | {s['docs']['precision_at_k']:.3f} | "
                f"{s['docs']['recall_at_k']:.3f} |"
            )
        members = results.get("members", {})
        if members:
            lines += [
                "",
                "| pooled member, alone | label_set P@k | R@k | docs P@k |",
                "|---|---|---|---|",
            ]
            for name, member in members.items():
                m = member["label_set"]
                lines.append(
                    f"| {name} | {m['precision_at_k']:.3f} | {m['recall_at_k']:.3f} | "
                    f"{m['docs']['precision_at_k']:.3f} |"
                )
        if "ceiling" in results:
            c = results["ceiling"]
            lines += [
                "",
                f"Ceiling (`--ceiling`): the {c['candidates']} most suspect cells hold "
                f"{c['candidates_recall']:.3f} of the toggles; label_set's posterior puts "
                f"{c['label_set_posterior_precision_at_k']:.3f} of its first k right, trees "
                f"trained on the injected truth {c['truth_trained_precision_at_k']:.3f}.",
            ]
        return "\n".join(lines)
    lines += [
        "| noise | ranking | k (flipped) | precision@k | recall@k | recall uniform "
        "| recall confusable | issues flagged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setting in ("mixed", "uniform", "confusable"):
        if setting not in results:
            continue
        for rank_by, s in results[setting]["scores"].items():
            kinds = s["per_kind"]
            uni = f"{kinds['uniform']['recall_at_k']:.3f}" if "uniform" in kinds else "-"
            conf = f"{kinds['confusable']['recall_at_k']:.3f}" if "confusable" in kinds else "-"
            lines.append(
                f"| {setting} | {rank_by} | {s['k']} | {s['precision_at_k']:.3f} | "
                f"{s['recall_at_k']:.3f} | {uni} | {conf} | {s['n_issues']} |"
            )
    return "\n".join(lines)


def _shown(config: Path) -> str:
    config = config.resolve()
    return str(config.relative_to(REPO) if config.is_relative_to(REPO) else config)


def _command_line() -> list[str]:
    """The command that ran, as a user would type it."""
    if sys.argv and sys.argv[0].endswith("__main__.py"):
        return ["python", "-m", "benchmarks", *sys.argv[1:]]
    return ["python", *sys.argv]


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks label_noise ...`` (see the module docstring)."""
    app(args=argv)


if __name__ == "__main__":
    main()
