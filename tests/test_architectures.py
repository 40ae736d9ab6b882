"""textcat_kit.TextCatBOW.v1: spaCy's TextCatBOW.v3 plus a feature attribute and values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.training import Example

from textcat_kit.architectures import idf_table, idf_weights, scale_feature_values
from textcat_kit.errors import ConfigError

TRAIN = [
    ("Refund my money please", "refund"),
    ("where is my REFUND", "refund"),
    ("my card has not arrived", "card"),
    ("Card still not here", "card"),
]


def bow_model(arch: str, **settings: object) -> dict[str, object]:
    model: dict[str, object] = {
        "@architectures": arch,
        "exclusive_classes": True,
        "ngram_size": 2,
        "no_output_layer": False,
        "length": 1024,
    }
    model.update(settings)
    return model


def trained_nlp(
    model: dict[str, object], steps: int = 20, factory: str = "textcat"
) -> spacy.language.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, name="textcat", config={"model": model})
    examples = [
        Example.from_dict(
            nlp.make_doc(text), {"cats": {c: float(y == c) for c in ("refund", "card")}}
        )
        for text, y in TRAIN
    ]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)
    return nlp


def test_lower_features_ignore_case_and_orth_features_do_not() -> None:
    lower = trained_nlp(bow_model("textcat_kit.TextCatBOW.v1", attr="LOWER"))
    orth = trained_nlp(bow_model("textcat_kit.TextCatBOW.v1", attr="ORTH"))
    assert lower("REFUND please").cats == pytest.approx(lower("refund PLEASE").cats, abs=0)
    assert orth("REFUND please").cats["refund"] != pytest.approx(
        orth("refund PLEASE").cats["refund"], abs=1e-6
    )


def test_orth_counts_is_the_same_network_as_spacy_textcatbow_v3() -> None:
    ours = trained_nlp(bow_model("textcat_kit.TextCatBOW.v1", attr="ORTH"), steps=0)
    spacys = trained_nlp(bow_model("spacy.TextCatBOW.v3"), steps=0)
    spacy_model = spacys.get_pipe("textcat").model
    sparse_linear = spacy_model.get_ref("output_layer")
    W = sparse_linear.get_param("W")
    sparse_linear.set_param("W", np.random.default_rng(0).normal(size=W.shape).astype(W.dtype))
    ours.get_pipe("textcat").model.from_bytes(spacy_model.to_bytes())
    for text in ["Refund my money please", "card not here", "REFUND"]:
        assert ours(text).cats == pytest.approx(spacys(text).cats, abs=1e-6)
    assert spacys("REFUND").cats != pytest.approx(spacys("refund").cats, abs=1e-6)


@pytest.mark.parametrize("feature_values", ["count", "l2"])
def test_empty_and_one_token_docs_share_a_batch_with_bigrams(feature_values: str) -> None:
    """spaCy's extract_ngrams raises IndexError on an empty doc in a batch when
    ngram_size > 1; ours scores the other docs of the batch as it does on their own.
    (What an empty doc scores is the classifier's business: spaCy's textcat gives zeros
    alone and the bias in a batch, ``textcat_kit_textcat`` zeros in both.)"""
    nlp = trained_nlp(bow_model("textcat_kit.TextCatBOW.v1", feature_values=feature_values))
    texts = ["", "card", "my card has not arrived", ""]
    batched = [doc.cats for doc in nlp.pipe(texts, batch_size=len(texts))]
    assert batched[1:3] == [nlp(text).cats for text in texts[1:3]]
    assert batched[2]["card"] > batched[2]["refund"]


def test_l2_feature_values_give_unit_length_per_doc() -> None:
    counts = np.array([1.0, 1.0, 2.0, 3.0, 5.0])
    lengths = np.array([2, 0, 3])
    scaled = scale_feature_values(counts, lengths, "l2")
    assert np.linalg.norm(scaled[:2]) == pytest.approx(1.0)
    assert np.linalg.norm(scaled[2:]) == pytest.approx(1.0)
    assert scaled[3] / scaled[2] == pytest.approx(1.5)
    assert scale_feature_values(counts, lengths, "binary").tolist() == [1.0] * 5
    assert scale_feature_values(counts, lengths, "count").tolist() == counts.tolist()


def test_l2_values_make_repetition_not_change_the_scores() -> None:
    nlp = trained_nlp(bow_model("textcat_kit.TextCatBOW.v1", ngram_size=1, feature_values="l2"))
    once, thrice = nlp("refund card").cats, nlp("refund card refund card refund card").cats
    assert once == pytest.approx(thrice, abs=1e-6)


def test_pipeline_with_the_architecture_round_trips(tmp_path: Path) -> None:
    nlp = trained_nlp(bow_model("textcat_kit.TextCatBOW.v1", feature_values="l2"))
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    for text, _ in TRAIN:
        assert loaded(text).cats == pytest.approx(nlp(text).cats, abs=0)


@pytest.mark.parametrize(
    "settings", [{"attr": "POS_TAGS"}, {"feature_values": "idf"}, {"length": 0}]
)
def test_bad_settings_are_refused_with_the_setting_named(settings: dict[str, object]) -> None:
    nlp = spacy.blank("en")
    with pytest.raises(ConfigError, match=r"\[E19[01]\]"):
        nlp.add_pipe(
            "textcat", config={"model": bow_model("textcat_kit.TextCatBOW.v1", **settings)}
        )


def test_tfidf_values_are_scikit_learns_sublinear_tfidf() -> None:
    """idf_table + scale_feature_values against TfidfVectorizer(sublinear_tf=True) on the
    same 'documents' of n-gram keys."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = [[1, 2, 2, 3], [2, 3], [3, 3, 3, 4], [1]]
    keys, idf, unseen, n_docs = idf_table(np.array(doc) for doc in docs)
    assert n_docs == 4 and unseen == pytest.approx(np.log(5) + 1)
    expected = TfidfVectorizer(analyzer=lambda doc: doc, sublinear_tf=True).fit(docs)
    vocabulary = expected.vocabulary_
    np.testing.assert_allclose(idf, [expected.idf_[vocabulary[k]] for k in keys], rtol=1e-6)
    matrix = expected.transform(docs).toarray()
    for row, doc in enumerate(docs):
        doc_keys, counts = np.unique(doc, return_counts=True)
        weights = idf_weights(doc_keys.astype(np.uint64), keys, idf, unseen)
        values = scale_feature_values(counts, np.array([len(doc_keys)]), "tfidf", weights)
        np.testing.assert_allclose(
            values, [matrix[row, vocabulary[k]] for k in doc_keys], rtol=1e-5
        )
    assert idf_weights(np.array([99], dtype=np.uint64), keys, idf, unseen)[0] == pytest.approx(
        unseen
    )


