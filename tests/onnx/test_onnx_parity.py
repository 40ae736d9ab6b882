"""The exported ONNX pipeline gives the trained spacy-transformers pipeline's doc.cats.

fp32: max |Δ doc.cats| <= 1e-4 over texts that include an empty text, one word, whitespace,
unicode, and texts longer than the window (several strided windows, and truncation of
windows longer than the model's maximum) — for exclusive and multi-label classifiers, BERT
(WordPiece, token type ids) and RoBERTa (byte-level BPE). int8: decided labels are compared
and the agreement is reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spacy
from onnx_testing import LABELS, PARITY_TEXTS

TOLERANCE = 1e-4


def cats_matrix(docs: list[spacy.tokens.Doc]) -> np.ndarray:
    return np.array([[doc.cats[label] for label in LABELS] for doc in docs])


def torch_reference(model_dir: Path) -> np.ndarray:
    """Each text on its own through the trained pipeline (spaCy's ``nlp(text)`` semantics)."""
    nlp = spacy.load(model_dir)
    return cats_matrix([nlp(text) for text in PARITY_TEXTS])


@pytest.mark.parametrize(
    "pipeline_fixture", ["exclusive_pipeline", "multilabel_pipeline", "roberta_pipeline"]
)
def test_fp32_export_matches_trained_pipeline(
    pipeline_fixture: str, request: pytest.FixtureRequest, export
) -> None:
    model_dir: Path = request.getfixturevalue(pipeline_fixture)
    expected = torch_reference(model_dir)
    # The fitted pipeline must not score every text alike, or parity would prove nothing.
    assert expected[1:].std(axis=0).max() > 1e-3
    onnx_nlp = spacy.load(export(model_dir))
    one_by_one = cats_matrix([onnx_nlp(text) for text in PARITY_TEXTS])
    batched = cats_matrix(list(onnx_nlp.pipe(PARITY_TEXTS, batch_size=4)))
    assert np.abs(one_by_one - expected).max() <= TOLERANCE
    assert np.abs(batched - expected).max() <= TOLERANCE
    assert np.abs(batched - one_by_one).max() <= 1e-5
    empty = PARITY_TEXTS.index("")
    assert one_by_one[empty].tolist() == [0.0, 0.0, 0.0]


def test_exported_cats_have_the_textcat_keys(exclusive_pipeline: Path, export) -> None:
    trained = spacy.load(exclusive_pipeline)
    exported = spacy.load(export(exclusive_pipeline))
    text = "my card is blocked"
    assert list(exported(text).cats) == list(trained(text).cats) == LABELS
    assert all(type(score) is float for score in exported(text).cats.values())


@pytest.mark.parametrize("pipeline_fixture", ["exclusive_pipeline", "multilabel_pipeline"])
def test_int8_export_agreement_is_reported(
    pipeline_fixture: str,
    request: pytest.FixtureRequest,
    export,
    record_property: pytest.RecordProperty,
) -> None:
    model_dir: Path = request.getfixturevalue(pipeline_fixture)
    expected = torch_reference(model_dir)
    int8_dir = export(model_dir, "int8")
    fp32_dir = export(model_dir)
    int8_nlp = spacy.load(int8_dir)
    got = cats_matrix(list(int8_nlp.pipe(PARITY_TEXTS)))
    nonempty = [i for i, text in enumerate(PARITY_TEXTS) if text]
    if pipeline_fixture == "exclusive_pipeline":
        agree = np.mean(expected[nonempty].argmax(1) == got[nonempty].argmax(1))
    else:
        agree = np.mean(np.all((expected[nonempty] >= 0.5) == (got[nonempty] >= 0.5), axis=1))
    max_diff = float(np.abs(got - expected).max())
    record_property("int8_decision_agreement", float(agree))
    record_property("int8_max_abs_diff", max_diff)
    print(f"{pipeline_fixture}: int8 decided labels agree on {agree:.0%}, max |Δ| {max_diff:.3f}")
    # Scores stay valid, the quantised encoder is smaller, and it stays close on this model.
    assert np.all((got >= 0.0) & (got <= 1.0))
    (int8_model,) = int8_dir.glob("*/model.onnx")
    (fp32_model,) = fp32_dir.glob("*/model.onnx")
    assert int8_model.stat().st_size < fp32_model.stat().st_size
    assert max_diff < 0.2
