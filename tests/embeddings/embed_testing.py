"""Synthetic intents for the sentence-embedding tests (importable, unlike conftest.py)."""

from __future__ import annotations

import random

INTENTS: dict[str, list[str]] = {
    "card_lost": ["lost my card", "card was stolen", "cannot find my card", "card missing"],
    "refund": ["want a refund", "money back please", "refund my purchase", "return payment"],
    "balance": ["what is my balance", "how much money left", "show account balance", "funds"],
}
FILLERS = ["hello", "please help", "today", "urgent", "thanks", "", "I think", "quickly"]
LABELS = sorted(INTENTS)


def make_records(n_per_label: int, seed: int) -> list[tuple[str, list[str]]]:
    """Synthetic texts: a phrase of the intent between random filler words."""
    rng = random.Random(seed)
    records = []
    for label, phrases in INTENTS.items():
        for _ in range(n_per_label):
            words = [rng.choice(FILLERS), rng.choice(phrases), rng.choice(FILLERS)]
            records.append((" ".join(w for w in words if w), [label]))
    rng.shuffle(records)
    return records
