"""``textcat-kit train``: spaCy training with a schedule that scales with the data.

A config's ``eval_frequency``, ``patience`` and ``max_epochs`` are step counts; fixed numbers
tuned on one data set pick ``model-best`` after a handful of updates on a small set and stop
a large one early. :func:`training_schedule` derives them from the number of training docs
and the config's batch size instead (evaluate once per epoch, or several times per epoch on
large sets; patience in epochs; enough updates on tiny sets), and :func:`train_textcat`
passes them to ``spacy train`` as config overrides, so the ``config.cfg`` saved with the
model records what was used.

For plain SGD (the bag-of-words configs) the learning rate is also derived from the data
(:func:`sgd_learn_rate`). Why: the classifiers' gradient is *summed* over the batch, and
the bias of a label sees every doc of the batch. With two exclusive classes and a 1:8
skew, the first update at learning rate 1.0 moves the bias by ~20; a few updates later the
logits of the two classes are ~100 apart, the float32 softmax of the minority class is
exactly 0, and the backward pass of spaCy's ``softmax_activation`` (which multiplies by
``p``) returns a zero gradient: the model predicts the majority class forever. With 77
classes the same learning rate moves each bias by ~64/77 per update, which is why a rate
that works on Banking77 kills a binary task. The rate here keeps a label's bias step
bounded whatever the number of labels (see :func:`sgd_learn_rate`).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import typer

from .errors import ConfigError, DataError, Errors

#: Fewest parameter updates a run gets: tiny sets train for more epochs.
MIN_UPDATES = 600
#: Fewest / most steps between two evaluations: tiny sets are evaluated every few epochs,
#: large ones several times per epoch.
MIN_STEPS_BETWEEN_EVALS = 25
MAX_STEPS_BETWEEN_EVALS = 500
#: Stop when model-best has not improved for this many epochs (and evaluations).
PATIENCE_EPOCHS = 3
MIN_PATIENCE_EVALS = 4
#: Upper bound on epochs (tiny sets), whatever MIN_UPDATES asks for.
MAX_EPOCHS = 300
#: Largest bias step per update (in logits) that :func:`sgd_learn_rate` allows, and the
#: ceiling of the rate itself.
MAX_BIAS_STEP = 8.0
MAX_SGD_LEARN_RATE = 1.0
#: Most extra updates a run gets for a learning rate below the ceiling (see plan_training).
MAX_UPDATE_FACTOR = 4.0
#: Exclusive classes: ``learn_rate * batch * h`` (``h``: the curvature of the summed loss in
#: the most exposed label's bias, per doc, at the balance point) is kept at most this, i.e.
#: one bias update is at most one Newton step (see :func:`sgd_batch_and_rate`).
MAX_BIAS_NEWTON_STEP = 1.0
#: Smallest batch :func:`sgd_batch_and_rate` shrinks a config's batch to; below it the
#: learning rate is lowered instead (every update rewrites the whole weight table).
MIN_SGD_BATCH = 8
#: Hash buckets per label of textcat_kit.TextCatBOW.v1: at least BUCKETS_PER_NGRAM times the
#: distinct training n-grams (fewer collisions), within MAX_BOW_WEIGHTS weights in all.
BUCKETS_PER_NGRAM = 8
MAX_BOW_WEIGHTS = 2**22
BOW_ARCHITECTURES = ("textcat_kit.TextCatBOW.v1",)

VARIANTS_HELP = "bow | cnn | embed | transformer (any configs/textcat[_multilabel]_{variant}.cfg)"


@dataclass(frozen=True)
class TrainingSchedule:
    """Step counts for ``spacy train`` derived from the data (see :func:`training_schedule`)."""

    n_train_docs: int
    batch_size: int
    steps_per_epoch: int
    eval_frequency: int
    patience: int
    max_epochs: int
    learn_rate: float | None = None
    learn_rate_reason: str = ""
    batch_keys: tuple[str, ...] = ()
    hash_length: int | None = None
    hash_length_key: str = ""

    def overrides(self) -> dict[str, Any]:
        """spaCy config overrides (dotted keys) that apply this schedule."""
        out: dict[str, Any] = {
            "training.eval_frequency": self.eval_frequency,
            "training.patience": self.patience,
            "training.max_epochs": self.max_epochs,
            "training.max_steps": 0,
        }
        if self.learn_rate is not None:
            out["training.optimizer.learn_rate"] = self.learn_rate
        for key in self.batch_keys:
            out[key] = self.batch_size
        if self.hash_length is not None and self.hash_length_key:
            out[self.hash_length_key] = self.hash_length
        return out

    def describe(self) -> str:
        evals = self.steps_per_epoch / self.eval_frequency
        every = (
            f"{evals:.1f} evaluations per epoch"
            if evals >= 1
            else f"an evaluation every {1 / evals:.1f} epochs"
        )
        text = (
            f"{self.n_train_docs} training docs, batches of {self.batch_size}: "
            f"{self.steps_per_epoch} updates per epoch; {every} (eval_frequency "
            f"{self.eval_frequency}), patience {self.patience} updates "
            f"(~{self.patience / self.steps_per_epoch:.1f} epochs), at most "
            f"{self.max_epochs} epochs"
        )
        if self.learn_rate is not None:
            text += f"; SGD learn_rate {self.learn_rate:.4g} ({self.learn_rate_reason})"
        if self.hash_length is not None:
            text += f"; {self.hash_length} hash buckets per label"
        return text


def training_schedule(
    n_train_docs: int,
    batch_size: int,
    *,
    base_epochs: int,
    min_updates: int | None = None,
) -> TrainingSchedule:
    """Evaluation frequency, patience and epochs for ``n_train_docs`` in batches of ``batch_size``.

    ``base_epochs`` (the config's ``max_epochs``) is what a large set gets; a small set gets
    more epochs, so that the run makes at least ``min_updates`` updates (capped at
    :data:`MAX_EPOCHS`). Evaluation: once per epoch, every few epochs when an epoch has fewer
    than :data:`MIN_STEPS_BETWEEN_EVALS` updates, and several times per epoch when it has more
    than :data:`MAX_STEPS_BETWEEN_EVALS`. Patience: :data:`PATIENCE_EPOCHS` epochs (at least
    :data:`MIN_PATIENCE_EVALS` evaluations, at least a quarter of the run on tiny sets).
    """
    if n_train_docs < 1 or batch_size < 1 or base_epochs < 1:
        raise ConfigError(
            Errors.E063.format(n_docs=n_train_docs, batch_size=batch_size, epochs=base_epochs)
        )
    min_updates = MIN_UPDATES if min_updates is None else min_updates
    steps_per_epoch = math.ceil(n_train_docs / batch_size)
    max_epochs = min(MAX_EPOCHS, max(base_epochs, math.ceil(min_updates / steps_per_epoch)))
    if steps_per_epoch < MIN_STEPS_BETWEEN_EVALS:
        eval_frequency = steps_per_epoch * math.ceil(MIN_STEPS_BETWEEN_EVALS / steps_per_epoch)
    else:
        evals_per_epoch = math.ceil(steps_per_epoch / MAX_STEPS_BETWEEN_EVALS)
        eval_frequency = math.ceil(steps_per_epoch / evals_per_epoch)
    patience = max(
        PATIENCE_EPOCHS * steps_per_epoch,
        MIN_PATIENCE_EVALS * eval_frequency,
        (max_epochs * steps_per_epoch) // 4,
    )
    return TrainingSchedule(
        n_train_docs=n_train_docs,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        eval_frequency=eval_frequency,
        patience=patience,
        max_epochs=max_epochs,
    )


def sgd_learn_rate(
    label_counts: Sequence[float],
    n_docs: int,
    batch_size: int,
    *,
    exclusive: bool,
    max_bias_step: float | None = None,
    ceiling: float | None = None,
) -> tuple[float, str]:
    """Plain-SGD learning rate for a linear classifier whose loss gradient is summed per batch.

    A label's bias moves by ``learn_rate * sum_i (p_i - y_i)`` per update. At the start
    (all weights 0) ``p`` is ``1 / K`` for exclusive classes and 0.5 for every multi-label
    label, so the expected first step of label ``j``'s bias is
    ``learn_rate * batch_size * |p0 - prior_j|``. The rate is the largest (up to ``ceiling``)
    that keeps this step at most ``max_bias_step`` logits for every label: the softmax /
    sigmoid then cannot be thrown into float32 saturation, where its gradient is exactly 0.
    Returns the rate and a sentence saying what bounded it.
    """
    max_bias_step = MAX_BIAS_STEP if max_bias_step is None else max_bias_step
    ceiling = MAX_SGD_LEARN_RATE if ceiling is None else ceiling
    counts = np.asarray(label_counts, dtype=np.float64)
    if n_docs < 1 or batch_size < 1 or counts.size == 0:
        raise ConfigError(Errors.E063.format(n_docs=n_docs, batch_size=batch_size, epochs="-"))
    priors = counts / n_docs
    p0 = 1.0 / counts.size if exclusive else 0.5
    gap = float(np.max(np.abs(p0 - priors)))
    step_at_1 = batch_size * gap
    if step_at_1 * ceiling <= max_bias_step:
        return ceiling, (
            f"first bias step {step_at_1 * ceiling:.2f} logits at the ceiling {ceiling:g}"
        )
    rate = max_bias_step / step_at_1
    return rate, (
        f"bounds the first bias step to {max_bias_step:g} logits: batch {batch_size} x "
        f"largest |start p {p0:.3f} - prior| {gap:.3f}"
    )


def bias_curvature(
    label_counts: Sequence[float],
    n_docs: int,
    class_weights: Sequence[float] | np.ndarray | None = None,
) -> float:
    """Exclusive classes: the per-doc curvature of the (class-weighted) cross-entropy in the
    bias of the most exposed class, at the balance point.

    The second derivative of the summed loss in class ``j``'s bias is
    ``sum_i w_{y_i} p_ij (1 - p_ij)``. Where the biases balance the data, ``p_j`` is the
    class's weighted share ``q_j = w_j n_j / sum_c w_c n_c`` and each doc contributes the mean
    weight ``m = sum_c w_c n_c / n_docs``, so the curvature per doc is
    ``m * max_j q_j (1 - q_j)``: 1/4 for two (balanced or balance-weighted) classes, about
    ``1 / K`` for ``K``.
    """
    counts = np.asarray(label_counts, dtype=np.float64)
    weights = np.ones_like(counts) if class_weights is None else np.asarray(class_weights)
    if n_docs < 1 or counts.size == 0 or weights.shape != counts.shape:
        raise ConfigError(Errors.E063.format(n_docs=n_docs, batch_size="-", epochs="-"))
    mass = counts * weights
    total = float(mass.sum())
    if total <= 0:
        return 0.25
    shares = mass / total
    return float(total / n_docs * np.max(shares * (1.0 - shares)))


def sgd_batch_and_rate(
    label_counts: Sequence[float],
    n_docs: int,
    batch_size: int,
    *,
    exclusive: bool,
    class_weights: Sequence[float] | np.ndarray | None = None,
    can_resize_batch: bool = True,
) -> tuple[int, float, str]:
    """Batch size and plain-SGD learning rate for a linear classifier whose loss gradient is
    summed over the batch.

    Exclusive classes: one update moves class ``j``'s bias by ``learn_rate * sum_i (p_ij -
    y_ij)``, so measured in Newton steps (one step lands on the bias's optimum) an update is
    ``learn_rate * batch * h`` (``h``: :func:`bias_curvature`). Above 1 the bias overshoots
    its optimum, above 2 it swings further out every update (gradient descent on a quadratic),
    and the weights of every n-gram in the next batch absorb the swing. With 77 classes
    ``h`` is 0.013 and batches of 64 at rate 1.0 make 0.83 Newton steps; with 6 classes they
    make 8, with 2 classes 16: the few-class tasks train noisily and need many more epochs.
    The per-doc rate (how far one doc moves its own n-gram weights, which is what learns the
    rare n-grams) stays at the ceiling and the batch shrinks to ``1 / (ceiling * h)``, within
    [:data:`MIN_SGD_BATCH`, the config's batch]; at :data:`MIN_SGD_BATCH` the rate is lowered
    instead. The first-step bound of :func:`sgd_learn_rate` applies on top.

    Multi-label tasks keep the config's batch and the rate of :func:`sgd_learn_rate`.
    Returns (batch, rate, a sentence saying what bounded them).
    """
    ceiling = MAX_SGD_LEARN_RATE
    batch = batch_size
    notes = []
    if exclusive:
        h = bias_curvature(label_counts, n_docs, class_weights)
        if can_resize_batch and h > 0:
            fitting = int(math.floor(MAX_BIAS_NEWTON_STEP / (ceiling * h)))
            batch = max(MIN_SGD_BATCH, min(batch_size, fitting))
            if batch != batch_size:
                notes.append(
                    f"batch {batch} instead of {batch_size}: the bias curvature per doc is "
                    f"{h:.3f}, so an update at rate {ceiling:g} is at most "
                    f"{MAX_BIAS_NEWTON_STEP:g} Newton step"
                )
    rate, reason = sgd_learn_rate(label_counts, n_docs, batch, exclusive=exclusive)
    notes.append(reason)
    if exclusive:
        h = bias_curvature(label_counts, n_docs, class_weights)
        if h > 0 and rate * batch * h > MAX_BIAS_NEWTON_STEP:
            rate = MAX_BIAS_NEWTON_STEP / (batch * h)
            notes.append(f"rate {rate:.3g} keeps an update of a bias at 1 Newton step")
    return batch, rate, "; ".join(notes)


def bow_hash_length(
    n_distinct_ngrams: int,
    n_labels: int,
    config_length: int,
    *,
    buckets_per_ngram: int | None = None,
    max_weights: int | None = None,
) -> int:
    """Hash buckets per label for a bag-of-n-grams model: the power of two that gives every
    distinct training n-gram ``buckets_per_ngram`` buckets, within ``max_weights`` weights
    over all labels, never below the config's ``config_length``.

    Collisions merge unrelated n-grams into one weight; with 30k distinct n-grams in 2^16
    buckets about a third of them share a bucket. Few labels leave room for a bigger table
    at the same memory and update cost; many labels keep the config's size.
    """
    per_ngram = BUCKETS_PER_NGRAM if buckets_per_ngram is None else buckets_per_ngram
    budget = MAX_BOW_WEIGHTS if max_weights is None else max_weights
    wanted = 1 << max(0, math.ceil(math.log2(max(1, per_ngram * n_distinct_ngrams))))
    cap = 1 << max(0, math.floor(math.log2(max(1, budget // max(1, n_labels)))))
    return max(config_length, min(wanted, cap))


# --- corpus and config ---------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusInfo:
    """What training needs to know about a ``textcat-kit corpus`` directory."""

    train_path: Path
    dev_path: Path
    labels: list[str]
    label_counts: list[int]
    n_train_docs: int
    n_train_words: int
    n_dev_docs: int
    n_distinct_ngrams: int
    multilabel: bool
    multilabel_reason: str


def _read_docs(path: Path, lang: str = "en") -> list[Any]:
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank(lang)
    return list(DocBin().from_disk(path).get_docs(nlp.vocab))


def read_corpus_info(corpus_dir: Path, lang: str | None = None) -> CorpusInfo:
    """Read ``train.spacy``, ``dev.spacy`` and ``data.json`` (if present) of ``corpus_dir``
    (docs tokenized with ``lang``, else data.json's ``lang``, else English)."""
    corpus_dir = Path(corpus_dir)
    train_path, dev_path = corpus_dir / "train.spacy", corpus_dir / "dev.spacy"
    for path in (train_path, dev_path):
        if not path.is_file():
            raise DataError(Errors.E060.format(path=path, corpus_dir=corpus_dir))
    meta: dict[str, Any] = {}
    data_json = corpus_dir / "data.json"
    if data_json.is_file():
        try:
            meta = json.loads(data_json.read_text(encoding="utf8"))
        except json.JSONDecodeError as err:
            raise DataError(
                Errors.E064.format(path=data_json, line=err.lineno, error=err.msg)
            ) from None
    lang = str(lang or meta.get("lang") or "en")
    train_docs = _read_docs(train_path, lang)
    dev_docs = _read_docs(dev_path, lang)
    if not train_docs or not dev_docs:
        raise DataError(
            Errors.E061.format(
                path=train_path if not train_docs else dev_path, corpus_dir=corpus_dir
            )
        )
    labels = list(meta.get("labels") or [])
    for doc in train_docs:
        for label in doc.cats:
            if label not in labels:
                labels.append(label)
    if len(labels) < 2 and not meta.get("multilabel"):
        raise DataError(Errors.E062.format(path=train_path, labels=labels))
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros(len(labels), dtype=np.int64)
    n_not_one = 0
    for doc in train_docs:
        positives = [label for label, value in doc.cats.items() if value >= 0.5]
        n_not_one += len(positives) != 1
        for label in positives:
            counts[index[label]] += 1
    if isinstance(meta.get("multilabel"), bool):
        multilabel = bool(meta["multilabel"])
        reason = f"{data_json} says multilabel={str(multilabel).lower()}"
    else:
        multilabel = n_not_one > 0
        reason = (
            f"{n_not_one} of {len(train_docs)} training docs have a number of positive labels "
            f"other than one ({data_json.name} does not say)"
        )
    ngrams: set[Any] = set()
    for doc in train_docs:
        lower = [token.lower for token in doc]
        ngrams.update(lower)
        ngrams.update(zip(lower, lower[1:], strict=False))
    return CorpusInfo(
        train_path=train_path,
        dev_path=dev_path,
        labels=labels,
        label_counts=[int(c) for c in counts],
        n_train_docs=len(train_docs),
        n_train_words=sum(len(doc) for doc in train_docs),
        n_dev_docs=len(dev_docs),
        n_distinct_ngrams=len(ngrams),
        multilabel=multilabel,
        multilabel_reason=reason,
    )


def select_config(
    configs_dir: Path, variant: str, multilabel: bool, config: Path | None = None
) -> tuple[Path, str]:
    """The config file to train and why: ``config`` if given, else
    ``configs_dir/textcat[_multilabel]_{variant}.cfg``."""
    if config is not None:
        if not Path(config).is_file():
            raise ConfigError(Errors.E065.format(path=config, options="an existing .cfg file"))
        return Path(config), "given with --config"
    name = f"textcat_multilabel_{variant}.cfg" if multilabel else f"textcat_{variant}.cfg"
    path = Path(configs_dir) / name
    if not path.is_file():
        prefix = "textcat_multilabel_" if multilabel else "textcat_"
        found = sorted(
            p.stem[len(prefix) :]
            for p in Path(configs_dir).glob(f"{prefix}*.cfg")
            if multilabel or not p.stem.startswith("textcat_multilabel_")
        )
        raise ConfigError(Errors.E065.format(path=path, options=found or "none"))
    task = "multi-label" if multilabel else "exclusive"
    return path, f"{task} task, variant {variant}"


def config_batch_size(config: Any, n_docs: int, n_words: int) -> int:
    """Docs per update under the config's batcher (words-based batchers are converted)."""
    batcher = config["training"]["batcher"]
    size = batcher.get("size", 64)
    if isinstance(size, dict):
        start, stop = size.get("start", 64), size.get("stop", size.get("start", 64))
        value = float(max(start, stop))
    else:
        value = float(size)
    if "words" in str(batcher.get("@batchers", "")) or "padded" in str(
        batcher.get("@batchers", "")
    ):
        words_per_doc = max(1.0, n_words / max(1, n_docs))
        value = value / words_per_doc
    accumulate = int(config["training"].get("accumulate_gradient", 1) or 1)
    return max(1, int(round(value))) * max(1, accumulate)


# --- training --------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What :func:`train_textcat` did."""

    output_dir: Path
    config_path: Path
    config_reason: str
    multilabel: bool
    multilabel_reason: str
    schedule: TrainingSchedule
    overrides: dict[str, Any]
    dev_probs: np.ndarray = field(repr=False)
    dev_gold: np.ndarray = field(repr=False)
    labels: list[str] = field(default_factory=list)
    diagnosis: Any = None
    selection: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "config": str(self.config_path),
            "config_reason": self.config_reason,
            "multilabel": self.multilabel,
            "multilabel_reason": self.multilabel_reason,
            "schedule": asdict(self.schedule),
            "overrides": self.overrides,
            "labels": self.labels,
            "diagnosis": self.diagnosis.to_dict() if self.diagnosis is not None else None,
            "selection": self.selection,
        }


def plan_training(
    info: CorpusInfo,
    config_path: Path,
    *,
    seed: int = 0,
    auto_schedule: bool = True,
) -> tuple[TrainingSchedule, dict[str, Any]]:
    """The schedule and the full override dict (paths, seed, schedule) for ``spacy train``."""
    from spacy import util

    config = util.load_config(config_path, interpolate=False)
    batch_size = config_batch_size(config, info.n_train_docs, info.n_train_words)
    base_epochs = int(config["training"].get("max_epochs") or 1)
    if base_epochs < 1:
        base_epochs = 1
    schedule = training_schedule(info.n_train_docs, batch_size, base_epochs=base_epochs)
    optimizer = str(config["training"].get("optimizer", {}).get("@optimizers", ""))
    if optimizer.startswith("SGD"):
        batch_keys = _batch_size_keys(config)
        batch, rate, reason = sgd_batch_and_rate(
            info.label_counts,
            info.n_train_docs,
            batch_size,
            exclusive=not info.multilabel,
            class_weights=_config_class_weights(config, info),
            can_resize_batch=bool(batch_keys),
        )
        # A rate below the ceiling moves the weights proportionally less per update: the run
        # gets proportionally more updates (at most MAX_UPDATE_FACTOR times MIN_UPDATES).
        # A smaller batch keeps the number of docs seen: an n-gram's weight moves once per doc
        # that has it, whatever the batch.
        factor = min(MAX_UPDATE_FACTOR, MAX_SGD_LEARN_RATE / rate) * batch_size / batch
        schedule = training_schedule(
            info.n_train_docs,
            batch,
            base_epochs=base_epochs,
            min_updates=math.ceil(MIN_UPDATES * factor),
        )
        schedule = TrainingSchedule(
            **{
                **asdict(schedule),
                "learn_rate": rate,
                "learn_rate_reason": reason,
                "batch_keys": batch_keys if batch != batch_size else (),
            }
        )
    for name, component in config.get("components", {}).items():
        model = component.get("model", {}) if isinstance(component, dict) else {}
        if model.get("@architectures") in BOW_ARCHITECTURES and "length" in model:
            length = bow_hash_length(info.n_distinct_ngrams, len(info.labels), int(model["length"]))
            schedule = TrainingSchedule(
                **{
                    **asdict(schedule),
                    "hash_length": length,
                    "hash_length_key": f"components.{name}.model.length",
                }
            )
            break
    overrides: dict[str, Any] = {
        "paths.train": str(info.train_path),
        "paths.dev": str(info.dev_path),
        "system.seed": seed,
    }
    if auto_schedule:
        overrides.update(schedule.overrides())
    return schedule, overrides


def _batch_size_keys(config: Any) -> tuple[str, ...]:
    """The config keys that set the docs per update of a ``batch_by_sequence`` batcher (none
    for word-count batchers or gradient accumulation, whose batch is left as written)."""
    training = config["training"]
    batcher = training.get("batcher", {})
    if "batch_by_sequence" not in str(batcher.get("@batchers", "")):
        return ()
    if int(training.get("accumulate_gradient", 1) or 1) != 1:
        return ()
    size = batcher.get("size")
    if isinstance(size, dict):
        return tuple(f"training.batcher.size.{key}" for key in ("start", "stop") if key in size)
    if isinstance(size, int | float):
        return ("training.batcher.size",)
    return ()


def _config_class_weights(config: Any, info: CorpusInfo) -> np.ndarray | None:
    """Exclusive tasks: the class weights a ``weights = "balanced"`` loss of the config will fit
    at initialize (the same function), or None (unweighted / explicit weights)."""
    from .maths.losses import balanced_class_weights

    if info.multilabel:
        return None
    for component in config.get("components", {}).values():
        loss = component.get("loss") if isinstance(component, dict) else None
        if isinstance(loss, dict) and loss.get("weights") == "balanced":
            max_weight = loss.get("max_weight", 10.0)
            return balanced_class_weights(
                np.asarray(info.label_counts, dtype=np.float64),
                exclusive=True,
                max_weight=None if max_weight is None else float(max_weight),
                power=float(loss.get("balance_power", 1.0)),
            )
    return None


def encoder_overrides(config_path: Path, encoder: str | None) -> dict[str, str]:
    """``paths.encoder`` / ``paths.transformer_name`` set to ``encoder`` where the config has
    them (embed and transformer variants); nothing for configs without a pretrained encoder."""
    if not encoder:
        return {}
    from spacy.util import load_config

    paths = load_config(config_path, interpolate=False).get("paths", {})
    return {f"paths.{key}": str(encoder) for key in ("encoder", "transformer_name") if key in paths}


def _cats_matrix(docs: Iterable[Any], labels: Sequence[str]) -> np.ndarray:
    return np.array(
        [[float(doc.cats.get(label, 0.0)) for label in labels] for doc in docs], dtype=np.float64
    ).reshape(-1, len(labels))


def predict_split(
    model_dir: Path, path: Path, labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, gold) of the pipeline in ``model_dir`` on the ``.spacy`` file ``path``."""
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.load(model_dir)
    gold_docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    predicted = nlp.pipe((doc.text for doc in gold_docs), batch_size=1000)
    return _cats_matrix(predicted, labels), _cats_matrix(gold_docs, labels)


def dev_score(model_dir: Path, dev_path: Path) -> tuple[float, int]:
    """The pipeline's weighted dev score, as ``spacy train`` computes it to pick model-best
    (``training.score_weights`` of its config), and the number of dev docs."""
    import spacy
    from spacy.tokens import DocBin
    from spacy.training import Example

    nlp = spacy.load(model_dir)
    weights = {
        key: float(value)
        for key, value in nlp.config["training"]["score_weights"].items()
        if value is not None
    }
    gold = list(DocBin().from_disk(dev_path).get_docs(nlp.vocab))
    scores = nlp.evaluate([Example(nlp.make_doc(doc.text), doc) for doc in gold])
    return sum(float(scores.get(key) or 0.0) * w for key, w in weights.items()), len(gold)


def within_dev_noise(best: float, candidate: float, n_dev: int) -> tuple[bool, float]:
    """Whether ``candidate`` is less than one binomial standard error of a score ``best``
    (a proportion-like score in [0, 1]) on ``n_dev`` docs below it, and that error."""
    p = min(max(best, 0.0), 1.0)
    error = math.sqrt(p * (1.0 - p) / max(1, n_dev))
    return candidate >= best - error, error


def prefer_converged_model(output_dir: Path, dev_path: Path) -> dict[str, Any]:
    """Make ``output_dir/model-best`` the final model when its dev score is within the dev
    set's noise of the dev peak spaCy kept.

    ``spacy train`` keeps the model of the highest dev score seen. With a few hundred dev docs
    that score moves by about a standard error between evaluations by chance, so the peak
    is often an early, under-trained model (b77-coarse of docs/robustness.md, 3 seeds: test
    macro-F1 0.915 for the peak models, 0.919 for the final ones). The
    parameters of a linear model trained with averaged SGD keep converging to the optimum
    of the training loss; unless the dev set says the final model is worse by more than its
    noise, it is the better estimate. Returns what was chosen and why (train_summary.json).
    """
    best_dir, last_dir = output_dir / "model-best", output_dir / "model-last"
    if not last_dir.is_dir():
        return {"model": "model-best", "reason": "the dev peak (no model-last)"}
    best, n_dev = dev_score(best_dir, dev_path)
    last, _ = dev_score(last_dir, dev_path)
    close, error = within_dev_noise(best, last, n_dev)
    out: dict[str, Any] = {
        "dev_score_peak": round(best, 6),
        "dev_score_last": round(last, 6),
        "standard_error": round(error, 6),
        "n_dev": n_dev,
    }
    if close:
        shutil.rmtree(best_dir)
        shutil.copytree(last_dir, best_dir)
        reason = (
            f"the final model (dev score {last:.4f}, within one standard error {error:.4f} "
            f"of the dev peak {best:.4f} on {n_dev} docs)"
        )
        return {"model": "model-last", "reason": reason, **out}
    reason = (
        f"the dev peak ({best:.4f}; the final model's {last:.4f} is more than one standard "
        f"error {error:.4f} below it on {n_dev} docs)"
    )
    return {"model": "model-best", "reason": reason, **out}


def train_textcat(
    corpus_dir: Path,
    output_dir: Path,
    *,
    variant: str = "bow",
    config: Path | None = None,
    configs_dir: Path = Path("configs"),
    seed: int = 0,
    gpu_id: int = -1,
    overwrite: bool = False,
    auto_schedule: bool = True,
    log: Any = None,
    encoder: str | None = None,
    lang: str | None = None,
) -> TrainResult:
    """Train a pipeline on ``corpus_dir`` (a ``textcat-kit corpus`` output) into ``output_dir``.

    ``output_dir`` gets ``model-best``, ``model-last`` and ``train_summary.json``; it is built
    in a temporary sibling and swapped in at the end, so a failed run leaves the previous
    output (and anything the user made) untouched. A non-empty ``output_dir`` that textcat-kit
    did not write is never replaced; an earlier textcat-kit output only with ``overwrite``.
    """
    from spacy.cli.train import train as spacy_train

    from .diagnostics import diagnose
    from .safe_write import atomic_dir, check_target

    def say(message: str) -> None:
        print(message, file=log or sys.stdout, flush=True)

    output_dir = Path(output_dir)
    check_target(output_dir.absolute(), overwrite=overwrite)
    info = read_corpus_info(Path(corpus_dir), lang)
    config_path, config_reason = select_config(Path(configs_dir), variant, info.multilabel, config)
    say(f"task: {'multi-label' if info.multilabel else 'exclusive'} ({info.multilabel_reason})")
    say(f"config: {config_path} ({config_reason})")
    schedule, overrides = plan_training(info, config_path, seed=seed, auto_schedule=auto_schedule)
    overrides.update(encoder_overrides(config_path, encoder))
    if lang:
        overrides["nlp.lang"] = lang
    if auto_schedule:
        say(f"schedule: {schedule.describe()}")
    else:
        say("schedule: the config's own eval_frequency / patience / max_epochs / learn_rate")
    with atomic_dir(output_dir, overwrite=overwrite, command="textcat-kit train") as tmp:
        spacy_train(config_path, tmp, use_gpu=gpu_id, overrides=overrides)
        selection: dict[str, Any] = {"model": "model-best", "reason": "multi-label task"}
        if not info.multilabel:
            selection = prefer_converged_model(tmp, info.dev_path)
        say(f"model-best: {selection['reason']}")
        labels = info.labels
        probs, gold = predict_split(tmp / "model-best", info.dev_path, labels)
        diagnosis = diagnose(probs, gold, labels, not info.multilabel, where=str(info.dev_path))
        result = TrainResult(
            output_dir=output_dir,
            config_path=config_path,
            config_reason=config_reason,
            multilabel=info.multilabel,
            multilabel_reason=info.multilabel_reason,
            schedule=schedule,
            overrides=overrides,
            dev_probs=probs,
            dev_gold=gold,
            labels=labels,
            diagnosis=diagnosis,
            selection=selection,
        )
        (tmp / "train_summary.json").write_text(
            json.dumps(result.summary(), indent=2) + "\n", encoding="utf8"
        )
    say(f"wrote {output_dir}/model-best, {output_dir}/model-last, {output_dir}/train_summary.json")
    for message in diagnosis.messages:
        say(message)
    return result


# --- CLI -------------------------------------------------------------------------------------


def train_command(
    corpus_dir: Path = typer.Argument(
        ..., help="Corpus directory written by `textcat-kit corpus` (train/dev.spacy, data.json)."
    ),
    output: Path = typer.Option(
        ..., "--output", help="Where model-best, model-last and train_summary.json go."
    ),
    variant: str = typer.Option("bow", help=VARIANTS_HELP),
    config: Path | None = typer.Option(
        None, help="Config file to train instead of configs/textcat[_multilabel]_{variant}.cfg."
    ),
    configs_dir: Path = typer.Option(Path("configs"), help="Folder of the variant configs."),
    seed: int = typer.Option(0, help="Training seed (system.seed)."),
    gpu_id: int = typer.Option(-1, help="GPU id, -1 for CPU."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an earlier textcat-kit output in --output."
    ),
    config_schedule: bool = typer.Option(
        False,
        "--config-schedule",
        help="Use the config's eval_frequency / patience / max_epochs / learn_rate as written.",
    ),
    encoder: str | None = typer.Option(
        None,
        help="Pretrained encoder (directory or hub name) for configs with paths.encoder / "
        "paths.transformer_name (embed, transformer); ignored by the others.",
    ),
    lang: str | None = typer.Option(
        None, help="Language of the pipeline (nlp.lang); default: the config's."
    ),
) -> None:
    """Train a classifier on a corpus, with a schedule scaled to its size; check the result."""
    train_textcat(
        corpus_dir,
        output,
        variant=variant,
        config=config,
        configs_dir=configs_dir,
        seed=seed,
        gpu_id=gpu_id,
        overwrite=overwrite,
        auto_schedule=not config_schedule,
        encoder=encoder,
        lang=lang,
    )
