"""The NumPy re-implementations against the spacy-transformers / thinc code they replace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spacy
from onnx_testing import PARITY_TEXTS
from spacy_transformers.align import get_alignment_via_offset_mapping
from spacy_transformers.span_getters import get_strided_spans
from thinc.api import NumpyOps, reduce_first, reduce_last, reduce_max, reduce_mean
from thinc.types import Ragged

from textcat_kit.onnx.alignment import alignment_pairs
from textcat_kit.onnx.component import plan_windows
from textcat_kit.onnx.head import ClassifierHead, array_from_msg, array_to_msg
from textcat_kit.onnx.pooling import mean_pool_tokens, reduce_docs, sigmoid, softmax
from textcat_kit.onnx.windows import strided_window_bounds

ALIGNMENT_TEXTS = [text for text in PARITY_TEXTS if text] + [
    "Hello  world, é🤗 x",
    "a" * 40 + " unbroken" + "b" * 30,
    "tabs\t\tand\n\nnewlines   and   spaces",
    "#hash ##double ### [CLS] <s> [UNK] [PAD] </s>",
]


@pytest.mark.parametrize(
    ("window", "stride"), [(128, 96), (16, 12), (8, 8), (4, 6), (1, 1), (5, 3)]
)
def test_strided_windows_match_spacy_transformers(window: int, stride: int) -> None:
    nlp = spacy.blank("en")
    for n_tokens in range(0, 60):
        doc = nlp.make_doc(" ".join(["w"] * n_tokens))
        expected = [(span.start, span.end) for span in get_strided_spans([doc], window, stride)[0]]
        assert strided_window_bounds(n_tokens, window, stride) == expected, n_tokens


@pytest.mark.parametrize("model_fixture", ["tiny_bert", "tiny_roberta"])
@pytest.mark.parametrize(("window", "stride"), [(16, 12), (128, 96), (3, 2)])
def test_alignment_matches_spacy_transformers(
    model_fixture: str, window: int, stride: int, request: pytest.FixtureRequest
) -> None:
    from transformers import AutoTokenizer

    from textcat_kit.onnx.tokenization import TokenizerSettings, WordpieceTokenizer

    model_dir: Path = request.getfixturevalue(model_fixture)
    hf_tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(text) for text in ALIGNMENT_TEXTS]
    flat_spans = [span for spans in get_strided_spans(docs, window, stride) for span in spans]
    encoded = hf_tokenizer(
        [span.text for span in flat_spans],
        add_special_tokens=True,
        return_offsets_mapping=True,
        padding="longest",
        return_tensors="np",
    )
    expected = get_alignment_via_offset_mapping(flat_spans, encoded["offset_mapping"])
    padded = encoded["input_ids"].shape[1]

    settings = TokenizerSettings(max_length=None, pad_id=0, pad_type_id=0, use_type_ids=False)
    ours = WordpieceTokenizer(hf_tokenizer.backend_tokenizer.to_str(), settings)
    batch = plan_windows(docs, window, stride)
    assert batch.texts == [span.text for span in flat_spans]
    windows = ours.encode(batch.texts)
    for window_, row in zip(windows, encoded["input_ids"], strict=True):
        assert window_.input_ids.tolist() == row[: len(window_)].tolist()
    tokens, pieces = alignment_pairs(
        batch.token_starts,
        batch.token_lengths,
        batch.token_ids,
        batch.window_n_tokens,
        batch.window_text_lengths,
        np.concatenate([w.offsets for w in windows]),
        np.array([len(w) for w in windows]),
    )
    # spacy-transformers indexes the padded batch; map our unpadded indices onto it.
    lengths = np.array([len(w) for w in windows])
    window_of_piece = np.repeat(np.arange(len(windows)), lengths)[pieces]
    position = pieces - (np.cumsum(lengths) - lengths)[window_of_piece]
    padded_pieces = window_of_piece * padded + position
    ours_by_token: list[list[int]] = [[] for _ in range(len(expected.lengths))]
    for token, piece in zip(tokens.tolist(), padded_pieces.tolist(), strict=True):
        ours_by_token[token].append(piece)
    starts = np.cumsum(expected.lengths) - expected.lengths
    flat_expected = np.asarray(expected.dataXd).ravel()
    assert len(tokens) == len(flat_expected)
    for token, (start, length) in enumerate(zip(starts, expected.lengths, strict=True)):
        assert sorted(ours_by_token[token]) == flat_expected[start : start + length].tolist()


def test_alignment_of_a_glued_token_and_trailing_space() -> None:
    # "ab" + "c" glued ("abc" with tokens [ab][c]) and a trailing space after "c".
    tokens, pieces = alignment_pairs(
        token_starts=np.array([0, 2, 4]),
        token_lengths=np.array([2, 1, 1]),
        token_ids=np.array([0, 1, 2]),
        window_n_tokens=np.array([3]),
        window_text_lengths=np.array([5]),
        piece_offsets=np.array([[0, 0], [0, 3], [3, 4], [4, 5], [0, 0]]),
        window_n_pieces=np.array([5]),
    )
    # piece 1 covers "abc" (tokens 0, 1); piece 2 is the space owned by token 1; 3 is "d".
    assert sorted(zip(tokens.tolist(), pieces.tolist(), strict=True)) == [
        (0, 1),
        (1, 1),
        (1, 2),
        (2, 3),
    ]


def test_mean_pool_tokens_matches_thinc_reduce_mean() -> None:
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(7, 5)).astype(np.float32)
    tokens = np.array([0, 0, 2, 2, 2, 3])
    pieces = np.array([1, 2, 2, 3, 6, 0])
    ragged = Ragged(hidden[pieces], np.array([2, 0, 3, 1], dtype="i"))
    expected = reduce_mean().predict(ragged)
    got = mean_pool_tokens(hidden, tokens, pieces, n_tokens=4)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got[1].tolist() == [0.0] * 5


@pytest.mark.parametrize(
    "reductions", [("mean",), ("first", "last"), ("max", "mean"), ("first", "last", "max", "mean")]
)
def test_reduce_docs_matches_thinc(reductions: tuple[str, ...]) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(9, 4)).astype(np.float32)
    lengths = np.array([1, 5, 3])
    layers = {"first": reduce_first, "last": reduce_last, "max": reduce_max, "mean": reduce_mean}
    ragged = Ragged(vectors, lengths.astype("i"))
    expected = np.concatenate([layers[r]().predict(ragged) for r in reductions], axis=1)
    np.testing.assert_allclose(reduce_docs(vectors, lengths, reductions), expected, atol=1e-6)
    with pytest.raises(ValueError, match="at least one token"):
        reduce_docs(vectors, np.array([0, 9]), reductions)


def test_softmax_and_sigmoid_match_thinc_without_overflow_warnings() -> None:
    ops = NumpyOps()
    logits = np.array([[0.0, 1.0, -2.0], [300.0, -300.0, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(softmax(logits), ops.softmax(logits), atol=1e-7)
    with np.errstate(over="raise"):
        got = sigmoid(logits)
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-logits.astype(np.float64))), atol=1e-7)


def test_classifier_head_round_trips_bit_exact() -> None:
    rng = np.random.default_rng(2)
    head = ClassifierHead(
        exclusive=False,
        reductions=("max", "mean"),
        weights=rng.normal(size=(3, 8)).astype(np.float32),
        bias=rng.normal(size=3).astype(np.float32),
    )
    import srsly

    copy = ClassifierHead.from_dict(srsly.msgpack_loads(srsly.msgpack_dumps(head.to_dict())))
    assert copy.weights.tobytes() == head.weights.tobytes()
    assert copy.bias.tobytes() == head.bias.tobytes()
    assert (copy.exclusive, copy.reductions) == (False, ("max", "mean"))
    vectors = rng.normal(size=(2, 8)).astype(np.float32)
    np.testing.assert_array_equal(copy.predict(vectors), head.predict(vectors))
    np.testing.assert_array_equal(array_from_msg(array_to_msg(head.bias)), head.bias)


def test_classifier_head_rejects_inconsistent_state() -> None:
    with pytest.raises(ValueError, match="subsequence"):
        ClassifierHead(True, ("mean", "max"), np.zeros((2, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="linear layer"):
        ClassifierHead(True, ("mean",), np.zeros((2, 4)), np.zeros(3))
