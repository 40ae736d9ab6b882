"""Texts, labels and helpers shared by the ONNX tests (imported by ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
EXCLUSIVE_CONFIG = REPO_ROOT / "configs" / "textcat_transformer.cfg"
MULTILABEL_CONFIG = REPO_ROOT / "configs" / "textcat_multilabel_transformer.cfg"

LABELS = ["card", "transfer", "topup"]

TRAIN = [
    ("My card was declined at the shop.", ["card"]),
    ("The ATM swallowed my card last night.", ["card"]),
    ("Why is my new card not working?", ["card"]),
    ("Can I order a replacement card?", ["card"]),
    ("My transfer has not arrived yet.", ["transfer"]),
    ("How long does a bank transfer take?", ["transfer"]),
    ("I sent money to the wrong account by transfer.", ["transfer", "card"]),
    ("The transfer to my friend failed twice.", ["transfer"]),
    ("How do I top up my balance?", ["topup"]),
    ("My top-up by card is still pending.", ["topup", "card"]),
    ("Top up with a bank transfer, is that possible?", ["topup", "transfer"]),
    ("The top up failed and money is gone.", ["topup"]),
]

LONG_TEXT = " ".join(
    [
        "I tried to top up my account with my debit card three times yesterday evening, "
        "but every attempt failed, and then the transfer I had scheduled bounced as well."
    ]
    * 14
)
"""About 400 spaCy tokens: several windows at the default 128/96 and dozens at 16/12."""

PARITY_TEXTS = [
    "",
    "card",
    "Transfer",
    "  leading and trailing spaces  ",
    "double  spaces\tand a tab\nand a newline",
    "Où est ma carte? Ça fait 2 semaines… 🤔 £20 € ©",
    "don't can't won't, (really)? [yes] {no} #hash @at e-mail@example.com",
    "My card was declined at the shop, please help me with the top up.",
    LONG_TEXT,
    LONG_TEXT[: len(LONG_TEXT) // 3] + " 🤗 " + LONG_TEXT[: len(LONG_TEXT) // 2],
    "\n",
]
"""Texts of the parity tests: empty, one word, whitespace, unicode, and longer than a window."""


def tokenizer_texts() -> list[str]:
    return [text for text, _ in TRAIN] + PARITY_TEXTS[1:]


def train_pipeline(
    config: Path, transformer: Path, out: Path, overrides: dict[str, object] | None = None
) -> Path:
    """Fit the config's pipeline on :data:`TRAIN` for a few steps and save it to ``out``."""
    from textcat_kit.testing.pipelines import build_transformer_textcat

    exclusive = config == EXCLUSIVE_CONFIG
    data = [(text, labels[:1] if exclusive else labels) for text, labels in TRAIN]
    nlp = build_transformer_textcat(
        config, transformer, data, labels=LABELS, overrides=overrides, train_steps=6
    )
    nlp.to_disk(out)
    return out


SMALL_WINDOWS = {
    "components.transformer.model.get_spans.window": 16,
    "components.transformer.model.get_spans.stride": 12,
}
