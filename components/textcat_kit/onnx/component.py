"""``textcat_kit_onnx_textcat``: a torch-free text classifier that runs its encoder in ONNX Runtime.

It replaces the ``transformer`` + ``textcat`` (or ``textcat_multilabel``) pair of a trained
spacy-transformers pipeline (see :mod:`textcat_kit.onnx.export`) and writes the same
``doc.cats``: it cuts the same strided windows, tokenises them with the same fast
tokenizer (``tokenizers``), runs the encoder in ONNX Runtime, mean-pools wordpieces into
tokens through the same character alignment, reduces the tokens into a doc vector and
applies the trained output layer in NumPy.

Only spaCy, NumPy, SciPy, ``tokenizers`` and ``onnxruntime`` are needed at run time; the
last two are imported when the component loads its model, so that importing this module
(e.g. while spaCy scans the entry points) never fails.

One deliberate difference: a doc without tokens always gets 0.0 for every label. spaCy's
textcat gives that to an empty doc only when the whole batch is empty (``nlp("")``), and
the output layer's bias otherwise; here ``nlp(text)`` and ``nlp.pipe`` always agree.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import srsly
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.util import ensure_path, minibatch
from spacy.vocab import Vocab

from ..errors import ConfigError, Errors
from ..pipeline.fitted import ClassifierState, OwnsFittedState
from .alignment import alignment_pairs
from .encoder import OnnxEncoder
from .head import ClassifierHead
from .pooling import FloatArray, mean_pool_tokens, reduce_docs
from .tokenization import IntArray, TokenizerSettings, WordpieceTokenizer
from .windows import strided_window_bounds

FACTORY_NAME = "textcat_kit_onnx_textcat"
FORMAT_VERSION = 1

CFG_FILE = "cfg.json"
HEAD_FILE = "head.msgpack"
TOKENIZER_FILE = "tokenizer.json"
MODEL_FILE = "model.onnx"

DEFAULT_ONNX_TEXTCAT_CONFIG: dict[str, Any] = {
    "window": 128,
    "stride": 96,
    "num_threads": 0,
    "max_batch_items": 2048,
    "max_padding": 0.1,
    "threshold": 0.5,
    "positive_label": None,
    "scorer": {"@scorers": "spacy.textcat_scorer.v2"},
}


@Language.factory(
    FACTORY_NAME,
    default_config=DEFAULT_ONNX_TEXTCAT_CONFIG,
    assigns=["doc.cats"],
    default_score_weights={
        "cats_score": 1.0,
        "cats_score_desc": None,
        "cats_micro_p": None,
        "cats_micro_r": None,
        "cats_micro_f": None,
        "cats_macro_p": None,
        "cats_macro_r": None,
        "cats_macro_f": None,
        "cats_macro_auc": None,
        "cats_f_per_type": None,
    },
)
def make_onnx_textcat(
    nlp: Language,
    name: str,
    window: int,
    stride: int,
    num_threads: int,
    max_batch_items: int,
    max_padding: float,
    threshold: float,
    positive_label: str | None,
    scorer: Callable[..., dict[str, Any]] | None,
) -> OnnxTextCategorizer:
    """Create the component; its model is loaded by ``from_disk`` / ``from_bytes``.

    window / stride: the strided windows of ``spacy-transformers.strided_spans.v1`` the
        pipeline was trained with (the export copies them).
    num_threads: ONNX Runtime intra-op threads (0: all physical cores).
    max_batch_items: at most this many padded wordpieces per encoder call.
    max_padding: windows are sorted by length and batched so that padding adds at most this
        share of wordpieces to a call (0.1: 10%); padding is work the encoder does for
        nothing, and short texts of mixed lengths otherwise run slower in batches than alone.
    threshold / positive_label / scorer: as for spaCy's textcat, used by ``score``.
    """
    return OnnxTextCategorizer(
        nlp.vocab,
        name,
        window=window,
        stride=stride,
        num_threads=num_threads,
        max_batch_items=max_batch_items,
        max_padding=max_padding,
        threshold=threshold,
        positive_label=positive_label,
        scorer=scorer,
    )


class OnnxTextCategorizer(OwnsFittedState, Pipe):
    """Scores ``doc.cats`` with an ONNX encoder, a fast tokenizer and a NumPy output layer;
    once tuned, calibrates them and sets ``doc._.decided_labels`` (like our classifiers)."""

    def __init__(
        self,
        vocab: Vocab,
        name: str = "textcat",
        *,
        window: int = 128,
        stride: int = 96,
        num_threads: int = 0,
        max_batch_items: int = 2048,
        max_padding: float = 0.1,
        threshold: float = 0.5,
        positive_label: str | None = None,
        scorer: Callable[..., dict[str, Any]] | None = None,
    ) -> None:
        if min(window, stride, max_batch_items) < 1 or not max_padding >= 0:
            raise ConfigError(
                Errors.E174.format(
                    name=name,
                    window=window,
                    stride=stride,
                    max_batch_items=max_batch_items,
                    max_padding=max_padding,
                )
            )
        self.vocab = vocab
        self.name = name
        self.window = window
        self.stride = stride
        self.num_threads = num_threads
        self.max_batch_items = max_batch_items
        self.max_padding = max_padding
        self.scorer = scorer
        self.cfg: dict[str, Any] = {
            "labels": [],
            "threshold": threshold,
            "positive_label": positive_label,
        }
        self.head: ClassifierHead | None = None
        self.tokenizer: WordpieceTokenizer | None = None
        self.encoder: OnnxEncoder | None = None
        self._model_source: bytes | Path | None = None
        self.fitted = ClassifierState()

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def is_exclusive(self) -> bool:
        """Whether the labels are mutually exclusive (softmax) rather than independent."""
        if self.head is None:
            raise ConfigError(Errors.E171.format(name=self.name))
        return self.head.exclusive

    @property
    def is_loaded(self) -> bool:
        return self.head is not None and self.tokenizer is not None and self.encoder is not None

    def load_model(
        self,
        *,
        labels: Sequence[str],
        head: ClassifierHead,
        tokenizer_json: str,
        tokenizer_settings: TokenizerSettings,
        model: bytes | Path,
    ) -> None:
        """Set the fitted state: labels, output layer, tokenizer and ONNX encoder."""
        for package in ("onnxruntime", "tokenizers"):
            try:
                importlib.import_module(package)
            except ImportError as error:
                raise ConfigError(
                    Errors.E163.format(name=self.name, package=package, detail=error)
                ) from error
        if head.n_labels != len(labels):
            raise ConfigError(
                Errors.E176.format(
                    name=self.name,
                    n_rows=head.n_labels,
                    n_labels=len(labels),
                    labels=list(labels),
                )
            )
        self.cfg["labels"] = list(labels)
        self.head = head
        self.tokenizer = WordpieceTokenizer(tokenizer_json, tokenizer_settings)
        model_input: bytes | str = str(model) if isinstance(model, Path) else model
        self.encoder = OnnxEncoder(
            model_input,
            num_threads=self.num_threads,
            max_batch_items=self.max_batch_items,
            max_padding=self.max_padding,
        )
        self._model_source = model

    def __call__(self, doc: Doc) -> Doc:
        error_handler = self.get_error_handler()
        try:
            self.set_annotations([doc], self.predict([doc]))
            return doc
        except Exception as error:  # handed to spaCy's error handler, which re-raises
            error_handler(self.name, self, [doc], error)
            return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        error_handler = self.get_error_handler()
        for docs in minibatch(stream, size=batch_size):
            try:
                self.set_annotations(docs, self.predict(docs))
                yield from docs
            except Exception as error:
                error_handler(self.name, self, docs, error)

    def predict(self, docs: Sequence[Doc]) -> FloatArray:
        """Scores ``(len(docs), len(labels))``; docs without tokens score 0.0 everywhere."""
        if self.head is None or self.tokenizer is None or self.encoder is None:
            raise ConfigError(Errors.E171.format(name=self.name))
        docs = list(docs)
        scores = np.zeros((len(docs), self.head.n_labels), dtype=np.float32)
        rows = [row for row, doc in enumerate(docs) if len(doc) > 0]
        if not rows:
            return scores
        batch = plan_windows([docs[row] for row in rows], self.window, self.stride)
        windows = self.tokenizer.encode(batch.texts)
        hidden = self.encoder.encode(windows, self.tokenizer.settings)
        tokens, pieces = alignment_pairs(
            batch.token_starts,
            batch.token_lengths,
            batch.token_ids,
            batch.window_n_tokens,
            batch.window_text_lengths,
            np.concatenate([window.offsets for window in windows]),
            np.array([len(window) for window in windows], dtype=np.int64),
        )
        token_vectors = mean_pool_tokens(hidden, tokens, pieces, int(batch.doc_lengths.sum()))
        doc_vectors = reduce_docs(token_vectors, batch.doc_lengths, self.head.reductions)
        scores[rows] = self.head.predict(doc_vectors)
        return scores

    def set_annotations(self, docs: Iterable[Doc], scores: FloatArray) -> None:
        """Write a Python float for every label into ``doc.cats``, as spaCy's textcat does;
        once tuned, calibrated, with ``doc._.decided_labels``
        (:class:`~textcat_kit.pipeline.fitted.ClassifierState`)."""
        self._annotate(docs, np.asarray(scores, dtype=np.float64))

    def initialize(
        self, get_examples: Callable[[], Iterable[Example]], *, nlp: Language | None = None
    ) -> None:
        """Nothing to initialise: the state comes from the export. Fails if it is missing."""
        if not self.is_loaded:
            raise ConfigError(Errors.E171.format(name=self.name))

    def score(self, examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
        """Score ``doc.cats`` with the configured scorer (spaCy's textcat scorers)."""
        validate_examples(examples, "OnnxTextCategorizer.score")
        if self.scorer is None:
            return {}
        settings: dict[str, Any] = {
            "labels": self.labels,
            "threshold": self.cfg["threshold"],
            "positive_label": self.cfg["positive_label"],
        }
        settings.update(kwargs)
        return self.scorer(examples, **settings)

    # Serialisation: JSON + msgpack + the tokenizer's JSON + the ONNX file; never pickle.

    def _state(self) -> tuple[dict[str, Any], ClassifierHead, WordpieceTokenizer]:
        if self.head is None or self.tokenizer is None or self._model_source is None:
            raise ConfigError(Errors.E171.format(name=self.name))
        cfg = dict(self.cfg)
        cfg["tokenizer"] = self.tokenizer.settings.to_dict()
        cfg["format_version"] = FORMAT_VERSION
        return cfg, self.head, self.tokenizer

    def _model_bytes(self) -> bytes:
        """The ONNX model; read from the file it was loaded from, if it came from disk."""
        source = self._model_source
        if isinstance(source, Path):
            if not source.exists():
                raise ConfigError(
                    Errors.E172.format(path=source.parent, name=self.name, detail=MODEL_FILE)
                )
            return source.read_bytes()
        if source is None:
            raise ConfigError(Errors.E171.format(name=self.name))
        return source

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = tuple()) -> None:
        cfg, head, tokenizer = self._state()
        directory = ensure_path(path)
        directory.mkdir(parents=True, exist_ok=True)
        srsly.write_json(directory / CFG_FILE, cfg)
        srsly.write_msgpack(directory / HEAD_FILE, head.to_dict())
        (directory / TOKENIZER_FILE).write_text(tokenizer.tokenizer_json, encoding="utf8")
        model_path = directory / MODEL_FILE
        loaded_from_here = (
            isinstance(self._model_source, Path)
            and model_path.exists()
            and model_path.resolve() == self._model_source.resolve()
        )
        if not loaded_from_here:
            model_path.write_bytes(self._model_bytes())
        self.fitted.to_disk(directory, self.labels)

    def from_disk(
        self, path: str | Path, *, exclude: Iterable[str] = tuple()
    ) -> OnnxTextCategorizer:
        directory = ensure_path(path)
        for file_name in (CFG_FILE, HEAD_FILE, TOKENIZER_FILE, MODEL_FILE):
            if not (directory / file_name).exists():
                raise ConfigError(
                    Errors.E172.format(path=directory, name=self.name, detail=file_name)
                )
        cfg = srsly.read_json(directory / CFG_FILE)
        self._apply_cfg(cfg)
        self.load_model(
            labels=cfg["labels"],
            head=ClassifierHead.from_dict(srsly.read_msgpack(directory / HEAD_FILE)),
            tokenizer_json=(directory / TOKENIZER_FILE).read_text(encoding="utf8"),
            tokenizer_settings=TokenizerSettings.from_dict(cfg["tokenizer"]),
            model=(directory / MODEL_FILE).resolve(),
        )
        self.fitted.from_disk(directory, self.labels)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        cfg, head, tokenizer = self._state()
        return srsly.msgpack_dumps(
            {
                "cfg": cfg,
                "head": head.to_dict(),
                "tokenizer": tokenizer.tokenizer_json,
                "model": self._model_bytes(),
                "fitted": self.fitted.to_bytes_dict(self.labels),
            }
        )

    def from_bytes(
        self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()
    ) -> OnnxTextCategorizer:
        msg = srsly.msgpack_loads(bytes_data)
        self._apply_cfg(msg["cfg"])
        self.load_model(
            labels=msg["cfg"]["labels"],
            head=ClassifierHead.from_dict(msg["head"]),
            tokenizer_json=msg["tokenizer"],
            tokenizer_settings=TokenizerSettings.from_dict(msg["cfg"]["tokenizer"]),
            model=msg["model"],
        )
        self.fitted.from_bytes_dict(msg.get("fitted", {}), self.labels)
        return self

    def _apply_cfg(self, cfg: dict[str, Any]) -> None:
        if cfg.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                Errors.E177.format(
                    name=self.name, found=cfg.get("format_version"), expected=FORMAT_VERSION
                )
            )
        for key in ("threshold", "positive_label"):
            if key in cfg:
                self.cfg[key] = cfg[key]


