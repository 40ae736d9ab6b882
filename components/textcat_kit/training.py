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
#: Hash buckets per label of textcat_kit.TextCatBOW.v1: at least BUCKETS_PER_NGRAM times the
#: distinct training n-grams (fewer collisions), within MAX_BOW_WEIGHTS weights in all.
BUCKETS_PER_NGRAM = 8
MAX_BOW_WEIGHTS = 2**22
BOW_ARCHITECTURES = ("textcat_kit.TextCatBOW.v1",)

VARIANTS_HELP = "bow | cnn | transformer (any configs/textcat[_multilabel]_{variant}.cfg)"


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


def read_corpus_info(corpus_dir: Path) -> CorpusInfo:
    """Read ``train.spacy``, ``dev.spacy`` and ``data.json`` (if present) of ``corpus_dir``."""
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
    lang = str(meta.get("lang") or "en")
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
        rate, reason = sgd_learn_rate(
            info.label_counts, info.n_train_docs, batch_size, exclusive=not info.multilabel
        )
        # A rate below the ceiling moves the weights proportionally less per update: the run
        # gets proportionally more updates (at most MAX_UPDATE_FACTOR times MIN_UPDATES).
        factor = min(MAX_UPDATE_FACTOR, MAX_SGD_LEARN_RATE / rate)
        schedule = training_schedule(
            info.n_train_docs,
            batch_size,
            base_epochs=base_epochs,
            min_updates=math.ceil(MIN_UPDATES * factor),
        )
        schedule = TrainingSchedule(
            **{**asdict(schedule), "learn_rate": rate, "learn_rate_reason": reason}
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
    info = read_corpus_info(Path(corpus_dir))
    config_path, config_reason = select_config(Path(configs_dir), variant, info.multilabel, config)
    say(f"task: {'multi-label' if info.multilabel else 'exclusive'} ({info.multilabel_reason})")
    say(f"config: {config_path} ({config_reason})")
    schedule, overrides = plan_training(info, config_path, seed=seed, auto_schedule=auto_schedule)
    overrides.update(encoder_overrides(config_path, encoder))
    if auto_schedule:
        say(f"schedule: {schedule.describe()}")
    else:
        say("schedule: the config's own eval_frequency / patience / max_epochs / learn_rate")
    with atomic_dir(output_dir, overwrite=overwrite, command="textcat-kit train") as tmp:
        spacy_train(config_path, tmp, use_gpu=gpu_id, overrides=overrides)
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
    )
