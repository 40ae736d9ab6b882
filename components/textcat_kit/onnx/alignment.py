"""Which wordpieces belong to which spaCy token: a NumPy port of spacy-transformers' alignment.

With a fast tokenizer, spacy-transformers aligns by character offsets
(``spacy_transformers.align.get_alignment_via_offset_mapping``): every character of a
window's text is mapped to a token, a token also owns the one character right after it (its
trailing space, or the first character of the next token, which that token then takes
back), and a wordpiece belongs to every token that owns one of its characters. Special
tokens and padding have empty offsets and belong to no token. Reproducing this exactly
matters: a token's vector is the mean of its wordpieces' vectors, so a different
alignment gives different scores.

All functions here are pure NumPy; offsets are relative to the window's text.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def char_to_token_map(
    token_starts: IntArray, token_lengths: IntArray, text_length: int
) -> IntArray:
    """Token index of every character of a window's text (and of one position past its end).

    token_starts / token_lengths: character offset (relative to the window) and length of
    each spaCy token of the window. Characters owned by no token (runs of spaces that are
    not a token) map to -1. The array has ``text_length + 1`` entries because the last
    token also owns the position right after the text, as in spacy-transformers.
    """
    char_map = np.full(text_length + 1, -1, dtype=np.int64)
    n_tokens = len(token_starts)
    if n_tokens == 0:
        return char_map
    token_ids = np.arange(n_tokens, dtype=np.int64)
    # The trailing character goes first: when a token is not followed by a space, that
    # character is the next token's first one and the next token must keep it.
    char_map[token_starts + token_lengths] = token_ids
    total = int(token_lengths.sum())
    run_starts = np.repeat(np.cumsum(token_lengths) - token_lengths, token_lengths)
    offsets_in_token = np.arange(total, dtype=np.int64) - run_starts
    own_chars = offsets_in_token + np.repeat(token_starts, token_lengths)
    char_map[own_chars] = np.repeat(token_ids, token_lengths)
    return char_map


def wordpiece_token_ranges(char_map: IntArray, offsets: IntArray) -> tuple[IntArray, IntArray]:
    """First and last token index that each wordpiece touches (-1, -2 when none).

    offsets: ``(n_wordpieces, 2)`` character ``[start, end)`` of each wordpiece. Because
    token indices grow along the text (ignoring -1 gaps) and tokens are never empty, the
    tokens a wordpiece touches are the contiguous range between the first and the last
    owned character inside its offsets.
    """
    n_chars = len(char_map)
    n_pieces = len(offsets)
    first = np.full(n_pieces, -1, dtype=np.int64)
    last = np.full(n_pieces, -2, dtype=np.int64)
    if n_pieces == 0:
        return first, last
    positions = np.arange(n_chars, dtype=np.int64)
    owned = char_map >= 0
    next_owned = np.minimum.accumulate(np.where(owned, positions, n_chars)[::-1])[::-1]
    prev_owned = np.maximum.accumulate(np.where(owned, positions, -1))
    starts = np.clip(offsets[:, 0], 0, n_chars)
    ends = np.clip(offsets[:, 1], 0, n_chars)
    nonempty = ends > starts
    starts_in = np.minimum(starts, n_chars - 1)
    ends_in = np.maximum(ends - 1, 0)
    first_char = next_owned[starts_in]
    last_char = prev_owned[ends_in]
    hit = nonempty & (first_char <= ends - 1) & (first_char < n_chars)
    first[hit] = char_map[first_char[hit]]
    last[hit] = char_map[last_char[hit]]
    return first, last


def window_alignment_pairs(
    token_starts: IntArray, token_lengths: IntArray, text_length: int, offsets: IntArray
) -> tuple[IntArray, IntArray]:
    """All ``(token, wordpiece)`` pairs of one window, both indices relative to the window."""
    char_map = char_to_token_map(token_starts, token_lengths, text_length)
    first, last = wordpiece_token_ranges(char_map, offsets)
    counts = np.maximum(last - first + 1, 0)
    pieces = np.repeat(np.arange(len(offsets), dtype=np.int64), counts)
    run_starts = np.repeat(np.cumsum(counts) - counts, counts)
    tokens = np.repeat(first, counts) + np.arange(int(counts.sum()), dtype=np.int64) - run_starts
    return tokens, pieces