@dataclass
class WindowBatch:
    """The strided windows of a batch of non-empty docs, flattened for the alignment.

    texts: the text of every window (docs in order, windows in order).
    token_starts / token_lengths / token_ids: for every token of every window, its
        character offset in the window's text, its length, and its row among all tokens
        of the batch (a token in two overlapping windows appears twice with the same row).
    window_n_tokens / window_text_lengths: tokens and characters of each window.
    doc_lengths: tokens of each doc.
    """

    texts: list[str]
    token_starts: IntArray
    token_lengths: IntArray
    token_ids: IntArray
    window_n_tokens: IntArray
    window_text_lengths: IntArray
    doc_lengths: IntArray


def plan_windows(docs: Sequence[Doc], window: int, stride: int) -> WindowBatch:
    """Cut each doc into the windows of ``spacy-transformers.strided_spans.v1``."""
    texts: list[str] = []
    starts: list[IntArray] = []
    lengths: list[IntArray] = []
    ids: list[IntArray] = []
    n_tokens: list[int] = []
    n_chars: list[int] = []
    doc_lengths = np.array([len(doc) for doc in docs], dtype=np.int64)
    doc_offsets = np.cumsum(doc_lengths) - doc_lengths
    for doc, doc_offset in zip(docs, doc_offsets.tolist(), strict=True):
        positions = doc.to_array(["IDX", "LENGTH"]).astype(np.int64).reshape(-1, 2)
        token_starts, token_lengths = positions[:, 0], positions[:, 1]
        doc_text = doc.text
        for begin, end in strided_window_bounds(len(doc), window, stride):
            char_begin = int(token_starts[begin])
            char_end = int(token_starts[end - 1] + token_lengths[end - 1])
            texts.append(doc_text[char_begin:char_end])
            starts.append(token_starts[begin:end] - char_begin)
            lengths.append(token_lengths[begin:end])
            ids.append(np.arange(doc_offset + begin, doc_offset + end, dtype=np.int64))
            n_tokens.append(end - begin)
            n_chars.append(char_end - char_begin)
    return WindowBatch(
        texts=texts,
        token_starts=np.concatenate(starts),
        token_lengths=np.concatenate(lengths),
        token_ids=np.concatenate(ids),
        window_n_tokens=np.array(n_tokens, dtype=np.int64),
        window_text_lengths=np.array(n_chars, dtype=np.int64),
        doc_lengths=doc_lengths,
    )
