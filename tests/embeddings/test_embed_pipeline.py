"""The embed variant as a spaCy pipeline: the project's configs on a tiny random encoder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spacy
from embed_testing import LABELS, make_records
from spacy.training import Example
from spacy.util import load_config
from thinc.api import fix_random_seed

from textcat_kit.embeddings.layers import sentence_encoder_of
from textcat_kit.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def build_from_config(name: str, encoder_dir: Path) -> spacy.Language:
    config = load_config(
        REPO_ROOT / "configs" / name,
        overrides={
            "paths.encoder": str(encoder_dir),
            "paths.train": None,
            "paths.dev": None,
            # A random encoder's vectors are nearly parallel (cosine ~0.9): the head needs
            # large weights, so a larger step than the real-encoder default.
            "training.optimizer.learn_rate": 0.05,
        },
        interpolate=False,
    )
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def fit(nlp: spacy.Language, records: list[tuple[str, list[str]]], steps: int) -> list[float]:
    """nlp.initialize + ``steps`` updates with the config's optimizer; returns the losses."""
    fix_random_seed(0)
    examples = [
        Example.from_dict(nlp.make_doc(t), {"cats": {lab: float(lab in pos) for lab in LABELS}})
        for t, pos in records
    ]
    optimizer = nlp.initialize(lambda: examples)
    losses_seen = []
    rng = np.random.default_rng(0)
    step = 0
    while step < steps:
        order = rng.permutation(len(examples))
        for start in range(0, len(order), 16):
            losses: dict[str, float] = {}
            nlp.update(
                [examples[i] for i in order[start : start + 16]], sgd=optimizer, losses=losses
            )
            losses_seen.append(losses["textcat"])
            step += 1
    return losses_seen


@pytest.fixture(scope="module")
def exclusive(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    encoder_copy = shutil.copytree(tiny_encoder, tmp_path_factory.mktemp("enc") / "model")
    nlp = build_from_config("textcat_embed.cfg", encoder_copy)
    losses = fit(nlp, make_records(20, seed=1), steps=150)
    return {"nlp": nlp, "losses": losses, "encoder_dir": encoder_copy}


def test_exclusive_head_learns(exclusive: dict[str, Any]) -> None:
    nlp, losses = exclusive["nlp"], exclusive["losses"]
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:5])
    test = make_records(10, seed=2)
    correct = sum(max(nlp(t).cats, key=nlp(t).cats.get) == pos[0] for t, pos in test)
    assert correct / len(test) >= 0.9
    cats = nlp(test[0][0]).cats
    assert sum(cats.values()) == pytest.approx(1.0, abs=1e-5)
    assert nlp.get_pipe("textcat").resolved_output_gradient() == "logits"


def test_encoder_runs_once_per_text(exclusive: dict[str, Any]) -> None:
    nlp = exclusive["nlp"]
    slot = next(n for n in nlp.get_pipe("textcat").model.walk() if n.name == "sentence_encoder")
    cache = slot.attrs["encoder"].cache
    texts = [t for t, _ in make_records(5, seed=3)]
    list(nlp.pipe(texts))
    misses = cache.misses
    list(nlp.pipe(texts))
    assert cache.misses == misses  # second pass: all from the cache


def test_save_load_without_encoder_directory(exclusive: dict[str, Any], tmp_path: Path) -> None:
    """The pipeline carries its encoder: spacy.load works after the directory is gone, and
    gives the same scores; nlp.pipe equals nlp(); empty and long texts work."""
    nlp = exclusive["nlp"]
    nlp.to_disk(tmp_path / "model")
    assert not list((tmp_path / "model").rglob("*.pkl"))
    shutil.rmtree(exclusive["encoder_dir"])
    loaded = spacy.load(tmp_path / "model")
    texts = [t for t, _ in make_records(4, seed=4)] + ["", "lost my card " * 300]
    for text, doc in zip(texts, loaded.pipe(texts, batch_size=3), strict=True):
        assert doc.cats == pytest.approx(nlp(text).cats, abs=1e-6)
        assert loaded(text).cats == pytest.approx(doc.cats, abs=1e-6)
    assert loaded("").cats == dict.fromkeys(LABELS, 0.0)
    again = spacy.load(tmp_path / "model")
    again.get_pipe("textcat").from_bytes(loaded.get_pipe("textcat").to_bytes())
    assert again(texts[0]).cats == pytest.approx(nlp(texts[0]).cats, abs=1e-6)


def test_multilabel_head_learns(tiny_encoder: Path) -> None:
    nlp = build_from_config("textcat_multilabel_embed.cfg", tiny_encoder)
    records = make_records(20, seed=5)
    # a second label on some texts: multi-label
    records = [
        (t, [*pos, "refund"] if "thanks" in t and pos[0] != "refund" else pos) for t, pos in records
    ]
    losses = fit(nlp, records, steps=150)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    assert nlp.get_pipe("textcat").resolved_output_gradient() == "probabilities"
    cats = nlp("lost my card").cats
    assert cats["card_lost"] > 0.5 > cats["balance"]


def test_uninitialised_encoder_is_a_coded_error(tiny_encoder: Path) -> None:
    nlp = build_from_config("textcat_embed.cfg", tiny_encoder)
    model = nlp.get_pipe("textcat").model
    assert sentence_encoder_of(model) is None
    with pytest.raises(ConfigError, match=r"\[E450\]"):
        model.predict([nlp.make_doc("hello")])
