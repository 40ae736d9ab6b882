"""Calibrator and decision components, the tune step and the decision scorer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spacy
from spacy.training import Example

from kit_testing import write_docbin
from textcat_kit.evaluation import cats_matrix
from textcat_kit.maths import metrics
from textcat_kit.pipeline.decision import score_decisions
from textcat_kit.tuning import fold_ids, tune_pipeline

TEXTS = ["", "card", "I lost my card yesterday and need a new one " * 40, "top up failed"]


@pytest.fixture(scope="module")
def tuned_exclusive(
    banking_small: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("tuned-exclusive")
    banking_small["nlp"].to_disk(tmp / "model")
    dev = write_docbin(banking_small["dev"], banking_small["labels"], tmp / "dev.spacy")
    summary = tune_pipeline(
        tmp / "model", dev, tmp / "tuned", decision_config={"abstain_precision": 0.95}
    )
    return {"dir": tmp / "tuned", "summary": summary, "raw": tmp / "model", **banking_small}


@pytest.fixture(scope="module")
def tuned_multilabel(
    goemotions_small: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("tuned-multilabel")
    goemotions_small["nlp"].to_disk(tmp / "model")
    dev = write_docbin(goemotions_small["dev"], goemotions_small["labels"], tmp / "dev.spacy")
    with pytest.warns(UserWarning, match=r"\[W001\]"):
        summary = tune_pipeline(tmp / "model", dev, tmp / "tuned")
    return {"dir": tmp / "tuned", "summary": summary, "raw": tmp / "model", **goemotions_small}


def test_tuned_pipeline_has_components_after_classifier(tuned_exclusive: dict[str, Any]) -> None:
    nlp = spacy.load(tuned_exclusive["dir"])
    assert nlp.pipe_names == ["textcat", "textcat_kit_calibrator", "textcat_kit_decision"]
    state = json.loads(
        (tuned_exclusive["dir"] / "textcat_kit_calibrator" / "calibrator.json").read_text()
    )
    assert state["calibrator"]["method"] == "temperature"
    assert state["calibrator"]["temperature"] > 0
    assert not list(tuned_exclusive["dir"].rglob("*.pkl"))


def test_temperature_keeps_argmax_and_improves_nll(tuned_exclusive: dict[str, Any]) -> None:
    raw = spacy.load(tuned_exclusive["raw"])
    tuned = spacy.load(tuned_exclusive["dir"])
    labels = tuned_exclusive["labels"]
    texts = [t for t, _ in tuned_exclusive["test"]]
    gold = np.array([[float(lab in pos) for lab in labels] for _, pos in tuned_exclusive["test"]])
    p_raw = cats_matrix(list(raw.pipe(texts)), labels)
    p_cal = cats_matrix(list(tuned.pipe(texts)), labels)
    assert np.array_equal(p_raw.argmax(1), p_cal.argmax(1))
    assert np.allclose(p_cal.sum(1), 1.0)
    assert metrics.log_loss(p_cal, gold, exclusive=True) < metrics.log_loss(
        p_raw, gold, exclusive=True
    )


def test_pipe_equals_call_and_handles_edge_texts(
    tuned_exclusive: dict[str, Any], tuned_multilabel: dict[str, Any]
) -> None:
    for tuned in (tuned_exclusive, tuned_multilabel):
        nlp = spacy.load(tuned["dir"])
        # spaCy's own textcat scores a batch made only of empty docs as all-zero but an
        # empty doc inside a batch with the model's bias; our components map both
        # consistently, so compare like with like.
        empty = nlp("")
        assert list(nlp.pipe([""]))[0].cats == empty.cats
        assert isinstance(empty._.decided_labels, list)
        non_empty = TEXTS[1:]
        piped = list(nlp.pipe(non_empty, batch_size=2))
        for text, doc in zip(non_empty, piped):
            single = nlp(text)
            assert single.cats == doc.cats
            assert single._.decided_labels == doc._.decided_labels
            assert isinstance(doc._.decided_labels, list)


def test_exclusive_decision_is_top_label_or_abstains(tuned_exclusive: dict[str, Any]) -> None:
    nlp = spacy.load(tuned_exclusive["dir"])
    decision = nlp.get_pipe("textcat_kit_decision")
    assert decision.abstain_threshold is not None
    for doc in nlp.pipe([t for t, _ in tuned_exclusive["test"]]):
        top, prob = max(doc.cats.items(), key=lambda kv: kv[1])
        if prob >= decision.abstain_threshold:
            assert doc._.decided_labels == [top]
        else:
            assert doc._.decided_labels == []


def test_multilabel_thresholds_are_per_label_and_applied(tuned_multilabel: dict[str, Any]) -> None:
    nlp = spacy.load(tuned_multilabel["dir"])
    decision = nlp.get_pipe("textcat_kit_decision")
    thresholds = decision.thresholds
    assert set(thresholds) == set(tuned_multilabel["labels"])
    assert len({round(t, 6) for t in thresholds.values()}) > 1
    for doc in nlp.pipe([t for t, _ in tuned_multilabel["test"][:200]]):
        expected = [lab for lab in decision.labels if doc.cats[lab] >= thresholds[lab]]
        assert doc._.decided_labels == expected


def test_component_serialization_roundtrip(tuned_multilabel: dict[str, Any]) -> None:
    nlp = spacy.load(tuned_multilabel["dir"])
    nlp2 = spacy.load(tuned_multilabel["dir"])
    for name in ("textcat_kit_calibrator", "textcat_kit_decision"):
        nlp2.get_pipe(name).from_bytes(nlp.get_pipe(name).to_bytes())
    texts = [t for t, _ in tuned_multilabel["test"][:50]]
    for a, b in zip(nlp.pipe(texts), nlp2.pipe(texts)):
        assert a.cats == b.cats and a._.decided_labels == b._.decided_labels
    restored = spacy.load(tuned_multilabel["dir"])
    restored.from_bytes(nlp.to_bytes())
    assert (
        restored.get_pipe("textcat_kit_decision").thresholds
        == nlp.get_pipe("textcat_kit_decision").thresholds
    )


def test_decision_scorer_reports_tuned_thresholds(tuned_multilabel: dict[str, Any]) -> None:
    nlp = spacy.load(tuned_multilabel["dir"])
    labels = tuned_multilabel["labels"]
    examples = [
        Example.from_dict(nlp.make_doc(text), {"cats": {lab: float(lab in pos) for lab in labels}})
        for text, pos in tuned_multilabel["test"]
    ]
    scores = nlp.evaluate(examples)
    assert scores["cats_score_desc"] == "macro F (tuned thresholds)"
    docs = list(nlp.pipe([t for t, _ in tuned_multilabel["test"]]))
    decided = np.array([[float(lab in d._.decided_labels) for lab in labels] for d in docs])
    gold = np.array([[float(lab in pos) for lab in labels] for _, pos in tuned_multilabel["test"]])
    assert scores["cats_macro_f"] == pytest.approx(metrics.prf_per_label(decided, gold).macro_f)
    assert set(scores["cats_f_per_type"]) == set(labels)


def test_score_decisions_by_hand() -> None:
    nlp = spacy.blank("en")
    refs = [{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}, {"a": 1.0, "b": 1.0}]
    predicted = [["a"], ["a"], ["a", "b"]]
    examples = []
    for cats, decided in zip(refs, predicted):
        eg = Example.from_dict(nlp.make_doc("x"), {"cats": cats})
        eg.predicted._.decided_labels = decided
        examples.append(eg)
    scores = score_decisions(examples, labels=["a", "b"])
    # a: tp=2, fp=1 -> p=2/3, r=1 ; b: tp=1, fn=1 -> p=1, r=1/2
    assert scores["cats_f_per_type"]["a"]["p"] == pytest.approx(2 / 3)
    assert scores["cats_f_per_type"]["b"]["r"] == pytest.approx(0.5)
    assert scores["cats_micro_p"] == pytest.approx(3 / 4)


def test_fold_ids_spread_rare_labels() -> None:
    gold = np.zeros((100, 2))
    gold[:5, 1] = 1
    gold[5:, 0] = 1
    folds = fold_ids(gold, 5, seed=0)
    assert sorted(folds[:5].tolist()) == [0, 1, 2, 3, 4]


def test_unfitted_decision_errors_and_unfitted_calibrator_passes_through() -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat_kit_calibrator")
    doc = nlp.make_doc("hello")
    doc.cats = {"a": 0.3}
    with pytest.warns(UserWarning, match=r"\[E011\]"):
        assert nlp.get_pipe("textcat_kit_calibrator")(doc).cats == {"a": 0.3}
    nlp.add_pipe("textcat_kit_decision")
    with pytest.raises(ValueError, match=r"\[E011\].*textcat-kit tune"):
        nlp.get_pipe("textcat_kit_decision")(doc)


def test_bad_objective_is_rejected() -> None:
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match=r"\[E013\].*threshold objective 'f2'"):
        nlp.add_pipe("textcat_kit_decision", config={"objective": "f2"})


def test_tune_summary_written(tuned_multilabel: dict[str, Any], tmp_path: Path) -> None:
    summary = json.loads((tuned_multilabel["dir"] / "tune_summary.json").read_text())
    assert summary["calibration_method"] == "platt"
    assert summary["raw_global_threshold"] is not None
