"""``textcat_kit.contrastive_encoder.v1``: SupCon fine-tuning of the embed variant's encoder."""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spacy
from embed_testing import LABELS, make_records
from spacy.tokens import DocBin
from spacy.util import load_config

from textcat_kit.embeddings.contrastive import (
    ContrastiveSettings,
    balanced_batches,
    contrastive_finetune,
    make_contrastive_encoder,
    supcon_loss,
)
from textcat_kit.embeddings.encoder import EncoderSettings, SentenceEncoder
from textcat_kit.embeddings.layers import sentence_encoder_of
from textcat_kit.errors import ConfigError, DataError

torch = pytest.importorskip("torch")

REPO_ROOT = Path(__file__).resolve().parents[2]


def reference_supcon(z: np.ndarray, labels: list[int], t: float) -> float:
    """The loss written out term by term (Khosla et al. 2020, L_out)."""
    losses = []
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]
        denominator = sum(math.exp(z[i] @ z[a] / t) for a in others)
        positives = [p for p in others if labels[p] == labels[i]]
        if positives:
            terms = [math.log(math.exp(z[i] @ z[p] / t) / denominator) for p in positives]
            losses.append(-sum(terms) / len(positives))
    return float(np.mean(losses))


def test_supcon_loss_matches_the_formula() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 5))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    labels = [0, 0, 1, 1, 1, 2, 3]  # labels 2 and 3 have no positive: not anchors
    pos = torch.tensor([[a == b for b in labels] for a in labels])
    got = supcon_loss(torch.tensor(z), pos, temperature=0.2)
    assert float(got) == pytest.approx(reference_supcon(z, labels, 0.2), rel=1e-9)


def test_supcon_loss_is_lower_when_labels_cluster() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(2, 8))
    labels = [0, 0, 0, 1, 1, 1]
    clustered = np.array([centres[y] + 0.05 * rng.normal(size=8) for y in labels])
    shuffled = clustered[[0, 3, 1, 4, 2, 5]]
    pos = torch.tensor([[a == b for b in labels] for a in labels])

    def loss(z: np.ndarray) -> float:
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        return float(supcon_loss(torch.tensor(z), pos, 0.1))

    assert loss(clustered) < 0.5 * loss(shuffled)
    no_pairs = torch.tensor([[a == b for b in range(4)] for a in range(4)])
    assert float(supcon_loss(torch.tensor(clustered[:4]), no_pairs, 0.1)) == 0.0


def test_balanced_batches_cover_each_text_once_with_a_positive() -> None:
    rng = random.Random(0)
    label_sets = [[i % 9] for i in range(9 * 7)] + [[]] * 3  # 7 per label, 3 unlabelled
    batches = list(balanced_batches(label_sets, batch_size=8, per_label=2, rng=rng))
    seen = [i for batch in batches for i in batch]
    assert sorted(seen) == list(range(63))  # every labelled text once, unlabelled never
    for batch in batches:
        labels = [label_sets[i][0] for i in batch]
        assert len(set(labels)) <= 4  # batch_size // per_label labels
        assert all(labels.count(label) >= 2 for label in labels)  # every anchor has a positive
    assert sum(len(set(label_sets[i][0] for i in b)) > 1 for b in batches) >= len(batches) - 2


def test_settings_out_of_range_are_coded_errors() -> None:
    with pytest.raises(ConfigError, match=r"\[E466\].*per_label.*= 1"):
        ContrastiveSettings(per_label=1).validate()
    with pytest.raises(ConfigError, match=r"\[E466\].*batch_size"):
        make_contrastive_encoder("x.spacy", batch_size=3, per_label=2)
    with pytest.raises(ConfigError, match=r"\[E466\].*temperature"):
        make_contrastive_encoder("x.spacy", temperature=0.0)


def _cluster_gap(encoder: SentenceEncoder, records: list[tuple[str, list[str]]]) -> float:
    """Mean cosine within an intent minus mean cosine across intents."""
    vectors = encoder.encode([text for text, _ in records])
    labels = np.array([LABELS.index(pos[0]) for _, pos in records])
    sims = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    return float(sims[same & off_diagonal].mean() - sims[~same].mean())


def test_finetune_pulls_intents_apart(tiny_encoder: Path) -> None:
    encoder = SentenceEncoder.from_pretrained(tiny_encoder, EncoderSettings())
    train = make_records(6, seed=3)
    held_out = make_records(10, seed=4)
    before_gap, before_print = _cluster_gap(encoder, held_out), encoder.fingerprint
    before_weights = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    settings = ContrastiveSettings(epochs=15, batch_size=6, learn_rate=1e-3, temperature=0.1)
    label_sets = [[LABELS.index(pos[0])] for _, pos in train]
    tuned, record = contrastive_finetune(encoder, [t for t, _ in train], label_sets, settings)
    assert record["steps"] == 15 * 3  # 18 texts in batches of 3 labels x 2
    assert record["epoch_loss"][-1] < record["epoch_loss"][0]
    assert _cluster_gap(tuned, held_out) > before_gap + 0.1  # texts it never saw
    assert tuned.fingerprint != before_print  # a new disk cache, never the old vectors
    changed = [
        k for k, v in tuned.model.state_dict().items() if not torch.equal(v, before_weights[k])
    ]
    assert changed and not any(p.requires_grad for p in tuned.model.parameters())
    assert not tuned.model.training  # dropout off for encoding


