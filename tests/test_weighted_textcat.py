"""The weighted text classifiers: loss wiring, fitted weights, serialisation, training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spacy
from spacy.language import Language
from spacy.pipeline.textcat import (
    TextCategorizer,
    single_label_bow_config,
    single_label_cnn_config,
)
from spacy.pipeline.textcat_multilabel import multi_label_bow_config, multi_label_cnn_config
from spacy.training import Example
from spacy.util import fix_random_seed, registry
from thinc.api import Adam, Config

from textcat_kit.errors import ConfigError
from textcat_kit.pipeline.losses import ClassWeightedLoss, CrossEntropyLoss, FocalLoss
from textcat_kit.pipeline.weighted_textcat import (
    WeightedMultiLabelTextCategorizer,
    WeightedTextCategorizer,
)

EXCLUSIVE = "textcat_kit_textcat"
MULTILABEL = "textcat_kit_textcat_multilabel"

# Ten positive, ten negative and two examples of a rare class.
EXCLUSIVE_DATA: list[tuple[str, dict[str, float]]] = [
    *[(text, {"POS": 1.0, "NEG": 0.0, "RARE": 0.0}) for text in [
        "I love this", "great film", "really great", "love it so much", "what a great day",
        "this is lovely", "so good", "I really love it", "good and great", "lovely stuff",
    ]],
    *[(text, {"POS": 0.0, "NEG": 1.0, "RARE": 0.0}) for text in [
        "I hate this", "awful film", "really bad", "hate it so much", "what a bad day",
        "this is awful", "so bad", "I really hate it", "bad and awful", "terrible stuff",
    ]],
    ("the zebra escaped", {"POS": 0.0, "NEG": 0.0, "RARE": 1.0}),
    ("a zebra in the kitchen", {"POS": 0.0, "NEG": 0.0, "RARE": 1.0}),
]  # fmt: skip

# Multi-label: JOY frequent, GRIEF rare, and one doc where GRIEF is not annotated.
MULTILABEL_DATA: list[tuple[str, dict[str, float]]] = [
    *[(text, {"JOY": 1.0, "GRIEF": 0.0}) for text in [
        "so happy today", "what a joy", "happy happy", "joyful news", "I am so happy",
        "lovely and happy", "full of joy", "happy again",
    ]],
    *[(text, {"JOY": 0.0, "GRIEF": 0.0}) for text in [
        "the bus is late", "it is raining", "a table and a chair", "numbers and letters",
    ]],
    ("we mourn his loss", {"JOY": 0.0, "GRIEF": 1.0}),
    ("mourning and loss", {"JOY": 0.0, "GRIEF": 1.0}),
    ("a happy day", {"JOY": 1.0}),
]  # fmt: skip


def model_config(config_str: str) -> dict[str, Any]:
    return Config().from_str(config_str)["model"]


def make_nlp(
    factory: str,
    loss: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    name: str = "textcat",
) -> Language:
    nlp = spacy.blank("en")
    config: dict[str, Any] = {}
    if loss is not None:
        config["loss"] = loss
    if model is not None:
        config["model"] = model
    elif factory == EXCLUSIVE:
        config["model"] = model_config(single_label_bow_config)
    else:
        config["model"] = model_config(multi_label_bow_config)
    nlp.add_pipe(factory, name=name, config=config)
    return nlp


def textcat_of(nlp: Language, name: str = "textcat") -> WeightedTextCategorizer:
    """The weighted classifier ``name`` of ``nlp`` (typed for the checks below)."""
    pipe = nlp.get_pipe(name)
    assert isinstance(pipe, WeightedTextCategorizer | WeightedMultiLabelTextCategorizer)
    return pipe


def make_examples(nlp: Language, data: list[tuple[str, dict[str, float]]]) -> list[Example]:
    return [Example.from_dict(nlp.make_doc(text), {"cats": cats}) for text, cats in data]


def train(
    nlp: Language, examples: list[Example], n_iter: int, learn_rate: float = 0.05
) -> list[float]:
    """Initialize and update on ``examples``; a high learning rate keeps the tests short."""
    fix_random_seed(0)
    nlp.initialize(lambda: examples)
    optimizer = Adam(learn_rate=learn_rate)
    history = []
    for _ in range(n_iter):
        losses: dict[str, float] = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
        history.append(losses["textcat"])
    return history


BALANCED = {"@misc": "textcat_kit.ClassWeightedLoss.v1", "weights": "balanced"}
CROSS_ENTROPY = {"@misc": "textcat_kit.CrossEntropyLoss.v1"}


# --- registry and configuration ------------------------------------------------------------------


def test_every_registered_name_resolves() -> None:
    for name, expected in [
        ("textcat_kit.CrossEntropyLoss.v1", CrossEntropyLoss),
        ("textcat_kit.ClassWeightedLoss.v1", ClassWeightedLoss),
        ("textcat_kit.FocalLoss.v1", FocalLoss),
    ]:
        resolved = registry.resolve({"loss": {"@misc": name}})["loss"]
        assert isinstance(resolved, expected)
    for factory in (EXCLUSIVE, MULTILABEL):
        assert Language.has_factory(factory)


def test_factories_work_stand_alone_with_spacys_default_model() -> None:
    for factory, data in ((EXCLUSIVE, EXCLUSIVE_DATA), (MULTILABEL, MULTILABEL_DATA)):
        nlp = spacy.blank("en")
        nlp.add_pipe(factory)
        textcat = textcat_of(nlp, factory)
        assert nlp.config["components"][factory]["model"]["@architectures"] == (
            "spacy.TextCatEnsemble.v2"
        )
        assert nlp.config["components"][factory]["loss"] == {
            "@misc": "textcat_kit.ClassWeightedLoss.v1",
            "weights": "balanced",
            "max_weight": 10.0,
            "balance_power": 1.0,
        }
        examples = make_examples(nlp, data)
        optimizer = nlp.initialize(lambda: examples)  # noqa: B023 (called right here)
        losses = nlp.update(examples, sgd=optimizer)
        assert losses[factory] > 0
        assert set(nlp("a new text").cats) == set(textcat.labels)


def test_invalid_loss_settings_fail_at_config_time() -> None:
    with pytest.raises(ConfigError, match=r"\[E186\].*weights"):
        make_nlp(EXCLUSIVE, {"@misc": "textcat_kit.ClassWeightedLoss.v1", "weights": "balance"})
    with pytest.raises(ConfigError, match=r"\[E186\].*gamma"):
        make_nlp(MULTILABEL, {"@misc": "textcat_kit.FocalLoss.v1", "gamma": -1.0})


def test_output_gradient_is_detected_from_the_models_last_layer() -> None:
    cases = [
        (EXCLUSIVE, model_config(single_label_bow_config), "probabilities"),
        (EXCLUSIVE, model_config(single_label_cnn_config), "logits"),
        (EXCLUSIVE, None, "logits"),  # spaCy's default ensemble ends in Softmax
        (MULTILABEL, model_config(multi_label_bow_config), "probabilities"),
        (MULTILABEL, model_config(multi_label_cnn_config), "probabilities"),
    ]
    for factory, model, expected in cases:
        nlp = spacy.blank("en")
        config = {} if model is None else {"model": model}
        nlp.add_pipe(factory, config=config)
        assert textcat_of(nlp, factory).resolved_output_gradient() == expected, (factory, model)


def test_a_model_without_an_activation_is_rejected_with_a_clear_error() -> None:
    model = model_config(single_label_bow_config)
    model["no_output_layer"] = True
    nlp = make_nlp(EXCLUSIVE, model=model)
    with pytest.raises(ConfigError, match=r"\[E187\].*output_gradient"):
        train(nlp, make_examples(nlp, EXCLUSIVE_DATA), n_iter=1)


# --- the loss and its gradient -------------------------------------------------------------------


def test_get_loss_equals_hand_computed_weighted_loss_on_a_softmax_model() -> None:
    nlp = make_nlp(EXCLUSIVE, BALANCED, model=model_config(single_label_cnn_config))
    textcat = textcat_of(nlp)
    examples = make_examples(nlp, EXCLUSIVE_DATA)
    nlp.initialize(lambda: examples)
    # 22 docs, 3 classes: weights 22 / (3 * 10) for POS and NEG, 22 / (3 * 2) for RARE
    assert textcat.loss.label_weights_ == pytest.approx(
        {"POS": 22 / 30, "NEG": 22 / 30, "RARE": 22 / 6}
    )
    batch = [examples[0], examples[-1]]  # a POS doc and a RARE doc
    scores = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]], dtype="float32")
    loss, d_scores = textcat.get_loss(batch, scores)
    assert loss == pytest.approx(-(22 / 30) * np.log(0.7) - (22 / 6) * np.log(0.2), rel=1e-5)
    expected = [
        [(22 / 30) * -0.3, (22 / 30) * 0.2, (22 / 30) * 0.1],
        [0.5 * 22 / 6, 0.3 * 22 / 6, -0.8 * 22 / 6],
    ]
    np.testing.assert_allclose(d_scores, expected, rtol=1e-5)
    assert d_scores.dtype == np.float32


def test_cross_entropy_on_a_softmax_model_reproduces_spacys_gradient() -> None:
    nlp = make_nlp(EXCLUSIVE, CROSS_ENTROPY, model=model_config(single_label_cnn_config))
    stock = spacy.blank("en")
    stock.add_pipe("textcat", config={"model": model_config(single_label_cnn_config)})
    examples = make_examples(nlp, EXCLUSIVE_DATA)
    nlp.initialize(lambda: examples)
    stock.initialize(lambda: examples)
    scores = np.random.default_rng(0).dirichlet(np.ones(3), size=len(examples)).astype("f")
    _, ours = textcat_of(nlp).get_loss(examples, scores)
    stock_textcat = stock.get_pipe("textcat")
    assert isinstance(stock_textcat, TextCategorizer)
    _, spacys = stock_textcat.get_loss(examples, scores)
    np.testing.assert_allclose(ours, spacys, atol=1e-6)


def test_missing_labels_get_a_zero_gradient() -> None:
    nlp = make_nlp(MULTILABEL, BALANCED, model=model_config(multi_label_cnn_config))
    textcat = textcat_of(nlp)
    examples = make_examples(nlp, MULTILABEL_DATA)
    nlp.initialize(lambda: examples)
    assert textcat.labels == ("JOY", "GRIEF")
    partial = examples[-1]  # "a happy day": GRIEF not annotated
    scores = np.array([[0.4, 0.6]], dtype="float32")
    loss, d_scores = textcat.get_loss([partial], scores)
    assert d_scores[0, 1] == 0.0
    assert d_scores[0, 0] < 0.0
    # JOY's positive weight is 6 negatives / 9 positives; the missing GRIEF adds nothing
    assert loss == pytest.approx(-(6 / 9) * np.log(0.4), rel=1e-5)


def test_balanced_multilabel_weights_count_only_annotated_docs() -> None:
    nlp = make_nlp(MULTILABEL, BALANCED)
    examples = make_examples(nlp, MULTILABEL_DATA)
    nlp.initialize(lambda: examples)
    weights = textcat_of(nlp).loss.label_weights_
    # JOY: 9 positive of 15 annotated; GRIEF: 2 positive of 14 annotated (one doc missing it)
    assert weights == pytest.approx({"JOY": 6 / 9, "GRIEF": 12 / 2})


def test_balance_power_and_max_weight_reach_the_fitted_weights() -> None:
    loss = {**BALANCED, "balance_power": 0.5, "max_weight": 2.0}
    nlp = make_nlp(MULTILABEL, loss)
    nlp.initialize(lambda: make_examples(nlp, MULTILABEL_DATA))
    # JOY sqrt(6 / 9) = 0.816; GRIEF sqrt(12 / 2) = 2.449, capped at 2
    assert textcat_of(nlp).loss.label_weights_ == pytest.approx(
        {"JOY": (6 / 9) ** 0.5, "GRIEF": 2.0}
    )


def test_explicit_weights_are_used_and_checked_against_the_labels() -> None:
    loss = {"@misc": "textcat_kit.ClassWeightedLoss.v1", "weights": {"RARE": 5.0}}
    nlp = make_nlp(EXCLUSIVE, loss)
    nlp.initialize(lambda: make_examples(nlp, EXCLUSIVE_DATA))
    assert textcat_of(nlp).loss.label_weights_ == {"POS": 1.0, "NEG": 1.0, "RARE": 5.0}
    loss = {"@misc": "textcat_kit.ClassWeightedLoss.v1", "weights": {"RAER": 5.0}}
    nlp = make_nlp(EXCLUSIVE, loss)
    with pytest.raises(ConfigError, match=r"\[E184\].*'RAER'"):
        nlp.initialize(lambda: make_examples(nlp, EXCLUSIVE_DATA))


def test_balanced_weights_without_initialize_raise_a_clear_error() -> None:
    nlp = make_nlp(EXCLUSIVE, BALANCED)
    textcat = textcat_of(nlp)
    for label in ("POS", "NEG", "RARE"):
        textcat.add_label(label)
    examples = make_examples(nlp, EXCLUSIVE_DATA[:1])
    with pytest.raises(ConfigError, match=r"\[E185\].*'textcat'"):
        textcat.get_loss(examples, np.array([[0.4, 0.3, 0.3]], dtype="f"))


def test_focal_alpha_is_rejected_for_exclusive_classes() -> None:
    nlp = make_nlp(EXCLUSIVE, {"@misc": "textcat_kit.FocalLoss.v1", "alpha": 0.25})
    with pytest.raises(ConfigError, match=r"\[E186\].*alpha"):
        nlp.initialize(lambda: make_examples(nlp, EXCLUSIVE_DATA))


# --- training --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss",
    [BALANCED, CROSS_ENTROPY, {"@misc": "textcat_kit.FocalLoss.v1", "gamma": 2.0}],
    ids=["balanced", "cross_entropy", "focal"],
)
def test_exclusive_overfits_and_learns_the_rare_class(loss: dict[str, Any]) -> None:
    nlp = make_nlp(EXCLUSIVE, loss)
    examples = make_examples(nlp, EXCLUSIVE_DATA)
    history = train(nlp, examples, n_iter=15)
    assert history[-1] < history[0] / 3
    for text in ("the zebra escaped", "a zebra in the kitchen"):
        cats = nlp(text).cats
        assert max(cats, key=cats.__getitem__) == "RARE", (text, cats)
    assert nlp("I love this").cats["POS"] > 0.5


@pytest.mark.parametrize(
    "loss",
    [BALANCED, {"@misc": "textcat_kit.FocalLoss.v1", "gamma": 2.0, "weights": "balanced"}],
    ids=["balanced", "focal"],
)
def test_multilabel_overfits_and_learns_the_rare_label(loss: dict[str, Any]) -> None:
    nlp = make_nlp(MULTILABEL, loss)
    examples = make_examples(nlp, MULTILABEL_DATA)
    history = train(nlp, examples, n_iter=15)
    assert history[-1] < history[0] / 3
    assert nlp("we mourn his loss").cats["GRIEF"] > 0.5
    assert nlp("so happy today").cats["GRIEF"] < 0.5
    assert nlp("so happy today").cats["JOY"] > 0.5


def test_balanced_weights_raise_the_rare_class_prior_above_plain_cross_entropy() -> None:
    # On a text of unseen words only the shared parameters (bias) speak: plain
    # cross-entropy pulls RARE towards its 2/22 share, balanced weights towards 1/3.
    rare_probability = {}
    for name, loss in (("balanced", BALANCED), ("cross_entropy", CROSS_ENTROPY)):
        nlp = make_nlp(EXCLUSIVE, loss)
        train(nlp, make_examples(nlp, EXCLUSIVE_DATA), n_iter=10)
        rare_probability[name] = nlp("hello world").cats["RARE"]
    assert rare_probability["balanced"] > rare_probability["cross_entropy"] + 0.02


def test_pipe_equals_call_and_evaluate_scores() -> None:
    nlp = make_nlp(MULTILABEL, BALANCED)
    examples = make_examples(nlp, MULTILABEL_DATA)
    train(nlp, examples, n_iter=5)
    texts = [text for text, _ in MULTILABEL_DATA] + ["", "happy " * 2000]
    for piped, text in zip(nlp.pipe(texts, batch_size=4), texts, strict=True):
        assert piped.cats == pytest.approx(nlp(text).cats)
    scores = nlp.evaluate(examples)
    assert 0.0 <= scores["cats_macro_f"] <= 1.0
    assert "cats_score" in scores


# --- serialisation ---------------------------------------------------------------------------


def trained_pipeline(factory: str = EXCLUSIVE) -> Language:
    data = EXCLUSIVE_DATA if factory == EXCLUSIVE else MULTILABEL_DATA
    nlp = make_nlp(factory, BALANCED)
    train(nlp, make_examples(nlp, data), n_iter=3)
    return nlp


def test_component_to_bytes_from_bytes_restores_the_weights() -> None:
    nlp = trained_pipeline()
    textcat = textcat_of(nlp)
    fresh = textcat_of(make_nlp(EXCLUSIVE, BALANCED))
    assert fresh.loss.label_weights_ is None
    fresh.from_bytes(textcat.to_bytes())
    assert fresh.loss.label_weights_ == textcat.loss.label_weights_
    assert fresh.loss.label_weights_["RARE"] == pytest.approx(22 / 6)
    excluded = textcat_of(make_nlp(EXCLUSIVE, BALANCED))
    excluded.from_bytes(textcat.to_bytes(), exclude=["loss"])
    assert excluded.loss.label_weights_ is None


def test_component_to_disk_from_disk_restores_the_weights(tmp_path: Path) -> None:
    nlp = trained_pipeline(MULTILABEL)
    textcat = textcat_of(nlp)
    textcat.to_disk(tmp_path / "textcat")
    assert (tmp_path / "textcat" / "loss.json").exists()
    fresh = textcat_of(make_nlp(MULTILABEL, BALANCED))
    fresh.from_disk(tmp_path / "textcat")
    assert fresh.labels == textcat.labels
    assert fresh.loss.label_weights_ == textcat.loss.label_weights_
    assert fresh.loss.exclusive_ is False


def test_pipeline_saved_and_loaded_with_spacy_load(tmp_path: Path) -> None:
    nlp = trained_pipeline()
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    textcat = textcat_of(loaded)
    assert loaded.config["components"]["textcat"]["factory"] == EXCLUSIVE
    assert textcat.loss.label_weights_ == textcat_of(nlp).loss.label_weights_
    for text in ("the zebra escaped", "I love this", ""):
        assert loaded(text).cats == pytest.approx(nlp(text).cats)
    # the fitted weights stay out of cfg, which spaCy passes to the scorer as kwargs
    assert set(textcat.cfg) == {"labels", "threshold", "positive_label"}
    # training can resume from the loaded pipeline with the restored weights
    examples = make_examples(loaded, EXCLUSIVE_DATA)
    losses = loaded.update(examples, sgd=loaded.resume_training())
    assert losses["textcat"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("factory", [EXCLUSIVE, MULTILABEL])
def test_transformer_listener_model_trains_saves_and_loads(factory: str, tmp_path: Path) -> None:
    """The weighted classifiers drive a spacy-transformers pipeline (tiny local BERT)."""
    pytest.importorskip("spacy_transformers")
    from textcat_kit.testing.tiny_transformer import build_tiny_transformer

    data = EXCLUSIVE_DATA if factory == EXCLUSIVE else MULTILABEL_DATA
    model_dir = build_tiny_transformer(tmp_path / "bert", [t for t, _ in data] * 3, vocab_size=200)
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": str(model_dir),
                "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1"},
            }
        },
    )
    model = model_config(
        single_label_cnn_config if factory == EXCLUSIVE else multi_label_cnn_config
    )
    model["tok2vec"] = {
        "@architectures": "spacy-transformers.TransformerListener.v1",
        "grad_factor": 1.0,
        "pooling": {"@layers": "reduce_mean.v1"},
    }
    loss = {"@misc": "textcat_kit.FocalLoss.v1", "gamma": 2.0, "weights": "balanced"}
    nlp.add_pipe(factory, name="textcat", config={"model": model, "loss": loss})
    history = train(nlp, make_examples(nlp, data), n_iter=5, learn_rate=0.001)
    assert history[-1] < history[0]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert textcat_of(loaded).loss.label_weights_ == textcat_of(nlp).loss.label_weights_
    for text, _ in data[:3]:
        assert loaded(text).cats == pytest.approx(nlp(text).cats, abs=1e-5)
