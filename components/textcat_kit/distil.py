"""Distillation: a fast student (bag-of-words) trained on a teacher's calibrated probabilities.

A sentence-embedding or transformer pipeline is accurate but encodes a few hundred texts
per second on a CPU; a bag-of-words pipeline scores tens of thousands. Distillation
(Hinton et al. 2015) trains the student on the teacher's output distribution instead of
the one-hot labels: the teacher's probabilities say which intents a text is *close to*,
which carries more signal per example than the label, and unlabelled texts (given with
``unlabelled``) become training data too.

Procedure (:func:`distil`):

1. the teacher (a pipeline tuned with ``textcat-kit tune``, so ``doc.cats`` holds
   *calibrated* probabilities) scores the training texts and any unlabelled texts;
2. the student is built and initialised from its config exactly as ``spacy train`` would
   (same model, same optimizer, same batch size, IDF of tfidf features fitted on the
   training docs), with the teacher's labels;
3. each epoch, every batch is trained towards ``targets = (1 - hard_weight) * teacher +
   hard_weight * gold`` (gold only where the text is labelled) with the student's own loss
   (cross-entropy over soft targets: ``d_logits = p - targets``); spaCy's textcat refuses
   non-binary ``doc.cats``, so the loop here calls the component's model and loss
   directly;
4. after each epoch the student is scored on dev (macro-F of the argmax, or of 0.5
   thresholds for multi-label) with the optimizer's averaged parameters, and the best
   epoch is saved as ``model-best``, a normal pipeline for ``textcat-kit tune``.

The student's speed is the bow pipeline's: only its training data changes.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import spacy
import srsly
from spacy.language import Language
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.util import load_config, registry

from .errors import ConfigError, DataError, Errors
from .evaluation import cats_matrix, find_textcat, is_exclusive
from .maths import metrics
from .maths.losses import gradient_wrt_probabilities
from .safe_write import atomic_dir, check_target


@dataclass(frozen=True)
class DistilSettings:
    """hard_weight: share of the gold labels in the targets of labelled texts (0 = teacher
    only; half and half scored best on the Banking77 dev split, 0.894 vs 0.886 with the
    teacher alone, see docs/encoders.md); max_epochs / patience: epochs over the training
    (+ unlabelled) texts, stopping after ``patience`` epochs without a better dev score;
    batch_size: texts per update (``None``: the student config's first batch size)."""

    hard_weight: float = 0.5
    max_epochs: int = 40
    patience: int = 6
    batch_size: int | None = None
    seed: int = 0

    def validate(self) -> None:
        if not 0.0 <= self.hard_weight <= 1.0:
            raise ConfigError(
                Errors.E463.format(name="hard_weight", value=self.hard_weight, rule="0 to 1")
            )
        for name, value in (("max_epochs", self.max_epochs), ("patience", self.patience)):
            if value < 1:
                raise ConfigError(Errors.E463.format(name=name, value=value, rule=">= 1"))
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(
                Errors.E463.format(name="batch_size", value=self.batch_size, rule=">= 1")
            )


def read_unlabelled(path: Path) -> list[str]:
    """Texts from a JSONL file (``{"text": ...}`` per line) or a plain text file (one per
    line). Blank lines are skipped; a JSONL line without a string ``text`` stops with E461."""
    texts = []
    with open(path, encoding="utf8") as f:
        for number, line in enumerate(f, start=1):
            stripped = line.strip()
            if not stripped:
                continue
            if path.suffix in (".jsonl", ".json"):
                try:
                    record = json.loads(stripped)
                except json.JSONDecodeError as err:
                    raise DataError(
                        Errors.E461.format(path=path, line=number, problem=f"not JSON ({err})")
                    ) from None
                text = record.get("text") if isinstance(record, dict) else None
                if not isinstance(text, str):
                    raise DataError(
                        Errors.E461.format(path=path, line=number, problem='no string "text"')
                    )
                texts.append(text)
            else:
                texts.append(stripped)
    return texts


def teacher_probabilities(
    teacher: Language, texts: list[str], labels: list[str], batch_size: int = 256
) -> np.ndarray:
    """``len(texts) x len(labels)`` calibrated probabilities from the teacher's ``doc.cats``."""
    docs = list(teacher.pipe(texts, batch_size=batch_size))
    return cats_matrix(docs, labels)


def _batches(n: int, size: int, rng: random.Random) -> Iterator[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    for start in range(0, n, size):
        yield order[start : start + size]


def _dev_score(nlp: Language, labels: list[str], dev: list[Example], exclusive: bool) -> float:
    texts = [eg.reference.text for eg in dev]
    gold = cats_matrix([eg.reference for eg in dev], labels)
    probs = cats_matrix(list(nlp.pipe(texts, batch_size=1000)), labels)
    if exclusive:
        decided = np.eye(len(labels))[probs.argmax(axis=1)]
    else:
        decided = metrics.decide(probs, 0.5)
    return metrics.prf_per_label(decided, gold).macro_f


def distil(
    teacher_path: Path,
    student_config: Path,
    train_path: Path,
    dev_path: Path,
    output_dir: Path,
    *,
    unlabelled_path: Path | None = None,
    settings: DistilSettings | None = None,
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train the student of ``student_config`` on ``teacher_path``'s probabilities.

    Writes ``output_dir/model-best`` (the best dev epoch) and ``output_dir/distil.json``
    (settings, per-epoch dev scores and timings); returns that record. ``output_dir`` is
    written atomically (:func:`textcat_kit.safe_write.atomic_dir`): an earlier distil output
    is replaced only with ``overwrite``, a directory textcat-kit did not write never.
    """
    settings = settings or DistilSettings()
    settings.validate()
    output_dir = Path(output_dir)
    check_target(output_dir.absolute(), overwrite=overwrite)
    start = time.perf_counter()
    teacher = spacy.load(teacher_path)
    try:
        teacher_name, teacher_pipe = find_textcat(teacher)
    except ConfigError as err:
        raise ConfigError(
            Errors.E460.format(teacher=teacher_path, pipes=teacher.pipe_names)
        ) from err
    labels = list(teacher_pipe.labels)
    exclusive = is_exclusive(teacher_pipe)

    config = load_config(
        student_config,
        overrides={"paths.train": str(train_path), "paths.dev": str(dev_path), **(overrides or {})},
        interpolate=False,
    )
    nlp = init_nlp(config)
    student_name, student = find_textcat(nlp)
    if is_exclusive(student) != exclusive:
        raise ConfigError(
            Errors.E462.format(
                student_task="exclusive" if is_exclusive(student) else "multi-label",
                teacher_task="exclusive" if exclusive else "multi-label",
            )
        )
    if list(student.labels) != labels:
        # Same label order as the teacher's probability columns.
        labels = list(student.labels)
    resolved = registry.resolve(nlp.config.interpolate()["training"])
    optimizer = resolved["optimizer"]
    batch_size = settings.batch_size or _first_batch_size(resolved["batcher"])

    train_docs = list(DocBin().from_disk(train_path).get_docs(nlp.vocab))
    dev = [
        Example(nlp.make_doc(d.text), d) for d in DocBin().from_disk(dev_path).get_docs(nlp.vocab)
    ]
    texts = [doc.text for doc in train_docs]
    gold = cats_matrix(train_docs, labels)
    labelled = np.ones(len(texts), dtype=bool)
    if unlabelled_path is not None:
        extra = read_unlabelled(Path(unlabelled_path))
        texts += extra
        gold = np.vstack([gold, np.zeros((len(extra), len(labels)))])
        labelled = np.concatenate([labelled, np.zeros(len(extra), dtype=bool)])
    teacher_start = time.perf_counter()
    soft = teacher_probabilities(teacher, texts, labels)
    teacher_seconds = time.perf_counter() - teacher_start
    del teacher
    if exclusive:
        soft = soft / np.maximum(soft.sum(axis=1, keepdims=True), 1e-12)
    targets = soft.copy()
    targets[labelled] = (1 - settings.hard_weight) * soft[labelled] + settings.hard_weight * gold[
        labelled
    ]
    docs = [nlp.make_doc(text) for text in texts]
    not_missing = np.ones((1, len(labels)))
    output_gradient = student.resolved_output_gradient()

    rng = random.Random(settings.seed)
    best_score, best_epoch, since_best = -1.0, 0, 0
    best_bytes: bytes | None = None
    history = []
    for epoch in range(1, settings.max_epochs + 1):
        epoch_loss = 0.0
        for batch in _batches(len(docs), batch_size, rng):
            scores, backprop = student.model.begin_update([docs[i] for i in batch])
            probs = student.model.ops.to_numpy(scores)
            loss, d_logits = student.loss(
                probs,
                targets[batch],
                np.repeat(not_missing, len(batch), axis=0),
                labels,
                exclusive=exclusive,
                component_name=student_name,
            )
            if output_gradient == "probabilities":
                d_logits = gradient_wrt_probabilities(d_logits, probs, exclusive=exclusive)
            backprop(student.model.ops.asarray2f(d_logits.astype(probs.dtype)))
            student.finish_update(optimizer)
            epoch_loss += loss
        with student.model.use_params(optimizer.averages or {}):
            score = _dev_score(nlp, labels, dev, exclusive)
            if score > best_score:
                best_score, best_epoch, since_best = score, epoch, 0
                best_bytes = student.to_bytes()
            else:
                since_best += 1
        history.append({"epoch": epoch, "loss": epoch_loss, "dev_macro_f": score})
        if since_best >= settings.patience:
            break
    assert best_bytes is not None
    student.from_bytes(best_bytes)
    record = {
        "teacher": str(teacher_path),
        "teacher_pipe": teacher_name,
        "student_config": str(student_config),
        "n_labelled": int(labelled.sum()),
        "n_unlabelled": int((~labelled).sum()),
        "settings": settings.__dict__,
        "best_epoch": best_epoch,
        "best_dev_macro_f": best_score,
        "history": history,
        "teacher_seconds": teacher_seconds,
        "seconds": time.perf_counter() - start,
    }
    with atomic_dir(output_dir, overwrite=overwrite, command="textcat-kit distil") as tmp:
        nlp.to_disk(tmp / "model-best")
        srsly.write_json(tmp / "distil.json", record)
    return record


def _first_batch_size(batcher: Any) -> int:
    """The first size a spaCy batcher would use (its ``size`` may be a schedule)."""
    size = getattr(batcher, "keywords", {}).get("size", 64)
    if isinstance(size, int):
        return size
    try:
        return int(size(0))
    except TypeError:
        return int(next(iter(size)))
