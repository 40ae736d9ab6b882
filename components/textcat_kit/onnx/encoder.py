"""The transformer encoder in ONNX Runtime: padded batches in, per-window vectors out.

The ONNX graph takes ``input_ids``, ``attention_mask`` (and ``token_type_ids`` for BERT-like
models) of shape ``(batch, sequence)`` as int64 and returns ``last_hidden_state``
``(batch, sequence, width)``. Padding positions are masked out of the attention, so a
window's vectors do not depend on how it is batched; we therefore sort windows by length
and batch similar lengths together, which wastes less work on padding than the single
padded batch spacy-transformers builds. The vectors of all windows come back as one array,
without the padding, in the order of the windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .tokenization import EncodedWindow, TokenizerSettings

FloatArray = npt.NDArray[np.float32]

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
TOKEN_TYPE_IDS = "token_type_ids"
LAST_HIDDEN_STATE = "last_hidden_state"


class OnnxEncoder:
    """An ONNX Runtime session over an exported transformer encoder (CPU).

    model: the ONNX model (bytes or a file path).
    num_threads: intra-op threads of ONNX Runtime; 0 lets it use all physical cores.
    max_batch_items: upper bound on ``batch * padded_length`` wordpieces per run. It bounds
        the memory of one call, and batches of a few thousand wordpieces keep the
        activations in cache (on a 6x768 model, int8 runs ~25% faster per wordpiece at
        2,000 wordpieces per call than at 4,000).
    max_padding: a call's padded wordpieces exceed its real ones by at most this share
        (windows are sorted by length first); see ``OnnxTextCategorizer``.
    """

    def __init__(
        self,
        model: bytes | str,
        *,
        num_threads: int = 0,
        max_batch_items: int = 2048,
        max_padding: float = 0.1,
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {item.name for item in self.session.get_inputs()}
        self.max_batch_items = max_batch_items
        self.max_padding = max_padding

    def run_batch(
        self, windows: Sequence[EncodedWindow], settings: TokenizerSettings
    ) -> FloatArray:
        """Pad ``windows`` on the right into one batch and return its last hidden state."""
        length = max(len(window) for window in windows)
        input_ids = np.full((len(windows), length), settings.pad_id, dtype=np.int64)
        type_ids = np.full((len(windows), length), settings.pad_type_id, dtype=np.int64)
        mask = np.zeros((len(windows), length), dtype=np.int64)
        for row, window in enumerate(windows):
            input_ids[row, : len(window)] = window.input_ids
            type_ids[row, : len(window)] = window.type_ids
            mask[row, : len(window)] = 1
        feeds = {INPUT_IDS: input_ids, ATTENTION_MASK: mask}
        if TOKEN_TYPE_IDS in self.input_names:
            feeds[TOKEN_TYPE_IDS] = type_ids
        (hidden,) = self.session.run([LAST_HIDDEN_STATE], feeds)
        return np.asarray(hidden, dtype=np.float32)

    def encode(self, windows: Sequence[EncodedWindow], settings: TokenizerSettings) -> FloatArray:
        """Vectors of all wordpieces, ``(sum of window lengths, width)``, windows in order."""
        lengths = np.array([len(window) for window in windows], dtype=np.int64)
        row_starts = np.cumsum(lengths) - lengths
        output: FloatArray | None = None
        order = np.argsort(lengths, kind="stable")
        batch: list[int] = []
        batch_tokens = 0
        for index in order.tolist():
            # Ascending lengths: the new window is the longest of the candidate batch, and
            # every window is padded to it.
            padded = (len(batch) + 1) * int(lengths[index])
            too_big = padded > self.max_batch_items
            too_padded = padded > (batch_tokens + int(lengths[index])) * (1.0 + self.max_padding)
            if batch and (too_big or too_padded):
                output = self._run_into(output, batch, windows, settings, row_starts, lengths)
                batch, batch_tokens = [], 0
            batch.append(index)
            batch_tokens += int(lengths[index])
        if batch:
            output = self._run_into(output, batch, windows, settings, row_starts, lengths)
        assert output is not None, "encode needs at least one window"
        return output

    def _run_into(
        self,
        output: FloatArray | None,
        batch: list[int],
        windows: Sequence[EncodedWindow],
        settings: TokenizerSettings,
        row_starts: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int64],
    ) -> FloatArray:
        hidden = self.run_batch([windows[i] for i in batch], settings)
        if output is None:
            output = np.empty((int(lengths.sum()), hidden.shape[-1]), dtype=np.float32)
        for row, index in enumerate(batch):
            start, length = int(row_starts[index]), int(lengths[index])
            output[start : start + length] = hidden[row, :length]
        return output