def test_tfidf_idf_is_fitted_on_all_training_docs_and_saved(tmp_path: Path) -> None:
    model = bow_model("textcat_kit.TextCatBOW.v1", feature_values="tfidf")
    nlp = trained_nlp(model, factory="textcat_kit_textcat")
    layer = next(
        n for n in nlp.get_pipe("textcat").model.walk() if n.name == "ngram_feature_values"
    )
    assert layer.attrs["idf_n_docs"] == len(TRAIN)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    loaded_layer = next(
        n for n in loaded.get_pipe("textcat").model.walk() if n.name == "ngram_feature_values"
    )
    np.testing.assert_array_equal(loaded_layer.attrs["idf"], layer.attrs["idf"])
    np.testing.assert_array_equal(loaded_layer.attrs["idf_keys"], layer.attrs["idf_keys"])
    for text in ["Refund my money please", "card not here", "unseen words only", ""]:
        assert loaded(text).cats == pytest.approx(nlp(text).cats, abs=0)
    assert nlp("where is my refund").cats["refund"] > 0.5


def test_tfidf_without_our_classifier_warns_that_idf_is_missing() -> None:
    with pytest.warns(UserWarning, match=r"\[W192\]"):
        trained_nlp(bow_model("textcat_kit.TextCatBOW.v1", feature_values="tfidf"), steps=1)


# --- the inference fast path: the same numbers as spaCy's / thinc's layers ------------------

TEXTS = ["", "x", "a b a b a", "Refund my money please", "card card card", "the " * 300]


def test_batched_ngram_counts_equal_per_doc_unique() -> None:
    from spacy.attrs import LOWER
    from thinc.api import NumpyOps

    from textcat_kit.architectures import batch_ngram_counts

    ops = NumpyOps()
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(text) for text in TEXTS + [t for t, _ in TRAIN] + [""]]
    for n in (1, 2, 3):
        per_doc_keys, per_doc_counts = [], []
        for doc in docs:
            unigrams = doc.to_array([LOWER])
            grams = [unigrams] + [ops.ngrams(k, unigrams) for k in range(2, min(n, len(doc)) + 1)]
            keys, counts = np.unique(np.concatenate(grams), return_counts=True)
            per_doc_keys.append(keys)
            per_doc_counts.append(counts)
        keys, counts, lengths = batch_ngram_counts([d.to_array(LOWER) for d in docs], n, ops)
        assert np.array_equal(keys, np.concatenate(per_doc_keys))
        assert np.array_equal(counts, np.concatenate(per_doc_counts).astype(np.float32))
        assert lengths.tolist() == [len(k) for k in per_doc_keys]


def test_murmurhash_matches_thinc_buckets() -> None:
    from murmurhash.mrmr import hash as murmur

    from textcat_kit.architectures import murmurhash3_32_uint64

    keys = np.array([0, 1, 2**32, 2**63 + 12345, 2**64 - 1, 987654321987654321], dtype=np.uint64)
    expected = {
        seed: [murmur(int(key).to_bytes(8, "little"), seed) % 2**32 for key in keys]
        for seed in (0, 1)
    }
    for seed in (0, 1):
        assert murmurhash3_32_uint64(keys, seed).tolist() == expected[seed]
    # Per-key seeds: both hash functions in one pass (what the sparse layer does).
    seeds = np.tile(np.array([0, 1], dtype=np.uint32), len(keys))
    both = murmurhash3_32_uint64(np.repeat(keys, 2), seeds).tolist()
    assert both[0::2] == expected[0] and both[1::2] == expected[1]


@pytest.mark.parametrize("feature_values", ["count", "tfidf"])
def test_inference_path_equals_thincs_layers_to_the_bit(feature_values: str) -> None:
    """predict (NumPy sparse linear) == begin_update (thinc's loop), exactly; a training
    step in between refreshes the inference copy of the weights."""
    nlp = trained_nlp(
        bow_model("textcat_kit.TextCatBOW.v1", feature_values=feature_values, length=2048),
        factory="textcat_kit_textcat",
    )
    model = nlp.get_pipe("textcat").model  # type: ignore[attr-defined]
    docs = [nlp.make_doc(text) for text in TEXTS + [t for t, _ in TRAIN]]
    for _ in range(2):
        fast = model.predict(docs)
        reference, _ = model.begin_update(docs)
        assert np.array_equal(fast, reference)
        nlp.update(
            [Example.from_dict(nlp.make_doc("card please"), {"cats": {"card": 1.0, "refund": 0.0}})]
        )
