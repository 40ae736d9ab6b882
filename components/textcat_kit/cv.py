"""``textcat-kit cv``: K-fold cross-validation of any training config, out-of-fold
probabilities for every training text, and the label issues they reveal.

Why: a model scored on the texts it was trained on has memorised their labels, so its
scores say nothing about whether a label is right. Each text's out-of-fold score comes
from a model that never saw it; those scores are what confident learning
(:mod:`textcat_kit.maths.label_issues`) needs, and their spread over folds is an honest
error bar on the config's macro-F1.

Steps:

1. The training docs are cut into ``n_folds`` folds, stratified by each doc's rarest
   positive label (the same rule as ``tune``'s cross-fitting, so a rare label of a
   multi-label corpus is spread over the folds).
2. For every fold, the config is trained with spaCy's own training loop on the other
   folds (an inner stratified dev split of them picks ``model-best``, as ``spacy train``
   does), and the held-out fold is scored. Folds run in parallel processes (``n_jobs``).
3. The raw out-of-fold scores are calibrated, cross-fitted across folds: fold ``k``'s
   scores go through a calibrator (temperature scaling for exclusive classes, Platt or
   isotonic per label for multi-label) fitted on the other folds' out-of-fold scores.
4. Per fold: macro-F1, per-label F1 and ECE (the package's metrics), then mean ± std.
5. Confident learning on the calibrated out-of-fold probabilities ranks the label issues.

Several configs (``--extra-config``, repeatable): every config is trained on the same
folds, each one's out-of-fold scores are calibrated on their own (step 3), and the
members' calibrated probabilities are pooled by their normalised geometric mean before
steps 4 and 5. Why: label-issue ranking is only as good as the out-of-fold probabilities,
and models that see the text differently (word n-grams, a sentence encoder) make
different mistakes; a label stays likely only where every member finds it plausible.

Outputs (in ``output_dir``, written atomically; an earlier cv output is replaced only
with ``overwrite``): ``oof.npy`` (calibrated, rows = docs of the training file in order,
columns = ``labels.json``), ``oof_raw.npy``, ``oof.jsonl`` (index, id, text, fold, given,
probabilities), ``cv_report.json`` / ``cv_report.md``, ``label_issues.jsonl`` /
``label_issues.md``; with extra configs also ``oof_members.npy`` (n_configs, n_docs,
n_labels: each config's calibrated probabilities, main config first).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any, cast

import numpy as np
import srsly
import typer
from spacy.tokens import DocBin
from spacy.vocab import Vocab

from .errors import ConfigError, DataError, Errors, TextcatKitError, Warnings
from .maths import metrics
from .maths.calibration import PerLabelCalibration, TemperatureScaling
from .maths.label_issues import (
    FILTER_BY,
    MULTILABEL_METHODS,
    RANK_BY,
    ExclusiveIssues,
    FilterBy,
    MultilabelIssues,
    MultilabelMethod,
    RankBy,
    find_label_issues,
    find_multilabel_issues,
    pool_probabilities,
)
from .maths.validation import check_choice
from .safe_write import atomic_dir
from .tuning import fold_ids

CALIBRATIONS = ("auto", "temperature", "platt", "isotonic", "none")


@dataclass
class LabelledCorpus:
    """The docs of a ``.spacy`` file as arrays: texts, ids, gold matrix, label names."""

    texts: list[str]
    ids: list[str]
    meta: list[dict[str, Any]]
    gold: np.ndarray
    labels: list[str]

    def given_labels(self, i: int) -> list[str]:
        return [label for j, label in enumerate(self.labels) if self.gold[i, j] >= 0.5]


def read_corpus(path: Path) -> LabelledCorpus:
    """Read a ``.spacy`` file: every doc's text, an id from its ``user_data`` and its cats.

    The id is the record's own id (``id`` or ``ls_task_id`` in the meta ``corpus`` and
    ``labelstudio import`` keep), else ``source:line``, else the doc's position.
    """
    doc_bin = DocBin(store_user_data=True).from_disk(path)
    docs = list(doc_bin.get_docs(Vocab()))
    labels: list[str] = []
    seen: set[str] = set()
    for doc in docs:
        for label in doc.cats:
            if label not in seen:
                seen.add(label)
                labels.append(label)
    if not docs or not labels:
        raise DataError(Errors.E404.format(path=path))
    gold = np.zeros((len(docs), len(labels)))
    index = {label: j for j, label in enumerate(labels)}
    texts, ids, metas = [], [], []
    for i, doc in enumerate(docs):
        for label, value in doc.cats.items():
            gold[i, index[label]] = float(value)
        meta = {str(k): v for k, v in dict(doc.user_data or {}).items() if isinstance(k, str)}
        texts.append(doc.text)
        ids.append(_doc_id(meta, i))
        metas.append(meta)
    return LabelledCorpus(texts=texts, ids=ids, meta=metas, gold=gold, labels=labels)


def _doc_id(meta: dict[str, Any], index: int) -> str:
    for key in ("id", "ls_task_id", "task_id"):
        if meta.get(key) not in (None, ""):
            return str(meta[key])
    if "source" in meta and "line" in meta:
        return f"{meta['source']}:{meta['line']}"
    return str(index)


def choose_config(
    config: Path, multilabel_config: Path | None = None, data_json: Path | None = None
) -> Path:
    """``multilabel_config`` when ``data_json`` (written by ``corpus``) says the data is
    multi-label, else ``config``. Lets one project command serve both kinds of corpus."""
    if data_json is None or multilabel_config is None:
        return config
    try:
        data = srsly.read_json(data_json)
        multilabel = data["multilabel"]
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise ConfigError(Errors.E405.format(path=data_json, detail=repr(err))) from None
    if not isinstance(multilabel, bool):
        raise ConfigError(Errors.E405.format(path=data_json, detail=f"got {multilabel!r}"))
    return multilabel_config if multilabel else config


def config_is_exclusive(config: Path, overrides: dict[str, Any]) -> bool:
    """Whether the config's (last) text classifier is exclusive, from its factory name."""
    from spacy import util

    cfg = util.load_config(config, overrides=overrides, interpolate=False)
    exclusive = True
    for name in cfg["nlp"]["pipeline"]:
        factory = str(cfg["components"].get(name, {}).get("factory", ""))
        if "textcat" in factory:
            exclusive = "multilabel" not in factory
    return exclusive


