"""explain.py: exact n-gram contributions of bag-of-words models, and the report sections."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import fix_random_seed, minibatch
from typer.testing import CliRunner

from textcat_kit.errors import ConfigError
from textcat_kit.explain import (
    confused_pairs,
    confused_pairs_markdown,
    explain,
    raw_logits,
    worst_errors_markdown,
)

LABELS = ["refund", "card", "rate"]
TEXTS = {
    "refund": [
        "I want a refund for this",
        "please refund my money",
        "how do I get a refund",
        "refund the payment now",
        "money back refund please",
    ],
    "card": [
        "my card has not arrived",
        "where is my new card",
        "the card was never delivered",
        "card delivery is late",
        "I lost my card",
    ],
    "rate": [
        "what is the exchange rate",
        "the rate for euros is bad",
        "which exchange rate do you use",
        "rate for dollars today",
        "exchange rate too high",
    ],
}


def train(exclusive: bool, feature_values: str = "tfidf", attr: str = "LOWER") -> Language:
    fix_random_seed(0)
    nlp = spacy.blank("en")
    factory = "textcat_kit_textcat" if exclusive else "textcat_kit_textcat_multilabel"
    nlp.add_pipe(
        factory,
        name="textcat",
        config={
            "model": {
                "@architectures": "textcat_kit.TextCatBOW.v1",
                "exclusive_classes": exclusive,
                "ngram_size": 2,
                "no_output_layer": False,
                "length": 2**12,
                "attr": attr,
                "feature_values": feature_values,
            }
        },
    )
    records = [(text, label) for label, texts in TEXTS.items() for text in texts]
    if not exclusive:
        records.append(("refund for my card please", "refund card"))
    examples = [
        Example.from_dict(
            nlp.make_doc(text), {"cats": {lab: float(lab in label.split()) for lab in LABELS}}
        )
        for text, label in records
    ]
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(0)
    for _ in range(30):
        rng.shuffle(examples)
        for batch in minibatch(examples, size=4):
            nlp.update(batch, sgd=optimizer)
    return nlp


@pytest.fixture(scope="module")
def exclusive_nlp() -> Language:
    return train(exclusive=True)


@pytest.fixture(scope="module")
def multilabel_nlp() -> Language:
    return train(exclusive=False, feature_values="l2")


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.parametrize("text", ["I want my refund for the card", "rate", "zzz unseen words"])
def test_logits_from_features_reproduce_the_model(exclusive_nlp: Language, text: str) -> None:
    logits = raw_logits(exclusive_nlp, text)
    cats = exclusive_nlp(text).cats
    np.testing.assert_allclose(softmax(logits), [cats[label] for label in LABELS], atol=1e-5)


def test_multilabel_logits_reproduce_the_model(multilabel_nlp: Language) -> None:
    text = "refund for the late card"
    logits = raw_logits(multilabel_nlp, text)
    cats = multilabel_nlp(text).cats
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), [cats[lb] for lb in LABELS], atol=1e-5)
    result = explain(multilabel_nlp, text, labels=["card"], top_k=50)
    item = result.labels[0]
    assert item.against is None
    assert item.score == pytest.approx(logits[LABELS.index("card")], abs=1e-4)
    assert "card" in [c.ngram for c in item.toward]


def test_contributions_sum_to_the_logit_difference(exclusive_nlp: Language) -> None:
    text = "please refund my card refund"
    result = explain(exclusive_nlp, text, top_k=1000)
    assert result.decided == ["refund"]
    item = result.labels[0]
    logits = raw_logits(exclusive_nlp, text)
    assert item.against == max(
        (lb for lb in LABELS if lb != "refund"), key=lambda lb: result.probabilities[lb]
    )
    expected = logits[0] - logits[LABELS.index(item.against)]
    total = item.bias + sum(c.contribution for c in item.toward + item.away)
    assert total == pytest.approx(expected, abs=1e-4)
    assert item.score == pytest.approx(expected, abs=1e-4)
    toward = {c.ngram: c for c in item.toward}
    assert "refund" in toward and toward["refund"].count == 2
    assert "card" in {c.ngram for c in item.away}
    assert "please refund" in toward  # bigrams are named from the text
    assert all(c.contribution > 0 for c in item.toward)
    assert all(c.contribution < 0 for c in item.away)


def test_explain_against_a_chosen_label_and_errors(exclusive_nlp: Language) -> None:
    empty = explain(exclusive_nlp, "").labels[0]  # spaCy scores an empty doc all 0
    assert empty.toward == [] and empty.away == []
    result = explain(exclusive_nlp, "exchange rate for my card", labels=["card"], against="rate")
    assert result.labels[0].against == "rate"
    assert "rate" in {c.ngram for c in result.labels[0].away}
    with pytest.raises(ConfigError, match=r"\[E407\].*'nope'"):
        explain(exclusive_nlp, "x", labels=["nope"])


def test_non_linear_models_are_refused() -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "textcat",
        config={
            "model": {
                "@architectures": "spacy.TextCatReduce.v1",
                "exclusive_classes": True,
                "use_reduce_first": False,
                "use_reduce_last": False,
                "use_reduce_max": False,
                "use_reduce_mean": True,
                "tok2vec": {
                    "@architectures": "spacy.HashEmbedCNN.v2",
                    "pretrained_vectors": None,
                    "width": 8,
                    "depth": 1,
                    "embed_size": 100,
                    "window_size": 1,
                    "maxout_pieces": 2,
                    "subword_features": False,
                },
            }
        },
    )
    nlp.get_pipe("textcat").add_label("a")  # type: ignore[attr-defined]
    nlp.get_pipe("textcat").add_label("b")  # type: ignore[attr-defined]
    nlp.initialize()
    with pytest.raises(ConfigError, match=r"\[E406\]"):
        explain(nlp, "some text")


def test_cli_prints_json(exclusive_nlp: Language, tmp_path: Path) -> None:
    from textcat_kit.cli import app

    exclusive_nlp.to_disk(tmp_path / "model")
    result = CliRunner().invoke(
        app, ["explain", str(tmp_path / "model"), "when will my card arrive", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["decided"] == ["card"]
    assert data["labels"][0]["toward"][0]["ngram"]
    missing = CliRunner().invoke(app, ["explain", str(tmp_path / "model"), "x", "--label", "nope"])
    assert missing.exit_code == 1 and "[E407]" in missing.output


def test_report_sections(exclusive_nlp: Language) -> None:
    texts = ["I want a refund", "exchange rate please", "my card is late", "refund card"]
    gold = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 0]], dtype=float)
    probs = np.array(
        [[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.1, 0.3, 0.6], [0.7, 0.2, 0.1]], dtype=float
    )
    pairs = confused_pairs(gold, probs, LABELS, exclusive=True)
    assert pairs == {(1, 2): [2], (1, 0): [3]}
    table = confused_pairs_markdown(texts, gold, probs, LABELS, exclusive=True)
    assert "| card | rate | 1 |" in table and "“refund card”" in table
    worst = worst_errors_markdown(exclusive_nlp, texts, gold, probs, LABELS, exclusive=True)
    lines = [line for line in worst.splitlines() if line.startswith("| ") and "refund card" in line]
    assert lines and "| card | refund | 0.700 |" in lines[0] and "`refund`" in lines[0]
    # the most confident error comes first
    assert worst.index("refund card") < worst.index("my card is late")
    multi = confused_pairs(gold, np.where(probs > 0.25, 0.9, 0.1), LABELS, exclusive=False)
    assert multi[(1, 2)] == [2] and multi[(1, 0)] == [3]
    assert "No errors." in worst_errors_markdown(
        exclusive_nlp, texts[:1], gold[:1], probs[:1], LABELS, exclusive=True
    )
