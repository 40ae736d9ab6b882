"""Strided windows over a doc's tokens, as ``spacy-transformers.strided_spans.v1`` cuts them.

The encoder sees a long doc as overlapping windows of ``window`` spaCy tokens that start
every ``stride`` tokens. The exported component must cut exactly the same windows as the
trained pipeline, or the wordpiece vectors (and so the scores) change; this is a plain
port of ``spacy_transformers.span_getters.get_strided_spans`` on token counts.
"""

from __future__ import annotations


def strided_window_bounds(n_tokens: int, window: int, stride: int) -> list[tuple[int, int]]:
    """``(start, end)`` token offsets of the windows over a doc of ``n_tokens`` tokens.

    Same loop as spacy-transformers: up to ``n_tokens // stride`` windows, stopping at the
    first window that reaches the end; if none did, one last window from the next start to
    the end. A doc shorter than ``stride`` is a single window; an empty doc has none.
    """
    bounds: list[tuple[int, int]] = []
    start = 0
    for _ in range(n_tokens // stride):
        bounds.append((start, min(start + window, n_tokens)))
        if start + window >= n_tokens:
            break
        start += stride
    else:
        if start < n_tokens:
            bounds.append((start, n_tokens))
    return bounds