def _overrides_for(config: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides whose section ``config`` has (each config of a cv run gets only
    those: the embed config's encoder cache directory means nothing to a bow config)."""
    from spacy import util

    cfg = util.load_config(config, interpolate=False)
    kept = {}
    for key, value in overrides.items():
        section: Any = cfg
        for part in key.split(".")[:-1]:
            section = section.get(part) if isinstance(section, dict) else None
        if isinstance(section, dict):
            kept[key] = value
    return kept


def check_member_config(
    config: Path, overrides: dict[str, Any], first: Path, exclusive: bool, lang: str
) -> None:
    """An extra config must be a classifier of the main config's kind (E416) and language
    (E418): the folds' docs are tokenised once, and the members' probabilities pooled."""
    from spacy import util

    member_exclusive = config_is_exclusive(config, overrides)
    if member_exclusive != exclusive:
        kinds = {True: "exclusive", False: "multi-label"}
        raise ConfigError(
            Errors.E416.format(
                config=config,
                kind=kinds[member_exclusive],
                first=first,
                first_kind=kinds[exclusive],
            )
        )
    member_lang = util.load_config(config, overrides=overrides, interpolate=False)["nlp"]["lang"]
    if member_lang != lang:
        raise ConfigError(
            Errors.E418.format(config=config, lang=member_lang, first=first, first_lang=lang)
        )


def check_exclusive_gold(corpus: LabelledCorpus, path: Path, config: Path) -> None:
    """An exclusive config needs exactly one positive label per doc (raises E403)."""
    positives = (corpus.gold >= 0.5).sum(axis=1)
    bad = np.flatnonzero(positives != 1)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            Errors.E403.format(
                path=path,
                index=i,
                text=corpus.texts[i][:60],
                n_positive=int(positives[i]),
                labels=corpus.given_labels(i),
                config=config,
            )
        )


@dataclass
class FoldJob:
    """What one worker needs: file paths only (no docs cross the process boundary)."""

    fold: int
    config: str
    train: str
    dev: str
    held_out: str
    workdir: str
    overrides: dict[str, Any]
    keep_model: str | None = None
    #: model-best (chosen on dev, as ``spacy train``) or model-last.
    use_best: bool = True
    #: which config of the run (0 = the main one, then the --extra-config ones in order)
    member: int = 0


@dataclass
class FoldResult:
    fold: int
    labels: list[str]
    raw: np.ndarray
    seconds: float
    member: int = 0


def write_docs(
    nlp: Any, texts: Sequence[str], gold: np.ndarray, labels: Sequence[str], path: Path
) -> None:
    """Tokenise ``texts`` with ``nlp`` (the config's language) and save them with full cats."""
    doc_bin = DocBin(store_user_data=False)
    for doc, row in zip(nlp.tokenizer.pipe(texts), gold):
        doc.cats = {label: float(row[j]) for j, label in enumerate(labels)}
        doc_bin.add(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(path)


def run_fold(job: FoldJob) -> FoldResult:
    """Train the config on one fold's training part and score its held-out docs."""
    import io
    import time

    import spacy
    from spacy import util
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train as train_nlp

    from .evaluation import cats_matrix, find_textcat

    start = time.perf_counter()
    overrides = {
        **job.overrides,
        "paths.train": job.train,
        "paths.dev": job.dev,
    }
    output = Path(job.workdir) / f"model-{job.member}-fold-{job.fold}"
    try:
        config = util.load_config(job.config, overrides=overrides, interpolate=False)
        nlp = init_nlp(config, use_gpu=-1)
        sink = io.StringIO()
        output.mkdir(parents=True, exist_ok=True)
        train_nlp(nlp, output, use_gpu=-1, stdout=sink, stderr=sink)
        best = output / "model-best"
        if not (job.use_best and best.exists()):
            best = output / "model-last"
        trained = spacy.load(best)
    except TextcatKitError:
        raise
    except Exception as err:  # noqa: BLE001 - anything spaCy/thinc raise while training
        raise ConfigError(
            Errors.E412.format(fold=job.fold, config=job.config, detail=repr(err)[:400])
        ) from None
    _, textcat = find_textcat(trained)
    labels = list(textcat.labels)
    held_out = list(DocBin().from_disk(job.held_out).get_docs(trained.vocab))
    texts = [doc.text for doc in held_out]
    raw = cats_matrix(list(trained.pipe(texts, batch_size=256)), labels)
    if job.keep_model:
        keep = Path(job.keep_model)
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(best, keep)
    shutil.rmtree(output, ignore_errors=True)
    return FoldResult(job.fold, labels, raw, time.perf_counter() - start, job.member)


@dataclass
class MemberOOF:
    """One config's out-of-fold scores in a cv run (the main config, or an extra one)."""

    config: str
    overrides: dict[str, Any]
    raw: np.ndarray
    calibrated: np.ndarray
    fold_seconds: list[float]


@dataclass
class CVResult:
    """Everything ``cv`` computed; :func:`write_cv` saves it. With several configs,
    ``raw`` / ``calibrated`` are the pooled members' scores and ``members`` each one's."""

    corpus: LabelledCorpus
    labels: list[str]
    exclusive: bool
    folds: np.ndarray
    raw: np.ndarray
    calibrated: np.ndarray
    calibration: str
    report: dict[str, Any]
    issues: ExclusiveIssues | MultilabelIssues
    issue_records: list[dict[str, Any]] = field(default_factory=list)
    members: list[MemberOOF] = field(default_factory=list)


def resolve_calibration(method: str, exclusive: bool) -> str:
    if method not in CALIBRATIONS:
        raise ConfigError(
            Errors.E013.format(what="calibration", value=method, options=", ".join(CALIBRATIONS))
        )
    if method == "auto":
        return "temperature" if exclusive else "platt"
    return method


def cross_fit_calibrate(
    raw: np.ndarray, gold: np.ndarray, folds: np.ndarray, method: str, labels: Sequence[str]
) -> np.ndarray:
    """Calibrate out-of-fold scores: fold ``k`` by a calibrator fitted on the other folds."""
    if method == "none":
        return raw.copy()
    out = np.empty_like(raw)
    for k in np.unique(folds):
        held = folds == k
        if method == "temperature":
            calibrator: Any = TemperatureScaling().fit(raw[~held], gold[~held])
        else:
            calibrator = PerLabelCalibration(method=method).fit(  # type: ignore[arg-type]
                raw[~held], gold[~held], list(labels)
            )
        out[held] = calibrator.transform(raw[held])
    return out


def fold_metrics(
    probs: np.ndarray, gold: np.ndarray, exclusive: bool, labels: Sequence[str]
) -> dict[str, Any]:
    """Scores of one fold's held-out docs, with the package's metrics."""
    if exclusive:
        decided = np.zeros_like(probs, dtype=np.int64)
        decided[np.arange(len(probs)), probs.argmax(axis=1)] = 1
    else:
        decided = metrics.decide(probs, 0.5)
    prf = metrics.prf_per_label(decided, gold)
    result: dict[str, Any] = {
        "n_docs": int(len(probs)),
        "macro_f": prf.macro_f,
        "micro_f": prf.micro_f,
        "top_label_ece": metrics.top_label_ece(probs, gold),
        "classwise_ece": metrics.classwise_ece(probs, gold),
        "per_label_f": {label: float(prf.f1[j]) for j, label in enumerate(labels)},
    }
    if exclusive:
        result["accuracy"] = metrics.accuracy(probs, gold)
    return result


def summarise_folds(per_fold: list[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Mean and (sample) standard deviation over folds of every fold metric."""

    def stats(values: list[float]) -> dict[str, float]:
        array = np.asarray(values, dtype=np.float64)
        std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
        return {"mean": float(array.mean()), "std": std}

    keys = [k for k in per_fold[0] if k not in ("per_label_f", "n_docs")]
    summary: dict[str, Any] = {key: stats([fold[key] for fold in per_fold]) for key in keys}
    summary["per_label_f"] = {
        label: stats([fold["per_label_f"][label] for fold in per_fold]) for label in labels
    }
    return summary


def issue_records(
    corpus: LabelledCorpus,
    probs: np.ndarray,
    labels: Sequence[str],
    issues: ExclusiveIssues | MultilabelIssues,
    folds: np.ndarray,
) -> list[dict[str, Any]]:
    """One JSON-ready record per suspected issue, most likely wrong first.

    ``score`` is how likely the given label is wrong, in [0, 1] (1 - self-confidence, or
    (1 - margin) / 2 for the normalised margin; multi-label ``label_set``: the posterior
    that the doc's given set is wrong, and per pair ``p_wrong``, the posterior that that
    cell is wrong); ``label_quality`` is the ranking quantity.
    """

    def to_score(quality: float) -> float:
        if issues.rank_by in ("self_confidence", "posterior"):
            return round(1.0 - quality, 6)
        return round((1.0 - quality) / 2.0, 6)

    records: list[dict[str, Any]] = []
    if isinstance(issues, ExclusiveIssues):
        given_idx = corpus_given_index(corpus, labels)
        for rank, i in enumerate(issues.order.tolist(), 1):
            g, s = int(given_idx[i]), int(issues.suggested[i])
            records.append(
                _base_record(corpus, i, rank, folds)
                | {
                    "given": labels[g],
                    "suggested": labels[s],
                    "score": to_score(float(issues.quality[i])),
                    "label_quality": round(float(issues.quality[i]), 6),
                    "p_given": round(float(probs[i, g]), 6),
                    "p_suggested": round(float(probs[i, s]), 6),
                }
            )
        return records
    positive = corpus_gold_in(corpus, labels) >= 0.5
    for rank, i in enumerate(issues.doc_order.tolist(), 1):
        flagged = np.flatnonzero(issues.is_issue[i])
        suggested = positive[i].copy()
        suggested[flagged] = ~suggested[flagged]
        pairs = sorted(
            (
                {
                    "label": labels[j],
                    "given": bool(positive[i, j]),
                    "suggested": bool(suggested[j]),
                    "p": round(float(probs[i, j]), 6),
                    "p_wrong": round(1.0 - float(issues.pair_quality[i, j]), 6),
                    "label_quality": round(float(issues.pair_quality[i, j]), 6),
                }
                for j in flagged
            ),
            key=lambda pair: pair["label_quality"],
        )
        records.append(
            _base_record(corpus, i, rank, folds)
            | {
                "given": [labels[j] for j in np.flatnonzero(positive[i])],
                "suggested": [labels[j] for j in np.flatnonzero(suggested)],
                "score": to_score(float(issues.doc_quality[i])),
                "label_quality": round(float(issues.doc_quality[i]), 6),
                "pairs": pairs,
            }
        )
    return records


def _base_record(corpus: LabelledCorpus, i: int, rank: int, folds: np.ndarray) -> dict[str, Any]:
    record: dict[str, Any] = {
        "rank": rank,
        "index": i,
        "id": corpus.ids[i],
        "text": corpus.texts[i],
        "fold": int(folds[i]),
    }
    for key in ("ls_task_id", "source", "line"):
        if key in corpus.meta[i]:
            record[key] = corpus.meta[i][key]
    return record


def corpus_gold_in(corpus: LabelledCorpus, labels: Sequence[str]) -> np.ndarray:
    """The corpus's gold matrix with columns in ``labels`` order."""
    index = {label: j for j, label in enumerate(corpus.labels)}
    return corpus.gold[:, [index[label] for label in labels]]


def corpus_given_index(corpus: LabelledCorpus, labels: Sequence[str]) -> np.ndarray:
    return corpus_gold_in(corpus, labels).argmax(axis=1)


def run_cv(
    config: Path,
    train: Path,
    *,
    n_folds: int = 5,
    n_jobs: int = 1,
    seed: int = 0,
    dev_fraction: float = 0.1,
    calibration: str = "auto",
    filter_by: str = "prune_by_noise_rate",
    rank_by: str = "self_confidence",
    multilabel_method: str = "label_set",
    overrides: dict[str, Any] | None = None,
    keep_models: Path | None = None,
    corpus: LabelledCorpus | None = None,
    extra_configs: Sequence[Path] = (),
    swaps: bool = True,
) -> CVResult:
    """Cross-validate ``config`` on ``train`` and rank its label issues (module docstring).

    ``corpus`` replaces the file's labels (e.g. with injected noise, for benchmarks);
    its docs must be those of ``train``, in order. ``filter_by`` / ``rank_by`` apply to
    exclusive tasks and to the ``per_label`` multi-label method, ``multilabel_method`` to
    multi-label tasks (:func:`textcat_kit.maths.label_issues.find_multilabel_issues`;
    ``swaps``: the ``label_set`` posterior also weighs a given label replaced by another
    one, at a flip rate EM estimates).

    ``extra_configs``: more configs of the same kind, trained on the same folds; each
    one's out-of-fold scores are calibrated on their own, then all members' calibrated
    probabilities are pooled by their normalised geometric mean
    (:func:`textcat_kit.maths.label_issues.pool_probabilities`) and the issues are ranked
    on the pool. Each override applies to the configs that have its section (e.g. an
    encoder's cache directory only to the embed config); one that none has is E419.
    """
    from spacy import util

    check_choice(filter_by, "filter_by", FILTER_BY)
    check_choice(rank_by, "rank_by", RANK_BY)
    check_choice(multilabel_method, "multilabel_method", MULTILABEL_METHODS)
    overrides = dict(overrides or {})
    overrides.setdefault("system.seed", seed)
    corpus = corpus or read_corpus(train)
    n_docs = len(corpus.texts)
    if n_folds < 2 or n_folds > n_docs:
        raise ConfigError(Errors.E402.format(n_folds=n_folds, n_docs=n_docs))
    configs = [Path(config), *(Path(extra) for extra in extra_configs)]
    member_overrides = [_overrides_for(member, overrides) for member in configs]
    for key in overrides:
        if not any(key in kept for kept in member_overrides):
            raise ConfigError(
                Errors.E419.format(key=key, configs=", ".join(str(c) for c in configs))
            )
    exclusive = config_is_exclusive(config, member_overrides[0])
    lang = util.load_config(config, overrides=member_overrides[0], interpolate=False)["nlp"]["lang"]
    for extra, extra_overrides in zip(configs[1:], member_overrides[1:]):
        check_member_config(extra, extra_overrides, config, exclusive, lang)
    if exclusive:
        check_exclusive_gold(corpus, train, config)
    counts = (corpus.gold >= 0.5).sum(axis=0)
    for label, count in zip(corpus.labels, counts):
        if count < n_folds:
            warnings.warn(
                Warnings.W400.format(label=label, count=int(count), n_folds=n_folds), stacklevel=2
            )
    folds = fold_ids(corpus.gold, n_folds, seed)
    tokenizer_nlp = util.get_lang_class(lang)()
    with tempfile.TemporaryDirectory(prefix="textcat-kit-cv-") as tmp:
        jobs = []
        for k in range(n_folds):
            held = np.flatnonzero(folds == k)
            rest = np.flatnonzero(folds != k)
            inner = fold_ids(corpus.gold[rest], max(2, round(1 / dev_fraction)), seed + 1 + k)
            dev_idx, train_idx = rest[inner == 0], rest[inner != 0]
            paths = {}
            for part, idx in (("train", train_idx), ("dev", dev_idx), ("held", held)):
                paths[part] = Path(tmp) / f"fold-{k}-{part}.spacy"
                write_docs(
                    tokenizer_nlp,
                    [corpus.texts[i] for i in idx],
                    corpus.gold[idx],
                    corpus.labels,
                    paths[part],
                )
            for m, (member_config, member_override) in enumerate(zip(configs, member_overrides)):
                keep_name = f"fold-{k}" if m == 0 else f"extra-{m}-fold-{k}"
                jobs.append(
                    FoldJob(
                        fold=k,
                        config=str(member_config),
                        train=str(paths["train"]),
                        dev=str(paths["dev"]),
                        held_out=str(paths["held"]),
                        workdir=tmp,
                        overrides=member_override,
                        keep_model=str(keep_models / keep_name) if keep_models else None,
                        member=m,
                    )
                )
        results = _run_jobs(jobs, n_jobs)
    labels = sorted(results, key=lambda r: (r.member, r.fold))[0].labels
    gold = corpus_gold_in(corpus, labels)
    method = resolve_calibration(calibration, exclusive)
    members: list[MemberOOF] = []
    for m, member_config in enumerate(configs):
        raw_m = np.zeros((n_docs, len(labels)))
        seconds = {}
        for result in sorted((r for r in results if r.member == m), key=lambda r: r.fold):
            if set(result.labels) != set(labels):
                raise ConfigError(
                    Errors.E417.format(
                        config=member_config,
                        labels=sorted(result.labels),
                        first=config,
                        first_labels=sorted(labels),
                    )
                )
            raw_m[folds == result.fold] = result.raw[:, [result.labels.index(lb) for lb in labels]]
            seconds[result.fold] = round(result.seconds, 1)
        calibrated_m = cross_fit_calibrate(raw_m, gold, folds, method, labels)
        members.append(
            MemberOOF(
                config=str(member_config),
                overrides=member_overrides[m],
                raw=raw_m,
                calibrated=calibrated_m,
                fold_seconds=[seconds[k] for k in range(n_folds)],
            )
        )
    if len(members) == 1:
        raw, calibrated = members[0].raw, members[0].calibrated
    else:
        raw = pool_probabilities([member.raw for member in members], exclusive)
        calibrated = pool_probabilities([member.calibrated for member in members], exclusive)
    fold_seconds = {
        k: round(sum(member.fold_seconds[k] for member in members), 1) for k in range(n_folds)
    }
    per_fold_raw = [
        fold_metrics(raw[folds == k], gold[folds == k], exclusive, labels) for k in range(n_folds)
    ]
    per_fold = [
        fold_metrics(calibrated[folds == k], gold[folds == k], exclusive, labels)
        for k in range(n_folds)
    ]
    issues: ExclusiveIssues | MultilabelIssues
    if exclusive:
        exclusive_issues = find_label_issues(
            calibrated,
            gold.argmax(axis=1),
            filter_by=cast(FilterBy, filter_by),
            rank_by=cast(RankBy, rank_by),
        )
        n_issues = len(exclusive_issues.order)
        noise = exclusive_issues.joint.noise_rate()
        issues = exclusive_issues
    else:
        multilabel_issues = find_multilabel_issues(
            calibrated,
            gold,
            method=cast(MultilabelMethod, multilabel_method),
            filter_by=cast(FilterBy, filter_by),
            rank_by=cast(RankBy, rank_by),
            swaps=swaps,
        )
        n_issues = len(multilabel_issues.doc_order)
        noise = multilabel_issues.noise_rate()
        issues = multilabel_issues
    issue_method: dict[str, Any] = {"filter_by": filter_by, "rank_by": rank_by}
    if isinstance(issues, MultilabelIssues):
        issue_method = {"method": issues.method, "rank_by": issues.rank_by}
        if issues.method == "per_label":
            issue_method["filter_by"] = filter_by
        if issues.noise is not None:
            issue_method |= {
                "filter_by": "expected number of wrong cells",
                "estimated_add_rate": issues.noise.add_rate,
                "estimated_remove_rate": issues.noise.remove_rate,
                "swaps": swaps,
                "estimated_flip_rate": issues.noise.flip_rate,
                "estimated_label_counts": [round(float(v), 6) for v in issues.noise.cardinality],
                "em_iterations": issues.noise.n_iter,
                "em_converged": issues.noise.converged,
            }
    report = {
        "config": str(config),
        "train": str(train),
        "n_docs": n_docs,
        "n_folds": n_folds,
        "seed": seed,
        "task": "exclusive" if exclusive else "multilabel",
        "labels": labels,
        "calibration": method,
        "overrides": {k: v for k, v in overrides.items()},
        "fold_sizes": [int((folds == k).sum()) for k in range(n_folds)],
        "fold_seconds": [fold_seconds[k] for k in range(n_folds)],
        "folds": per_fold,
        "folds_raw": per_fold_raw,
        "summary": summarise_folds(per_fold, labels),
        "summary_raw": summarise_folds(per_fold_raw, labels),
        **(
            {
                "pooling": "normalised geometric mean of the members' calibrated probabilities",
                "members": [
                    member_report(member, gold, folds, exclusive, labels) for member in members
                ],
            }
            if len(members) > 1
            else {}
        ),
        "label_issues": {
            **issue_method,
            "n_issues": n_issues,
            "estimated_noise_rate": noise,
            **({"n_pairs": int(len(issues.pairs))} if isinstance(issues, MultilabelIssues) else {}),
        },
    }
    cv_result = CVResult(
        corpus=corpus,
        labels=labels,
        exclusive=exclusive,
        folds=folds,
        raw=raw,
        calibrated=calibrated,
        calibration=method,
        report=report,
        issues=issues,
        members=members,
    )
    cv_result.issue_records = issue_records(corpus, calibrated, labels, issues, folds)
    return cv_result


def member_report(
    member: MemberOOF, gold: np.ndarray, folds: np.ndarray, exclusive: bool, labels: list[str]
) -> dict[str, Any]:
    """One pooled config's own figures: macro-F1 and ECE of its calibrated scores."""
    per_fold = [
        fold_metrics(member.calibrated[folds == k], gold[folds == k], exclusive, labels)
        for k in np.unique(folds).tolist()
    ]
    summary = summarise_folds(per_fold, labels)
    return {
        "config": member.config,
        "overrides": member.overrides,
        "fold_seconds": member.fold_seconds,
        "summary": {key: value for key, value in summary.items() if key != "per_label_f"},
    }


def _run_jobs(jobs: list[FoldJob], n_jobs: int) -> list[FoldResult]:
    n_jobs = max(1, min(n_jobs, len(jobs), os.cpu_count() or 1))
    if n_jobs == 1:
        return [run_fold(job) for job in jobs]
    # fork where the platform has it (no __main__ guard needed in the caller's script);
    # the workers only read files and the config, so nothing of the parent's state matters.
    method = "fork" if "fork" in get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=get_context(method)) as pool:
        return list(pool.map(run_fold, jobs))


def write_cv(
    result: CVResult, output_dir: Path, *, overwrite: bool = False, models: Path | None = None
) -> None:
    """Save the cv outputs into ``output_dir`` in one atomic step (module docstring);
    ``models`` (fold models kept by ``run_cv``) are moved into ``output_dir/folds``."""
    with atomic_dir(output_dir, overwrite=overwrite, command="textcat-kit cv") as tmp:
        if models is not None and models.exists():
            shutil.move(str(models), str(tmp / "folds"))
        np.save(tmp / "oof.npy", result.calibrated, allow_pickle=False)
        np.save(tmp / "oof_raw.npy", result.raw, allow_pickle=False)
        if len(result.members) > 1:
            # (n_configs, n_docs, n_labels): each config's own calibrated probabilities
            stacked = np.stack([member.calibrated for member in result.members])
            np.save(tmp / "oof_members.npy", stacked, allow_pickle=False)
        srsly.write_json(tmp / "labels.json", result.labels)
        gold = corpus_gold_in(result.corpus, result.labels) >= 0.5
        lines = []
        for i, text in enumerate(result.corpus.texts):
            given = [result.labels[j] for j in np.flatnonzero(gold[i])]
            lines.append(
                {
                    "index": i,
                    "id": result.corpus.ids[i],
                    "text": text,
                    "fold": int(result.folds[i]),
                    "given": given[0] if result.exclusive and len(given) == 1 else given,
                    "probs": {
                        label: round(float(result.calibrated[i, j]), 6)
                        for j, label in enumerate(result.labels)
                    },
                }
            )
        srsly.write_jsonl(tmp / "oof.jsonl", lines)
        srsly.write_json(tmp / "cv_report.json", result.report)
        (tmp / "cv_report.md").write_text(cv_report_markdown(result.report), encoding="utf-8")
        srsly.write_jsonl(tmp / "label_issues.jsonl", result.issue_records)
        (tmp / "label_issues.md").write_text(
            label_issues_markdown(result.issue_records, result.report), encoding="utf-8"
        )


def _pm(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def cv_report_markdown(report: dict[str, Any]) -> str:
    """The CV report people read: mean ± std over folds, per label, worst labels first."""
    summary, raw = report["summary"], report["summary_raw"]
    lines = [
        f"# Cross-validation: {report['config']}",
        "",
        f"{report['n_docs']} docs of `{report['train']}`, {report['n_folds']} stratified folds "
        f"(seed {report['seed']}), {report['task']}; out-of-fold scores calibrated with "
        f"{report['calibration']} (cross-fitted over folds). Mean ± std over folds.",
        "",
        "| metric | calibrated | raw |",
        "|---|---|---|",
    ]
    for key in summary:
        if key == "per_label_f":
            continue
        lines.append(f"| {key} | {_pm(summary[key])} | {_pm(raw[key])} |")
    issues = report["label_issues"]
    if "members" in report:
        lines += [
            "",
            f"Out-of-fold probabilities pooled over {len(report['members'])} configs "
            f"({report['pooling']}); each config's own calibrated scores:",
            "",
            "| config | macro_f | classwise_ece | fold seconds |",
            "|---|---|---|---|",
        ]
        for member in report["members"]:
            lines.append(
                f"| {member['config']} | {_pm(member['summary']['macro_f'])} | "
                f"{_pm(member['summary']['classwise_ece'])} | "
                f"{sum(member['fold_seconds']):.0f} |"
            )
    lines += [
        "",
        f"Label issues (confident learning, {_method_text(issues)}): **{issues['n_issues']}** "
        f"docs; estimated noise rate {issues['estimated_noise_rate']:.3f}"
        f"{_rates_text(issues)}. See `label_issues.md`.",
        "",
        "## Per label (F1, worst first)",
        "",
        "| label | F1 |",
        "|---|---|",
    ]
    per_label = sorted(summary["per_label_f"].items(), key=lambda item: item[1]["mean"])
    lines += [f"| {label} | {_pm(stat)} |" for label, stat in per_label]
    return "\n".join(lines) + "\n"


def _method_text(issues: dict[str, Any]) -> str:
    """How the issues were found, for the reports."""
    if issues.get("method") == "label_set":
        return (
            "multi-label label-set posterior: the expected number of wrong (text, label) "
            "cells, most probable first"
        )
    prefix = "per-label binary problems, " if issues.get("method") == "per_label" else ""
    return f"{prefix}{issues['filter_by']}, ranked by {issues['rank_by']}"


def _rates_text(issues: dict[str, Any]) -> str:
    if "estimated_add_rate" not in issues:
        return ""
    return (
        f" (share of texts whose label set is wrong; a label is added to a text with rate "
        f"{issues['estimated_add_rate']:.4f} and dropped with rate "
        f"{issues['estimated_remove_rate']:.4f}"
        + (
            f"; a given label replaces the right one with rate {issues['estimated_flip_rate']:.4f}"
            if issues.get("swaps")
            else ""
        )
        + ")"
    )


def label_issues_markdown(
    records: list[dict[str, Any]], report: dict[str, Any], limit: int = 50
) -> str:
    """The suspected label errors, most likely first, as a readable table."""
    issues = report["label_issues"]
    lines = [
        "# Suspected label errors",
        "",
        f"{len(records)} of {report['n_docs']} docs (confident learning, Northcutt et al. "
        f"2021: {_method_text(issues)}). `score` = how likely "
        "the given label (set) is wrong. All of them are in `label_issues.jsonl`; push them to a "
        "Label Studio review project with `textcat-kit labelstudio push-issues`.",
        "",
        "| rank | id | text | given | suggested | score |",
        "|---|---|---|---|---|---|",
    ]
    for record in records[:limit]:
        text = str(record["text"]).replace("|", "\\|").replace("\n", " ")
        if len(text) > 90:
            text = text[:87] + "..."
        given = _label_text(record["given"])
        suggested = _label_text(record["suggested"])
        lines.append(
            f"| {record['rank']} | {record['id']} | {text} | {given} | {suggested} | "
            f"{record['score']:.3f} |"
        )
    if len(records) > limit:
        lines.append(f"\n... and {len(records) - limit} more in `label_issues.jsonl`.")
    # Most frequent given -> suggested pairs: where the guidelines may be unclear.
    pairs: dict[tuple[str, str], int] = {}
    for record in records:
        key = (_label_text(record["given"]), _label_text(record["suggested"]))
        pairs[key] = pairs.get(key, 0) + 1
    if pairs:
        lines += ["", "## Most frequent given → suggested", "", "| given | suggested | n |"]
        lines.append("|---|---|---|")
        for (given, suggested), n in sorted(pairs.items(), key=lambda kv: -kv[1])[:15]:
            lines.append(f"| {given} | {suggested} | {n} |")
    return "\n".join(lines) + "\n"


def _label_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(value) if value else "(none)"
    return str(value)


def cv_command(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training config."),
    train: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Training .spacy file (every text gets a score)."
    ),
    output_dir: Path = typer.Option(..., "--output-dir", help="Where the cv outputs go."),
    n_folds: int = typer.Option(5, "--n-folds", help="Number of folds."),
    n_jobs: int = typer.Option(1, "--n-jobs", help="Folds trained in parallel (processes)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and of training."),
    dev_fraction: float = typer.Option(
        0.1, "--dev-fraction", help="Share of each fold's training part used as dev."
    ),
    calibration: str = typer.Option("auto", help="auto | temperature | platt | isotonic | none."),
    filter_by: str = typer.Option(
        "prune_by_noise_rate", help="prune_by_noise_rate | confident_joint | both."
    ),
    rank_by: str = typer.Option("self_confidence", help="self_confidence | normalized_margin."),
    multilabel_method: str = typer.Option(
        "label_set",
        help="Multi-label issues: label_set (posterior over each text's label set, noise "
        "rates and label counts estimated by EM) | per_label (binary confident learning per "
        "label, with --filter-by / --rank-by).",
    ),
    swaps: bool = typer.Option(
        True,
        "--swaps/--no-swaps",
        help="label_set: also weigh a given label that should have been another one (a flip; "
        "its rate estimated by EM). --no-swaps: only single added / dropped labels.",
    ),
    multilabel_config: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Config to use when --data-json says multilabel."
    ),
    data_json: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="data.json written by `textcat-kit corpus`."
    ),
    extra_configs: list[Path] = typer.Option(
        [],
        "--extra-config",
        exists=True,
        dir_okay=False,
        help="Another config of the same kind, trained on the same folds (repeatable); the "
        "calibrated out-of-fold probabilities of all configs are pooled (normalised geometric "
        "mean) before the label issues are ranked.",
    ),
    max_epochs: int | None = typer.Option(None, help="Override training.max_epochs."),
    keep_models: bool = typer.Option(
        False, "--keep-models", help="Keep each fold's model in OUTPUT_DIR/folds/."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier cv output."),
) -> None:
    """K-fold cross-validation: out-of-fold probabilities, CV report, ranked label issues."""
    try:
        chosen = choose_config(config, multilabel_config, data_json)
        overrides: dict[str, Any] = {}
        if max_epochs is not None:
            overrides["training.max_epochs"] = max_epochs
        keep = None
        if keep_models:
            keep = Path(tempfile.mkdtemp(prefix="textcat-kit-cv-models-"))
        result = run_cv(
            chosen,
            train,
            n_folds=n_folds,
            n_jobs=n_jobs,
            seed=seed,
            dev_fraction=dev_fraction,
            calibration=calibration,
            filter_by=filter_by,
            rank_by=rank_by,
            multilabel_method=multilabel_method,
            overrides=overrides,
            keep_models=keep,
            extra_configs=extra_configs,
            swaps=swaps,
        )
        write_cv(result, output_dir, overwrite=overwrite, models=keep)
    except TextcatKitError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=1) from None
    summary = result.report["summary"]
    headline = ", ".join(
        f"{key} {_pm(summary[key])}"
        for key in ("macro_f", "accuracy", "top_label_ece", "classwise_ece")
        if key in summary
    )
    pooled = f" (pooled with {', '.join(map(str, extra_configs))})" if extra_configs else ""
    typer.echo(f"cv {chosen}{pooled} on {train}: {result.report['n_docs']} docs, {n_folds} folds")
    typer.echo(f"  {headline}")
    typer.echo(
        f"  label issues: {result.report['label_issues']['n_issues']} "
        f"(estimated noise rate {result.report['label_issues']['estimated_noise_rate']:.3f})"
    )
    typer.echo(f"wrote {output_dir}/{{oof.npy,oof.jsonl,cv_report.md,label_issues.jsonl}}")
