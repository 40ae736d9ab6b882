"""One inference path: a tuned classifier applies its own calibration and decision rule in
``set_annotations``. Its output depends only on its docs and its state, so it is the same
whatever calls the pipeline, from where, in which batches or threads, and whatever other
components the pipeline is assembled from.

Runs on a synthetic corpus (no shared data needed)."""

from __future__ import annotations

import pickle
import random
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc

from kit_testing import train_bow_pipeline, write_docbin
from textcat_kit.pipeline.fitted import ClassifierState, OwnsFittedState, raw_scores
from textcat_kit.pipeline.tuned import CALIBRATOR, DECISION
from textcat_kit.tuning import tune_pipeline

LABELS = ["billing", "card", "refund", "travel", "app", "account"]
KEYWORDS = {
    "billing": ["invoice", "charge", "fee", "statement"],
    "card": ["card", "pin", "contactless", "expired"],
    "refund": ["refund", "return", "money", "back"],
    "travel": ["abroad", "exchange", "currency", "trip"],
    "app": ["app", "login", "crash", "update"],
    "account": ["account", "close", "open", "details"],
}
FILLER = "i my the a please help need why is it not working today again still can you".split()
EDGE_TEXTS = ["", "card", "I lost my card yesterday and need a new one " * 30, "x"]


def synthetic(n: int, seed: int, multilabel: bool) -> list[tuple[str, list[str]]]:
    """Texts with label keywords in filler words; some keywords of other labels as noise."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        labels = [rng.choice(LABELS)]
        if multilabel and rng.random() < 0.3:
            labels.append(rng.choice([label for label in LABELS if label not in labels]))
        words = rng.choices(FILLER, k=rng.randint(3, 10))
        for label in labels:
            words += rng.choices(KEYWORDS[label], k=rng.randint(1, 2))
        if rng.random() < 0.3:
            words.append(rng.choice(KEYWORDS[rng.choice(LABELS)]))
        rng.shuffle(words)
        records.append((" ".join(words), labels))
    return records


@pytest.fixture(scope="module", params=["exclusive", "multilabel"])
def tuned(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Our bigram classifier, tuned (calibration + decisions owned by the classifier)."""
    exclusive = request.param == "exclusive"
    tmp = tmp_path_factory.mktemp(f"inference-{request.param}")
    nlp = train_bow_pipeline(
        synthetic(600, 0, not exclusive), LABELS, exclusive, epochs=3, kit_classifier=True
    )
    nlp.to_disk(tmp / "model")
    dev = write_docbin(synthetic(400, 1, not exclusive), LABELS, tmp / "dev.spacy")
    decision = {"abstain_precision": 0.9} if exclusive else {"ensure_one_label": True}
    calibration = "temperature" if exclusive else "isotonic"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small dev set: rare-label fallbacks
        tune_pipeline(
            tmp / "model", dev, tmp / "tuned", calibration=calibration, decision_config=decision
        )
    texts = EDGE_TEXTS + [text for text, _ in synthetic(300, 2, not exclusive)]
    return {"nlp": spacy.load(tmp / "tuned"), "dir": tmp / "tuned", "texts": texts, "tmp": tmp}


def reference(nlp: Language, texts: list[str]) -> list[Doc]:
    """The classifier's raw scores, then its calibrator and decision rule applied by hand."""
    classifier = nlp.get_pipe("textcat")
    with raw_scores(nlp, "textcat") as fitted:
        docs = list(nlp.pipe(texts))
    state = fitted.owned
    assert state is not None and state.calibrator is not None and state.decision is not None
    labels = list(classifier.labels)  # type: ignore[attr-defined]
    raw = np.array([[doc.cats[label] for label in labels] for doc in docs])
    probs = state.calibrator.transform(raw)
    decided = state.decision.decide(probs)
    for doc, row, flags in zip(docs, probs.tolist(), decided, strict=True):
        doc.cats = dict(zip(labels, row, strict=True))
        doc._.decided_labels = [label for label, flag in zip(labels, flags, strict=True) if flag]
    return docs


#: A tuned bow classifier applies temperature scaling to its logits, softmax(z / T); the
#: reference and the standalone calibrator apply it to probabilities, softmax(log p / T):
#: the same function, apart from float rounding (about 1e-7). Decisions must be equal.
REFERENCE_ATOL = 1e-6


