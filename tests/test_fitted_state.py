"""Fitted state is checked on load and before save: a corrupt or foreign calibrator.json /
decision.json stops spacy.load with a coded error naming the file and the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spacy
from spacy.training import Example

from textcat_kit.errors import ConfigError
from textcat_kit.maths.calibration import PerLabelCalibration, TemperatureScaling
from textcat_kit.pipeline.fitted import DecisionRule
from textcat_kit.pipeline.state_schema import check_calibrator_state, check_decision_state
from textcat_kit.pipeline.tuned import CALIBRATOR, DECISION

LABELS = ["a", "b", "c"]
TRAIN = [("apple apple", "a"), ("banana bread", "b"), ("cherry pie", "c"), ("apple pie", "a")]


def _classifier_pipeline(factory: str) -> spacy.language.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, name="textcat")
    examples = [
        Example.from_dict(nlp.make_doc(text), {"cats": {lab: float(lab == y) for lab in LABELS}})
        for text, y in TRAIN
    ]
    nlp.initialize(lambda: examples)
    return nlp


def _fitted(exclusive: bool) -> tuple[Any, DecisionRule]:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=60)
    gold = np.eye(3)[rng.integers(0, 3, size=60)]
    if exclusive:
        calibrator: Any = TemperatureScaling().fit(probs, gold)
    else:
        calibrator = PerLabelCalibration("isotonic", min_positives=5).fit(probs, gold, LABELS)
    rule = DecisionRule(
        labels=list(LABELS),
        exclusive=exclusive,
        thresholds={"a": 0.4, "b": 0.5, "c": 0.6},
        global_threshold=0.5,
        abstain_threshold=0.5 if exclusive else None,
    )
    return calibrator, rule


@pytest.fixture(params=["owned-exclusive", "owned-multilabel", "standalone"])
def saved(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    return _save(request.param, tmp_path)


def _save(kind: str, tmp_path: Path) -> dict[str, Any]:
    """A tuned pipeline on disk: state owned by our classifier, or in standalone components
    after spaCy's textcat (the layout for third-party classifiers)."""
    exclusive = kind != "owned-multilabel"
    calibrator, rule = _fitted(exclusive)
    if kind == "standalone":
        nlp = _classifier_pipeline("textcat")
        component = nlp.add_pipe(CALIBRATOR)
        component.calibrator, component._labels = calibrator, list(LABELS)  # type: ignore[attr-defined]
        decision = nlp.add_pipe(DECISION)
        decision.rule, decision._labels = rule, list(LABELS)  # type: ignore[attr-defined]
        files = {"calibrator": CALIBRATOR, "decision": DECISION}
    else:
        factory = "textcat_kit_textcat" if exclusive else "textcat_kit_textcat_multilabel"
        nlp = _classifier_pipeline(factory)
        nlp.get_pipe("textcat").set_fitted_state(calibrator, rule)  # type: ignore[attr-defined]
        files = {"calibrator": "textcat", "decision": "textcat"}
    nlp.to_disk(tmp_path / "tuned")
    return {
        "dir": tmp_path / "tuned",
        "calibrator": tmp_path / "tuned" / files["calibrator"] / "calibrator.json",
        "decision": tmp_path / "tuned" / files["decision"] / "decision.json",
        "exclusive": exclusive,
    }


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_valid_state_loads_and_decides(saved: dict[str, Any]) -> None:
    nlp = spacy.load(saved["dir"])
    doc = nlp("apple pie")
    assert set(doc.cats) == set(LABELS)
    assert doc._.decided_labels is not None


@pytest.mark.parametrize("kind", ["owned-exclusive", "standalone"])
def test_negative_temperature_is_refused(kind: str, tmp_path: Path) -> None:
    saved = _save(kind, tmp_path)
    _edit(saved["calibrator"], lambda d: d["calibrator"].update(temperature=-1.5))
    with pytest.raises(ConfigError, match=r"\[E250\].*calibrator\.json.*calibrator\.temperature"):
        spacy.load(saved["dir"])


def test_threshold_above_one_is_refused(saved: dict[str, Any]) -> None:
    _edit(saved["decision"], lambda d: d["thresholds"].update(b=2.0))
    with pytest.raises(ConfigError, match=r"\[E250\].*decision\.json.*thresholds\.b.*\[0, 1\]"):
        spacy.load(saved["dir"])


def test_nan_threshold_is_refused(saved: dict[str, Any]) -> None:
    _edit(saved["decision"], lambda d: d.update(global_threshold=float("nan")))
    with pytest.raises(ConfigError, match=r"\[E250\].*decision\.json.*global_threshold"):
        spacy.load(saved["dir"])


def test_file_that_is_not_json_is_named(saved: dict[str, Any]) -> None:
    saved["calibrator"].write_text('{"labels": ["a", "b"')
    with pytest.raises(ConfigError, match=r"\[E250\].*calibrator\.json.*not JSON"):
        spacy.load(saved["dir"])