def _write_train(path: Path, records: list[tuple[str, list[str]]]) -> Path:
    nlp = spacy.blank("en")
    docs = []
    for text, pos in records:
        doc = nlp.make_doc(text)
        doc.cats = {label: float(label in pos) for label in LABELS}
        docs.append(doc)
    DocBin(docs=docs).to_disk(path)
    return path


def _embed_nlp(encoder_dir: Path, after_init: dict[str, Any] | None) -> spacy.Language:
    overrides: dict[str, Any] = {"paths.encoder": str(encoder_dir), "paths.train": None}
    config = load_config(REPO_ROOT / "configs" / "textcat_embed.cfg", overrides, False)
    config["initialize"]["after_init"] = after_init
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def _initialize(nlp: spacy.Language, records: list[tuple[str, list[str]]]) -> None:
    from spacy.training import Example

    examples = [
        Example.from_dict(nlp.make_doc(t), {"cats": {lab: float(lab in pos) for lab in LABELS}})
        for t, pos in records
    ]
    nlp.initialize(lambda: examples)


def test_callback_swaps_in_the_finetuned_encoder_and_it_is_saved(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    encoder_dir = shutil.copytree(tiny_encoder, tmp_path / "model")
    records = make_records(6, seed=5)
    train = _write_train(tmp_path / "train.spacy", records)
    callback = {
        "@callbacks": "textcat_kit.contrastive_encoder.v1",
        "train": str(train),
        "epochs": 3,
        "batch_size": 6,
        "learn_rate": 1e-3,
    }
    frozen = SentenceEncoder.from_pretrained(encoder_dir, EncoderSettings())
    nlp = _embed_nlp(encoder_dir, callback)
    _initialize(nlp, records)
    record = nlp.meta["textcat_kit_contrastive"]
    assert record["steps"] == 9 and record["texts"] == 18
    tuned = sentence_encoder_of(nlp.get_pipe("textcat").model)
    assert tuned is not None and tuned.fingerprint != frozen.fingerprint
    texts = [t for t, _ in make_records(2, seed=6)]
    assert not np.allclose(tuned.encode(texts), frozen.encode(texts), atol=1e-4)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    reloaded = sentence_encoder_of(loaded.get_pipe("textcat").model)
    assert reloaded is not None
    np.testing.assert_allclose(reloaded.encode(texts), tuned.encode(texts), atol=1e-6)
    assert loaded.meta["textcat_kit_contrastive"]["steps"] == 9


def test_callback_skips_large_data_and_missing_train(tiny_encoder: Path, tmp_path: Path) -> None:
    records = make_records(6, seed=5)
    # A directory of .spacy files, as spaCy's corpus reader takes paths.train: both read.
    (tmp_path / "train").mkdir()
    _write_train(tmp_path / "train" / "a.spacy", records[:9])
    _write_train(tmp_path / "train" / "b.spacy", records[9:])
    frozen = SentenceEncoder.from_pretrained(tiny_encoder, EncoderSettings()).fingerprint
    for train_path, max_per_label, reason in (
        (str(tmp_path / "train"), 5, "the median label has 6 training docs"),
        (None, 64, "no training file"),
    ):
        callback = {
            "@callbacks": "textcat_kit.contrastive_encoder.v1",
            "train": train_path,
            "max_per_label": max_per_label,
        }
        nlp = _embed_nlp(tiny_encoder, callback)
        _initialize(nlp, records)
        assert reason in nlp.meta["textcat_kit_contrastive"]["skipped"]
        encoder = sentence_encoder_of(nlp.get_pipe("textcat").model)
        assert encoder is not None and encoder.fingerprint == frozen


def test_callback_errors_name_the_problem(tiny_encoder: Path, tmp_path: Path) -> None:
    records = make_records(3, seed=5)
    cases = [
        ({"train": str(tmp_path / "absent.spacy")}, DataError, r"\[E468\].*absent.spacy"),
        ({"train": str(tmp_path / "x.spacy"), "component": "ner"}, ConfigError, r"\[E467\]"),
    ]
    for extra, error, pattern in cases:
        nlp = _embed_nlp(
            tiny_encoder, {"@callbacks": "textcat_kit.contrastive_encoder.v1", **extra}
        )
        with pytest.raises(error, match=pattern):
            _initialize(nlp, records)
    one_label = _write_train(tmp_path / "one.spacy", [(t, ["refund"]) for t, _ in records])
    nlp = _embed_nlp(
        tiny_encoder, {"@callbacks": "textcat_kit.contrastive_encoder.v1", "train": str(one_label)}
    )
    with pytest.raises(DataError, match=r"\[E468\].*fewer than two labels"):
        _initialize(nlp, records)