def assert_same(docs: list[Doc], expected: list[Doc], atol: float = REFERENCE_ATOL) -> None:
    assert [doc.text for doc in docs] == [doc.text for doc in expected]
    for doc, ref in zip(docs, expected, strict=True):
        assert doc.cats.keys() == ref.cats.keys()
        if atol == 0.0:
            assert doc.cats == ref.cats
        else:
            got, want = np.array(list(doc.cats.values())), np.array(list(ref.cats.values()))
            np.testing.assert_allclose(got, want, rtol=0.0, atol=atol)
        assert doc._.decided_labels == ref._.decided_labels


def test_tuned_classifier_owns_its_state(tuned: dict[str, Any]) -> None:
    nlp = tuned["nlp"]
    assert nlp.pipe_names == ["textcat"]
    assert {"calibrator.json", "decision.json"} <= {
        p.name for p in (tuned["dir"] / "textcat").iterdir()
    }
    classifier = nlp.get_pipe("textcat")
    assert isinstance(classifier, OwnsFittedState) and classifier.fitted.is_fitted


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_pipe_and_call_match_the_reference(tuned: dict[str, Any], batch_size: int) -> None:
    nlp, texts = tuned["nlp"], tuned["texts"]
    expected = reference(nlp, texts)
    assert_same(list(nlp.pipe(texts, batch_size=batch_size)), expected)
    assert_same([nlp(text) for text in texts[:40]], expected[:40])


def test_calibrated_scores_differ_from_raw(tuned: dict[str, Any]) -> None:
    nlp, texts = tuned["nlp"], tuned["texts"]
    with raw_scores(nlp, "textcat"):
        raw = [doc.cats for doc in nlp.pipe(texts)]
    calibrated = [doc.cats for doc in nlp.pipe(texts)]
    assert sum(a != b for a, b in zip(calibrated, raw, strict=True)) > 100


def test_nested_calls_inside_the_input_generator(tuned: dict[str, Any]) -> None:
    """The input generator of nlp.pipe itself calls nlp() and nlp.pipe: every result, outer
    and inner, is what it would be alone."""
    nlp, texts = tuned["nlp"], tuned["texts"]
    expected = reference(nlp, texts)
    inner: list[Doc] = []

    def stream() -> Iterator[str]:
        for i, text in enumerate(texts):
            inner.append(nlp(texts[-1 - i]))
            if i % 50 == 0:
                inner.extend(nlp.pipe(texts[:3], batch_size=2))
            yield text

    outer = list(nlp.pipe(stream(), batch_size=16))
    assert_same(outer, expected)
    assert_same(outer, list(nlp.pipe(texts, batch_size=16)), atol=0.0)  # to the bit
    flat = []
    for i in range(len(texts)):
        flat.append(expected[-1 - i])
        if i % 50 == 0:
            flat.extend(expected[:3])
    assert_same(inner, flat)


def test_nested_calls_in_the_loop_body(tuned: dict[str, Any]) -> None:
    nlp, texts = tuned["nlp"], tuned["texts"]
    expected = reference(nlp, texts)
    for i, doc in enumerate(nlp.pipe(texts, batch_size=16)):
        assert_same([doc], [expected[i]])
        if i in (3, 40):
            assert_same(list(nlp.pipe(texts[:20])), expected[:20])


@Language.component("test_inference_halve_cats")
def halve_cats(doc: Doc) -> Doc:
    """Edits doc.cats after the classifier."""
    doc.cats = {label: 0.5 * score for label, score in doc.cats.items()}
    return doc


def test_sourced_classifier_keeps_its_state_and_a_cats_editor_after_it_sees_calibrated_cats(
    tuned: dict[str, Any],
) -> None:
    nlp, texts = tuned["nlp"], tuned["texts"]
    expected = reference(nlp, texts)
    assembled = spacy.blank("en")
    assembled.add_pipe("textcat", source=nlp)
    assert_same(list(assembled.pipe(texts)), expected)
    assembled.add_pipe("test_inference_halve_cats")
    halved = []
    for doc in expected:
        copy = doc.copy()
        copy.cats = {label: 0.5 * score for label, score in doc.cats.items()}
        halved.append(copy)
    assert_same(list(assembled.pipe(texts, batch_size=32)), halved)