def test_labels_of_another_classifier_are_refused(saved: dict[str, Any]) -> None:
    def rename(data: dict[str, Any]) -> None:
        data["labels"] = ["a", "b", "zebra"]
        data["thresholds"] = {"a": 0.5, "b": 0.5, "zebra": 0.5}

    _edit(saved["decision"], rename)
    if saved["dir"].joinpath(DECISION).exists():
        # standalone: the file is consistent in itself; it only fails against the scores
        nlp = spacy.load(saved["dir"])
        with pytest.raises(ConfigError, match=r"\[E014\].*zebra"):
            nlp("apple pie")
        return
    with pytest.raises(ConfigError, match=r"\[E251\].*decision\.json.*unknown \['zebra'\]"):
        spacy.load(saved["dir"])


@pytest.mark.parametrize("kind", ["owned-exclusive", "owned-multilabel"])
def test_labels_in_another_order_are_refused(kind: str, tmp_path: Path) -> None:
    """(Standalone components read doc.cats by label name, so order does not matter there.)"""
    saved = _save(kind, tmp_path)
    _edit(saved["calibrator"], lambda d: d.update(labels=["c", "b", "a"]))
    with pytest.raises(ConfigError, match=r"\[E251\].*calibrator\.json.*another order"):
        spacy.load(saved["dir"])


def test_isotonic_knots_must_be_monotone(tmp_path: Path) -> None:
    saved = _save("owned-multilabel", tmp_path)

    def unsort(data: dict[str, Any]) -> None:
        entry = next(e for e in data["calibrator"]["per_label"] if e["status"] == "fitted")
        entry["y_knots"] = list(reversed(entry["y_knots"]))
        if entry["y_knots"] == sorted(entry["y_knots"]):
            entry["y_knots"] = [0.9] + entry["y_knots"][1:] + [0.1]
            entry["x_knots"] = entry["x_knots"] + [1.0]

    _edit(saved["calibrator"], unsort)
    with pytest.raises(ConfigError, match=r"\[E250\].*calibrator\.json.*y_knots.*non-decreasing"):
        spacy.load(saved["dir"])


def test_truncated_file_fields_are_named(saved: dict[str, Any]) -> None:
    _edit(saved["decision"], lambda d: d.pop("thresholds"))
    with pytest.raises(ConfigError, match=r"\[E250\].*decision\.json.*'thresholds'"):
        spacy.load(saved["dir"])


def test_state_is_checked_before_save() -> None:
    nlp = _classifier_pipeline("textcat_kit_textcat")
    calibrator, rule = _fitted(True)
    rule.thresholds["a"] = 1.5
    with pytest.raises(ConfigError, match=r"\[E250\].*thresholds\.a"):
        nlp.get_pipe("textcat").set_fitted_state(calibrator, rule)  # type: ignore[attr-defined]
    rule.thresholds["a"] = 0.5
    rule.labels = ["a", "b", "d"]
    with pytest.raises(ConfigError, match=r"\[E251\]"):
        nlp.get_pipe("textcat").set_fitted_state(calibrator, rule)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"labels": "abc", "exclusive": True, "thresholds": {}}, "labels"),
        ({"labels": ["a"], "exclusive": "yes", "thresholds": {}}, "exclusive"),
        ({"labels": ["a"], "exclusive": True, "thresholds": {"a": "0.5"}}, "thresholds.a"),
        ({"labels": ["a"], "exclusive": True, "thresholds": {"b": 0.5}}, "thresholds.b"),
        ([1, 2], "(top level)"),
    ],
)
def test_decision_schema_names_the_field(state: Any, field: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"\[E250\] f\.json: field '{__import__('re').escape(field)}'"
    ):
        check_decision_state(state, "f.json")


@pytest.mark.parametrize(
    ("calibrator", "field"),
    [
        ({"method": "magic", "n_labels": 1}, "calibrator.method"),
        ({"method": "temperature", "n_labels": 2, "temperature": 1.0}, "calibrator.n_labels"),
        (
            {"method": "temperature", "n_labels": 1, "temperature": float("inf")},
            "calibrator.temperature",
        ),
        (
            {
                "method": "platt",
                "n_labels": 1,
                "per_label": [{"status": "fitted", "a": -1.0, "b": 0.0}],
            },
            "calibrator.per_label[0] (a).a",
        ),
        ({"method": "platt", "n_labels": 1, "per_label": []}, "calibrator.per_label"),
        (
            {
                "method": "isotonic",
                "n_labels": 1,
                "per_label": [{"status": "fitted", "x_knots": [0.1, 0.2], "y_knots": [0.3]}],
            },
            "calibrator.per_label[0] (a).y_knots",
        ),
    ],
)
def test_calibrator_schema_names_the_field(calibrator: dict[str, Any], field: str) -> None:
    import re

    with pytest.raises(ConfigError, match=rf"\[E250\] c\.json: field '{re.escape(field)}'"):
        check_calibrator_state({"labels": ["a"], "calibrator": calibrator}, "c.json")
