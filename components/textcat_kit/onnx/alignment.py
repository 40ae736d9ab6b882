"""Which wordpieces belong to which spaCy token: a NumPy port of spacy-transformers' alignment.

With a fast tokenizer, spacy-transformers aligns by character offsets
(``spacy_transformers.align.get_alignment_via_offset_mapping``): every character of a
window's text is mapped to a token, a token also owns the one character right after it (its
trailing space, or the first character of the next token, which that token then takes
back), and a wordpiece belongs to every token that owns one of its characters. Special
tokens and padding have empty offsets and belong to no token. Reproducing this exactly
matters: a token's vector is the mean of its wordpieces' vectors, so a different
alignment gives different scores.

The whole batch is aligned at once: each window gets its own slot of ``text_length + 1``
positions in one character map, so a batch costs a handful of NumPy calls instead of a
Python loop over windows or characters.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def _ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without a loop."""
    total = int(lengths.sum())
    run_starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total, dtype=np.int64) - run_starts + np.repeat(starts, lengths)


def alignment_pairs(
    token_starts: IntArray,
    token_lengths: IntArray,
    token_ids: IntArray,
    window_n_tokens: IntArray,
    window_text_lengths: IntArray,
    piece_offsets: IntArray,
    window_n_pieces: IntArray,
) -> tuple[IntArray, IntArray]:
    """All ``(token id, wordpiece index)`` pairs of a batch of windows.

    token_starts / token_lengths: character offset (relative to its window's text) and
        length of every token of every window, windows one after the other.
    token_ids: the id reported for each of those tokens (e.g. its row in the batch); within
        a window the ids must be consecutive and increase along the text.
    window_n_tokens / window_text_lengths: tokens and characters of each window.
    piece_offsets: ``(n_pieces, 2)`` character ``[start, end)`` of every wordpiece,
        relative to its window's text, windows one after the other.
    window_n_pieces: wordpieces of each window.

    Returns parallel arrays: the token id and the batch-wide wordpiece index of each pair,
    each pair once.
    """
    slots = window_text_lengths + 1
    slot_starts = np.cumsum(slots) - slots
    n_chars = int(slots.sum())
    char_map = np.full(n_chars, -1, dtype=np.int64)
    starts = token_starts + np.repeat(slot_starts, window_n_tokens)
    # The trailing character goes first: when a token is not followed by a space, that
    # character is the next token's first one and the next token must keep it.
    char_map[starts + token_lengths] = token_ids
    char_map[_ranges(starts, token_lengths)] = np.repeat(token_ids, token_lengths)

    n_pieces = len(piece_offsets)
    if n_pieces == 0 or n_chars == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    piece_slot_starts = np.repeat(slot_starts, window_n_pieces)
    piece_slots = np.repeat(slots, window_n_pieces)
    begins = np.clip(piece_offsets[:, 0], 0, piece_slots) + piece_slot_starts
    ends = np.clip(piece_offsets[:, 1], 0, piece_slots) + piece_slot_starts
    positions = np.arange(n_chars, dtype=np.int64)
    owned = char_map >= 0
    next_owned = np.minimum.accumulate(np.where(owned, positions, n_chars)[::-1])[::-1]
    prev_owned = np.maximum.accumulate(np.where(owned, positions, -1))
    first_char = next_owned[np.minimum(begins, n_chars - 1)]
    last_char = prev_owned[np.clip(ends - 1, 0, n_chars - 1)]
    # Token ids grow along a window's text and tokens are never empty, so the tokens a
    # wordpiece touches are those between its first and last owned character.
    hit = (ends > begins) & (first_char < ends)
    first = np.where(hit, char_map[np.minimum(first_char, n_chars - 1)], 0)
    last = np.where(hit, char_map[np.maximum(last_char, 0)], -1)
    counts = np.maximum(last - first + 1, 0)
    pieces = np.repeat(np.arange(n_pieces, dtype=np.int64), counts)
    tokens = _ranges(first, counts)
    return tokens, pieces