def test_standalone_components_with_a_cats_editor_in_between(tuned: dict[str, Any]) -> None:
    """The layout of pipelines tuned before the classifier owned its state (and of
    third-party classifiers): sourced classifier, a component editing doc.cats, then the
    standalone calibrator and decision. Each component works on what is in doc.cats."""
    texts = tuned["texts"]
    old_layout = standalone_layout(tuned["dir"])
    old_layout.add_pipe("test_inference_halve_cats", after="textcat")
    with old_layout.select_pipes(disable=[CALIBRATOR, DECISION]):
        expected = list(old_layout.pipe(texts))
    for name in (CALIBRATOR, DECISION):
        old_layout.get_pipe(name)._process(expected)  # type: ignore[attr-defined]
    assert_same(list(old_layout.pipe(texts, batch_size=32)), expected)
    assert_same([old_layout(text) for text in texts[:30]], expected[:30])


def standalone_layout(tuned_dir: Path) -> Language:
    """The tuned pipeline with an untuned classifier followed by the standalone components
    holding its fitted state (what tune wrote before the classifier owned its state)."""
    copy = spacy.load(tuned_dir)
    classifier = copy.get_pipe("textcat")
    state: ClassifierState = classifier.fitted  # type: ignore[attr-defined]
    calibrator = copy.add_pipe(CALIBRATOR)
    calibrator.calibrator, calibrator._labels = state.calibrator, list(classifier.labels)  # type: ignore[attr-defined]
    decision = copy.add_pipe(DECISION)
    decision.rule, decision._labels = state.decision, list(classifier.labels)  # type: ignore[attr-defined]
    classifier.fitted = ClassifierState()  # type: ignore[attr-defined]
    return copy


def test_pipelines_in_the_old_layout_load_and_give_the_same_results(
    tuned: dict[str, Any], tmp_path: Path
) -> None:
    nlp, texts = tuned["nlp"], tuned["texts"]
    standalone_layout(tuned["dir"]).to_disk(tmp_path / "old")
    old = spacy.load(tmp_path / "old")
    assert old.pipe_names == ["textcat", CALIBRATOR, DECISION]
    assert_same(list(old.pipe(texts)), list(nlp.pipe(texts)))


def test_threads_get_their_own_results(tuned: dict[str, Any]) -> None:
    """One thread's nlp.pipe blocks mid-batch while another runs the same pipeline."""
    nlp, texts = tuned["nlp"], tuned["texts"]
    expected = reference(nlp, texts)
    blocked, release = threading.Event(), threading.Event()

    def stream_b() -> Iterator[str]:
        yield from texts[:5]
        blocked.set()
        release.wait(timeout=60)
        yield from texts[5:]

    results_b: list[Doc] = []
    thread_b = threading.Thread(target=lambda: results_b.extend(nlp.pipe(stream_b())))
    thread_b.start()
    try:
        assert blocked.wait(timeout=60)
        assert_same(list(nlp.pipe(texts)), expected)
    finally:
        release.set()
        thread_b.join(timeout=60)
    assert_same(results_b, expected)


def test_pickled_and_bytes_copies_give_the_same_results(tuned: dict[str, Any]) -> None:
    nlp, texts = tuned["nlp"], tuned["texts"]
    expected = reference(nlp, texts)
    assert_same(list(pickle.loads(pickle.dumps(nlp)).pipe(texts)), expected)
    restored = spacy.load(tuned["tmp"] / "model")  # untuned classifier
    restored.from_bytes(nlp.to_bytes())
    assert_same(list(restored.pipe(texts)), expected)


def test_retuning_a_tuned_pipeline_reads_raw_scores(tuned: dict[str, Any]) -> None:
    """tune on model-tuned starts from the classifier's raw scores, so it gives the same
    state as tuning model-best."""
    tmp = tuned["tmp"]
    exclusive = tuned["nlp"].get_pipe("textcat").fitted.decision.exclusive
    decision = {"abstain_precision": 0.9} if exclusive else {"ensure_one_label": True}
    calibration = "temperature" if exclusive else "isotonic"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tune_pipeline(
            tuned["dir"],
            tmp / "dev.spacy",
            tmp / "retuned",
            calibration=calibration,
            decision_config=decision,
        )
    for name in ("calibrator.json", "decision.json"):
        assert (tmp / "retuned" / "textcat" / name).read_text() == (
            tuned["dir"] / "textcat" / name
        ).read_text()
