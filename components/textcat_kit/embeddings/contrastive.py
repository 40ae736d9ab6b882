"""Contrastive fine-tuning of the sentence encoder on the labelled training texts (SetFit-style).

With a handful of examples per label, a linear head over *frozen* sentence vectors is limited
by the vectors: two intents the encoder places close together stay close, whatever the head
does. SetFit (Tunstall et al. 2022) first fine-tunes the sentence encoder contrastively on
the few labelled texts, so that texts with the same label move together and texts with
different labels apart, then trains the head on the new vectors. We do the same with the
supervised contrastive loss (SupCon, Khosla et al. 2020; used for fine-tuning language
models by Gunel et al. 2021) over in-batch pairs, on exactly the vectors the head will see
(mean-pooled, L2-normalised):

    loss_i = - 1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / t) / sum_{a != i} exp(z_i.z_a / t) )

where P(i) are the other texts of the batch that share a label with text i. Every batch is
class-balanced (``per_label`` texts of each of ``batch_size / per_label`` labels), so every
anchor has positives and every batch compares many labels at once: all pairs of the batch
count, where SetFit's pair sampling trains on one pair at a time.

Cost: ``epochs`` passes over the labelled texts, forward and backward through the encoder
(about a second per batch of 64 short texts on one CPU core for all-MiniLM-L6-v2). That is
why :func:`contrastive_finetune` is meant for few labels: the callback skips it when the
labels have more than ``max_per_label`` examples (median), where a frozen encoder's head is
already close to a fine-tuned encoder (docs/encoders.md).

:func:`make_contrastive_encoder` is the spaCy callback ``textcat_kit.contrastive_encoder.v1``
for ``[initialize.after_init]``: after ``nlp.initialize`` (``spacy train``) has loaded the
encoder and before the first update, it fine-tunes the encoder of the classifier's
``textcat_kit.SentenceEncoder.v1`` layer on ``train`` and swaps it in (with a new cache:
vectors of the old encoder are never reused). The trained pipeline saves the fine-tuned
weights like any encoder; ``spacy.load`` does not run the callback again.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, Errors
from .encoder import SentenceEncoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContrastiveSettings:
    """Hyperparameters of the contrastive fine-tune (from the config).

    epochs: passes over the labelled texts (0 switches the fine-tune off).
    batch_size: texts per step; ``per_label``: texts of one label in a batch (>= 2, so
        every anchor has a positive).
    learn_rate: AdamW's rate for the encoder (2e-5: SetFit's and sentence-transformers'
        default for small encoders), ``weight_decay`` its decoupled weight decay, with a
        linear warm-up over the first ``warmup`` share of the steps and a linear decay to 0.
    temperature: of the softmax over cosine similarities (0.05 = the scale 20 of
        sentence-transformers' in-batch losses).
    max_per_label: skip the fine-tune when the median label has more training texts than
        this (0: never skip).
    seed: batch order.
    """

    epochs: int = 10
    batch_size: int = 64
    per_label: int = 2
    learn_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    temperature: float = 0.05
    max_per_label: int = 64
    seed: int = 0

    def validate(self) -> None:
        rules: list[tuple[str, Any, bool, str]] = [
            ("epochs", self.epochs, self.epochs >= 0, ">= 0"),
            ("per_label", self.per_label, self.per_label >= 2, ">= 2"),
            (
                "batch_size",
                self.batch_size,
                self.batch_size >= 2 * self.per_label,
                f">= 2 x per_label ({2 * self.per_label})",
            ),
            ("learn_rate", self.learn_rate, self.learn_rate > 0, "> 0"),
            ("weight_decay", self.weight_decay, self.weight_decay >= 0, ">= 0"),
            ("warmup", self.warmup, 0 <= self.warmup < 1, "0 <= warmup < 1"),
            ("temperature", self.temperature, self.temperature > 0, "> 0"),
            ("max_per_label", self.max_per_label, self.max_per_label >= 0, ">= 0"),
        ]
        for name, value, ok, rule in rules:
            if not ok:
                raise ConfigError(Errors.E466.format(name=name, value=value, rule=rule))


def supcon_loss(vectors: Any, positives: Any, temperature: float) -> Any:
    """Mean supervised contrastive loss of a batch (torch tensors; see the module docstring).

    vectors: ``n x width`` unit-length vectors; positives: ``n x n`` bool, ``[i, j]`` true
    where texts i and j share a label (the diagonal is ignored). Anchors without a positive
    do not count; a batch without any positive pair has loss 0.
    """
    import torch

    n = vectors.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=vectors.device)
    logits = (vectors @ vectors.T / temperature).masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = positives & ~eye
    counts = pos.sum(dim=1)
    has_pos = counts > 0
    if not bool(has_pos.any()):
        return vectors.sum() * 0.0
    pos_log_prob = log_prob.masked_fill(~pos, 0.0).sum(dim=1)
    return -(pos_log_prob[has_pos] / counts[has_pos]).mean()


def balanced_batches(
    label_sets: Sequence[Sequence[int]], batch_size: int, per_label: int, rng: random.Random
) -> Iterator[list[int]]:
    """One epoch of class-balanced batches of text indices.

    Each text is assigned to one of its labels (the rarest, so small labels fill up);
    each label's texts are shuffled and cut into groups of ``per_label``, and each batch
    takes groups of ``batch_size // per_label`` different labels. A label's left-over
    text (odd count) joins its last group. Every text appears exactly once per epoch;
    texts without a label are not used.
    """
    counts: dict[int, int] = {}
    for labels in label_sets:
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    members: dict[int, list[int]] = {}
    for i, labels in enumerate(label_sets):
        if labels:
            members.setdefault(min(labels, key=lambda lab: (counts[lab], lab)), []).append(i)
    groups: list[list[int]] = []
    for label in sorted(members):
        items = members[label]
        rng.shuffle(items)
        label_groups = [items[k : k + per_label] for k in range(0, len(items), per_label)]
        if len(label_groups) > 1 and len(label_groups[-1]) < per_label:
            label_groups[-2].extend(label_groups.pop())
        groups.extend(label_groups)
    rng.shuffle(groups)
    labels_per_batch = max(1, batch_size // per_label)
    while groups:
        batch: list[int] = []
        taken: set[int] = set()
        rest: list[list[int]] = []
        for group in groups:
            label = _group_label(group, label_sets, counts)
            if len(taken) < labels_per_batch and label not in taken:
                taken.add(label)
                batch.extend(group)
            else:
                rest.append(group)
        groups = rest
        yield batch


def _group_label(group: list[int], label_sets: Sequence[Sequence[int]], counts: dict) -> int:
    return int(min(label_sets[group[0]], key=lambda lab: (counts[lab], lab)))


def contrastive_finetune(
    encoder: SentenceEncoder,
    texts: Sequence[str],
    label_sets: Sequence[Sequence[int]],
    settings: ContrastiveSettings,
) -> tuple[SentenceEncoder, dict[str, Any]]:
    """Fine-tune ``encoder`` on ``texts`` (``label_sets[i]``: the label ids of text i).

    Returns a new, frozen :class:`SentenceEncoder` over the fine-tuned weights (the model
    object is trained in place; the tokenizer and settings are shared) and a record of the
    run (steps, losses of the first and last epoch, seconds).
    """
    import torch

    settings.validate()
    model = encoder.model
    ids = encoder.token_ids(texts)
    n_steps = settings.epochs * sum(
        1
        for _ in balanced_batches(
            label_sets, settings.batch_size, settings.per_label, random.Random(0)
        )
    )
    params = [p for p in model.parameters()]
    for param in params:
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        params, lr=settings.learn_rate, weight_decay=settings.weight_decay
    )
    warmup = int(settings.warmup * n_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _linear_schedule(step, warmup, n_steps)
    )
    label_tensor = [set(labels) for labels in label_sets]
    rng = random.Random(settings.seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(settings.seed)  # dropout masks
    start = time.perf_counter()
    epoch_losses: list[float] = []
    model.train()
    try:
        for _ in range(settings.epochs):
            losses = []
            for batch in balanced_batches(label_sets, settings.batch_size, settings.per_label, rng):
                vectors = _pooled(encoder, [ids[i] for i in batch])
                positives = torch.tensor(
                    [[bool(label_tensor[i] & label_tensor[j]) for j in batch] for i in batch]
                )
                loss = supcon_loss(vectors, positives, settings.temperature)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
            epoch_losses.append(float(np.mean(losses)) if losses else 0.0)
    finally:
        model.eval()
        torch.random.set_rng_state(torch_state)
    tuned = SentenceEncoder(
        model, encoder.tokenizer, encoder.pad_id, encoder.settings, source=encoder.source
    )
    record = {
        "settings": asdict(settings),
        "texts": sum(1 for labels in label_sets if labels),
        "steps": n_steps,
        "epoch_loss": epoch_losses,
        "seconds": time.perf_counter() - start,
    }
    return tuned, record


def _linear_schedule(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then linear decay to 0 at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _pooled(encoder: SentenceEncoder, batch_ids: list[list[int]]) -> Any:
    """Mean-pooled, L2-normalised vectors of one batch, with gradients (the encode path's
    pooling, in torch)."""
    import torch

    ids_np, mask_np = encoder.padded(batch_ids)
    input_ids, mask = torch.from_numpy(ids_np), torch.from_numpy(mask_np)
    hidden = encoder.model(input_ids=input_ids, attention_mask=mask)[0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    if encoder.settings.normalize:
        pooled = torch.nn.functional.normalize(pooled, dim=1)
    return pooled


def make_contrastive_encoder(
    train: str | None,
    component: str = "textcat",
    epochs: int = 10,
    batch_size: int = 64,
    per_label: int = 2,
    learn_rate: float = 2e-5,
    weight_decay: float = 0.01,
    warmup: float = 0.1,
    temperature: float = 0.05,
    max_per_label: int = 64,
    seed: int = 0,
) -> Callable[[Any], None]:
    """``[initialize.after_init]`` callback: contrastive fine-tune of ``component``'s sentence
    encoder on the labelled docs of ``train`` (a ``.spacy`` file or a directory of them, as
    ``${paths.train}`` is read by spaCy's corpus reader).

    Labels are the ``doc.cats`` keys with a value >= 0.5. The run is recorded in
    ``nlp.meta["textcat_kit_contrastive"]`` (saved in the pipeline's meta.json), a skipped
    run with its reason.
    """
    settings = ContrastiveSettings(
        epochs=epochs,
        batch_size=batch_size,
        per_label=per_label,
        learn_rate=learn_rate,
        weight_decay=weight_decay,
        warmup=warmup,
        temperature=temperature,
        max_per_label=max_per_label,
        seed=seed,
    )
    settings.validate()

    def contrastive_encoder(nlp: Any) -> None:
        from spacy.tokens import DocBin
        from spacy.training.corpus import walk_corpus

        from .layers import LAYER_NAME

        if settings.epochs == 0:
            return
        if train is None:
            # nlp.initialize(get_examples) from code, without a training file: nothing to
            # fine-tune on here, and saying so beats failing a pipeline that trains anyway.
            reason = "skipped: no training file (train = null)"
            logger.warning("textcat_kit.contrastive_encoder.v1: %s", reason)
            nlp.meta["textcat_kit_contrastive"] = {"skipped": reason}
            return
        if component not in nlp.pipe_names:
            raise ConfigError(
                Errors.E467.format(component=component, problem=f"no such pipe ({nlp.pipe_names})")
            )
        model = getattr(nlp.get_pipe(component), "model", None)
        slot = next(
            (n.attrs["encoder"] for n in (model.walk() if model else []) if n.name == LAYER_NAME),
            None,
        )
        if slot is None:
            raise ConfigError(
                Errors.E467.format(
                    component=component, problem="its model has no textcat_kit.SentenceEncoder"
                )
            )
        if not Path(train).exists():
            raise DataError(Errors.E468.format(path=train, problem="no such file"))
        # A .spacy file or a directory of them, as spacy.Corpus.v1 reads paths.train.
        files = walk_corpus(train, ".spacy")
        docs = [doc for f in files for doc in DocBin().from_disk(f).get_docs(nlp.vocab)]
        names = sorted({label for doc in docs for label, value in doc.cats.items() if value >= 0.5})
        index = {label: i for i, label in enumerate(names)}
        label_sets = [
            [index[label] for label, value in doc.cats.items() if value >= 0.5] for doc in docs
        ]
        counts = [sum(1 for labels in label_sets if i in labels) for i in range(len(names))]
        if sum(1 for c in counts if c >= 2) < 2:
            raise DataError(
                Errors.E468.format(
                    path=train, problem="fewer than two labels with two or more labelled docs"
                )
            )
        median = float(np.median(counts))
        if settings.max_per_label and median > settings.max_per_label:
            reason = (
                f"skipped: the median label has {median:g} training docs "
                f"(> max_per_label = {settings.max_per_label})"
            )
            logger.info("textcat_kit.contrastive_encoder.v1: %s", reason)
            nlp.meta["textcat_kit_contrastive"] = {"skipped": reason}
            return
        encoder = slot.load()
        tuned, record = contrastive_finetune(
            encoder, [doc.text for doc in docs], label_sets, settings
        )
        slot.set_encoder(tuned)  # a fresh cache under the new weights' fingerprint
        record["train"] = str(train)
        nlp.meta["textcat_kit_contrastive"] = record
        logger.info(
            "textcat_kit.contrastive_encoder.v1: %d steps in %.0f s, loss %.3f -> %.3f",
            record["steps"],
            record["seconds"],
            record["epoch_loss"][0] if record["epoch_loss"] else 0.0,
            record["epoch_loss"][-1] if record["epoch_loss"] else 0.0,
        )

    return contrastive_encoder
