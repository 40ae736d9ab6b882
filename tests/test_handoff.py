"""The classifier hands its batch scores to the calibrator and decision components inside
``nlp.pipe`` (textcat_kit.pipeline._handoff): same results as running them one after the
other, and never applied where the components would not run."""

from __future__ import annotations

import pickle
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc

from kit_testing import train_bow_pipeline, write_docbin
from textcat_kit.pipeline._handoff import take_handed
from textcat_kit.pipeline._state import FittedComponent
from textcat_kit.tuning import CALIBRATOR, DECISION, tune_pipeline

OURS = [CALIBRATOR, DECISION]
EDGE_TEXTS = ["", "card", "I lost my card yesterday and need a new one " * 30, "top up failed", "x"]


@pytest.fixture(scope="module", params=["exclusive", "multilabel"])
def tuned(
    request: pytest.FixtureRequest,
    banking_small: dict[str, Any],
    goemotions_small: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Our bigram classifier + calibrator + decision, tuned on dev, and test texts."""
    exclusive = request.param == "exclusive"
    data = banking_small if exclusive else goemotions_small
    tmp = tmp_path_factory.mktemp(f"handoff-{request.param}")
    train = data["train"] if exclusive else data["train"][:1500]
    nlp = train_bow_pipeline(train, data["labels"], exclusive, epochs=3, kit_classifier=True)
    nlp.to_disk(tmp / "model")
    dev = write_docbin(data["dev"], data["labels"], tmp / "dev.spacy")
    decision = {"abstain_precision": 0.9} if exclusive else {"ensure_one_label": True}
    calibration = "temperature" if exclusive else "isotonic"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W001: labels too rare to calibrate in this subset
        tune_pipeline(
            tmp / "model", dev, tmp / "tuned", calibration=calibration, decision_config=decision
        )
    texts = EDGE_TEXTS + [text for text, _ in data["test"]][:200]
    return {"nlp": spacy.load(tmp / "tuned"), "dir": tmp / "tuned", "texts": texts}


def one_after_the_other(nlp: Language, texts: list[str], skip: tuple[str, ...] = ()) -> list[Doc]:
    """The reference: the classifier alone, then each of our components over the docs."""
    with nlp.select_pipes(disable=OURS):
        docs = list(nlp.pipe(texts))
    for name in OURS:
        if name not in skip:
            component: FittedComponent = nlp.get_pipe(name)  # type: ignore[assignment]
            component._process(docs)
    return docs


def raw_cats(nlp: Language, texts: list[str]) -> list[dict[str, float]]:
    """The classifier's scores straight from ``predict``: no pipe, no hand-off."""
    textcat = nlp.get_pipe("textcat")
    scores = textcat.predict([nlp.make_doc(text) for text in texts])  # type: ignore[attr-defined]
    return [dict(zip(textcat.labels, row, strict=True)) for row in scores.tolist()]  # type: ignore[attr-defined]


def assert_same(docs: list[Doc], reference: list[Doc]) -> None:
    assert [doc.text for doc in docs] == [doc.text for doc in reference]
    for doc, ref in zip(docs, reference, strict=True):
        assert doc.cats == ref.cats  # exact: the same float64 maths on the same inputs
        assert doc._.decided_labels == ref._.decided_labels


class ProcessSpy:
    """Counts the docs a fitted component had to read back from ``doc.cats``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, nlp: Language) -> None:
        self.docs_read = 0
        for name in OURS:
            component = nlp.get_pipe(name)
            monkeypatch.setattr(component, "_process", self._wrap(component._process))

    def _wrap(self, process: Any) -> Any:
        def spied(docs: list[Doc]) -> None:
            self.docs_read += len(docs)
            process(docs)

        return spied


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_pipe_hands_off_and_matches_running_components_in_turn(
    tuned: dict[str, Any], batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    nlp, texts = tuned["nlp"], tuned["texts"]
    reference = one_after_the_other(nlp, texts)
    spy = ProcessSpy(monkeypatch, nlp)
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    assert_same(docs, reference)
    assert spy.docs_read == 0  # every doc was handed over, none read back from doc.cats


def test_calibrated_scores_differ_from_raw(tuned: dict[str, Any]) -> None:
    nlp, texts = tuned["nlp"], tuned["texts"]
    raw = raw_cats(nlp, texts)
    with nlp.select_pipes(disable=OURS):
        assert [doc.cats for doc in nlp.pipe(texts)] == raw
    calibrated = list(nlp.pipe(texts))
    assert sum(doc.cats != ref for doc, ref in zip(calibrated, raw, strict=True)) > 100


def test_misaligned_batches_and_per_doc_calls_match(tuned: dict[str, Any]) -> None:
    nlp, texts = tuned["nlp"], tuned["texts"]
    reference = one_after_the_other(nlp, texts)
    component_cfg = {CALIBRATOR: {"batch_size": 13}, DECISION: {"batch_size": 50}}
    assert_same(list(nlp.pipe(texts, batch_size=32, component_cfg=component_cfg)), reference)
    assert_same([nlp(text) for text in texts[:40]], reference[:40])


def test_calibrator_left_out_of_the_call_leaves_raw_scores(tuned: dict[str, Any]) -> None:
    nlp, texts = tuned["nlp"], tuned["texts"]
    reference = one_after_the_other(nlp, texts, skip=(CALIBRATOR,))
    assert_same(list(nlp.pipe(texts, disable=[CALIBRATOR])), reference)
    with nlp.select_pipes(disable=[CALIBRATOR]):
        assert_same(list(nlp.pipe(texts)), reference)


def test_pipeline_run_inside_the_loop_is_not_handed_our_components(
    tuned: dict[str, Any],
) -> None:
    """While ``nlp.pipe`` is suspended at a doc, the calibrator is waiting in the middle of
    its stream; a raw-score run started from the loop body must not be calibrated."""
    nlp, texts = tuned["nlp"], tuned["texts"]
    raw = raw_cats(nlp, texts)
    for i, _ in enumerate(nlp.pipe(texts, batch_size=16)):
        if i in (3, 40):
            with nlp.select_pipes(disable=OURS):
                assert [doc.cats for doc in nlp.pipe(texts)] == raw


@Language.component("test_handoff_flatten_cats")
def flatten_cats(doc: Doc) -> Doc:
    """Changes doc.cats between the classifier and the calibrator."""
    doc.cats = {label: 0.5 * score for label, score in doc.cats.items()}
    return doc


def test_component_between_classifier_and_calibrator_stops_the_handoff(
    tuned: dict[str, Any],
) -> None:
    nlp = spacy.load(tuned["dir"])
    nlp.add_pipe("test_handoff_flatten_cats", after="textcat")
    texts = tuned["texts"]
    with nlp.select_pipes(disable=OURS):
        docs = list(nlp.pipe(texts))
    for name in OURS:
        nlp.get_pipe(name)._process(docs)  # type: ignore[attr-defined]
    assert_same(list(nlp.pipe(texts, batch_size=32)), docs)


def test_take_handed_skips_exactly_the_handed_docs_in_any_order() -> None:
    nlp = spacy.blank("en")
    a, b, c, x = (nlp.make_doc(text) for text in ("a", "b", "c", "x"))
    pending = [a, b, c]
    assert take_handed(pending, [a, b]) == [] and pending == [c]  # the nlp.pipe case
    pending = [a, b, c]
    assert take_handed(pending, [x, b]) == [x]
    assert pending == [a, c]
    assert take_handed(pending, [c, a]) == [] and pending == []


def test_pipe_in_another_thread_waiting_mid_batch_does_not_leak_into_this_one(
    tuned: dict[str, Any],
) -> None:
    """Thread B's components are registered while B's input stream blocks mid-batch; a
    pipe run in this thread meanwhile must get its own results, and B must get B's."""
    nlp, texts = tuned["nlp"], tuned["texts"]
    reference = one_after_the_other(nlp, texts)
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
        assert_same(list(nlp.pipe(texts)), reference)
        with nlp.select_pipes(disable=OURS):
            assert [doc.cats for doc in nlp.pipe(texts)] == raw_cats(nlp, texts)
    finally:
        release.set()
        thread_b.join(timeout=60)
    assert_same(results_b, reference)


def test_pipeline_pickles_and_the_copy_gives_the_same_results(tuned: dict[str, Any]) -> None:
    """spaCy pickles the pipeline for nlp.pipe(n_process=...) where processes are spawned."""
    nlp, texts = tuned["nlp"], tuned["texts"]
    copy = pickle.loads(pickle.dumps(nlp))
    assert_same(list(copy.pipe(texts)), one_after_the_other(nlp, texts))
