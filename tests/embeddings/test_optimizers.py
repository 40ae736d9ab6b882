"""``textcat_kit.AdamHeadLR.v1``: the classifier head trains at a multiple of the encoder's
learning rate, in a real spacy-transformers pipeline built from the shipped config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spacy
from spacy.training import Example
from spacy.util import load_config, registry

from textcat_kit.embeddings.optimizers import AdamHeadLR, is_head_parameter, make_adam_head_lr
from textcat_kit.errors import ConfigError

pytest.importorskip("spacy_transformers")

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ["textcat_transformer.cfg", "textcat_multilabel_transformer.cfg"]
TRAIN = [
    ("my card was declined", "card"),
    ("the atm kept my card", "card"),
    ("my transfer has not arrived", "transfer"),
    ("how long does a transfer take", "transfer"),
]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from textcat_kit.testing.tiny_transformer import build_tiny_transformer

    texts = [text for text, _ in TRAIN] * 20
    return build_tiny_transformer(tmp_path_factory.mktemp("tiny-bert"), texts, vocab_size=200)


class Recorder(AdamHeadLR):
    """Records, per update, how far each parameter the pipeline passes moved."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.moved: list[dict[tuple[int, str], float]] = []

    def __call__(self, key, weights, gradient, *, lr_scale=1.0):  # type: ignore[no-untyped-def]
        before = weights.copy()
        weights, gradient = super().__call__(key, weights, gradient, lr_scale=lr_scale)
        self.moved[-1][key] = float(np.abs(weights - before).max())
        return weights, gradient


def three_updates(tiny_bert: Path, head_lr_scale: float) -> tuple[Recorder, set[tuple[int, str]]]:
    """Three updates of the shipped config's pipeline on a tiny BERT. The first only moves
    the head: its output layer starts at zero, so no gradient reaches the encoder yet."""
    config = load_config(
        REPO_ROOT / "configs" / "textcat_transformer.cfg",
        overrides={"paths.transformer_name": str(tiny_bert)},
        interpolate=False,
    )
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    examples = [
        Example.from_dict(
            nlp.make_doc(text),
            {"cats": {"card": float(label == "card"), "transfer": float(label != "card")}},
        )
        for text, label in TRAIN
    ]
    nlp.initialize(lambda: examples)
    head = {
        (node.id, name)
        for node in nlp.get_pipe("textcat").model.walk()
        for name in node.param_names
        if node.has_param(name)
    }
    optimizer = Recorder(1e-3, head_lr_scale=head_lr_scale, use_averages=False, grad_clip=0.0)
    for _ in range(3):
        optimizer.moved.append({})
        nlp.update(examples, sgd=optimizer, losses={})
    return optimizer, head


def test_head_keys_are_the_textcats_own_parameters(tiny_bert: Path) -> None:
    optimizer, head = three_updates(tiny_bert, 10.0)
    keys = set(optimizer.moved[1])
    assert {key for key in keys if is_head_parameter(key)} == head
    encoder = {name for key in keys if not is_head_parameter(key) for name in [key[1]]}
    assert any(name.startswith("encoder.layer.") for name in encoder), encoder
    assert any("word_embeddings" in name for name in encoder), encoder


def test_head_steps_scale_and_encoder_steps_do_not(tiny_bert: Path) -> None:
    # Adam's first step moves each weight whose gradient is non-zero by the rate itself.
    plain, plain_head = three_updates(tiny_bert, 1.0)
    scaled, scaled_head = three_updates(tiny_bert, 10.0)
    assert max(plain.moved[0][key] for key in plain_head) == pytest.approx(1e-3, rel=0.01)
    assert max(scaled.moved[0][key] for key in scaled_head) == pytest.approx(1e-2, rel=0.01)
    # the encoder's first non-zero gradient comes in the third update (the head is zero in
    # the first); Adam's bias correction makes that step 0.744 x the rate, at either scale
    encoder = [
        max(v for key, v in optimizer.moved[2].items() if not is_head_parameter(key))
        for optimizer in (plain, scaled)
    ]
    assert encoder[0] == pytest.approx(0.744e-3, rel=0.01)
    assert encoder[1] == pytest.approx(encoder[0], rel=1e-3)
    assert max(scaled.moved[2][key] for key in scaled_head) > 5 * encoder[1]


def test_configs_resolve_the_optimizer_with_a_schedule() -> None:
    for name in CONFIGS:
        training = load_config(REPO_ROOT / "configs" / name, interpolate=True)["training"]
        optimizer = registry.resolve({"o": training["optimizer"]})["o"]
        assert isinstance(optimizer, AdamHeadLR)
        assert optimizer.head_lr_scale == 10.0
        assert "learn_rate" in optimizer.schedules  # warmup_linear.v1 still drives the rate


def test_non_positive_scale_is_a_coded_error() -> None:
    with pytest.raises(ConfigError, match=r"\[E465\]"):
        make_adam_head_lr(1e-4, head_lr_scale=0.0)
