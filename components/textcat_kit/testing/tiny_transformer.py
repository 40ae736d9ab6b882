"""Build a small, local Hugging Face model directory from scratch (no hub, no network).

Tests and benchmarks need a transformer that spacy-transformers can load exactly as it
loads a hub model: ``AutoTokenizer.from_pretrained(path)`` must give a fast tokenizer
(``tokenizer.json``) and ``AutoModel.from_pretrained(path)`` a BERT or RoBERTa encoder.
We train a WordPiece (BERT) or byte-level BPE (RoBERTa) vocabulary on the given texts with
the ``tokenizers`` library and save a randomly initialised encoder with
``save_pretrained``. Random weights are fine: speed does not depend on the values, and
parity tests only need the exported model to compute the same function as the original.

Needs the ``transformers`` extra (torch + transformers); imported lazily so that importing
this module is cheap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from ..errors import Errors as OnnxErrors

Architecture = Literal["bert", "roberta"]

TINY_SIZE = "2x64"
"""Layers x hidden width of the default test model: a few hundred kB, milliseconds per batch."""

_SIZE_PATTERN = re.compile(r"^(\d+)x(\d+)$")

BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


@dataclass(frozen=True)
class EncoderSize:
    """The shape of a BERT-style encoder."""

    n_layers: int
    hidden_size: int
    n_heads: int
    intermediate_size: int


def parse_size(size: str) -> EncoderSize:
    """Turn ``"tiny"`` or ``"<layers>x<hidden>"`` (e.g. ``"6x768"``) into an :class:`EncoderSize`.

    Attention heads are 64 wide as in BERT (at least one head) and the feed-forward layer
    is four times the hidden width, so ``"6x768"`` has the shape of DistilBERT / MiniLM-L6
    at full width, and ``"12x768"`` that of ``bert-base``.
    """
    spec = TINY_SIZE if size == "tiny" else size
    match = _SIZE_PATTERN.match(spec)
    if match is None:
        raise ConfigError(OnnxErrors.E160.format(size=size))
    n_layers, hidden_size = int(match.group(1)), int(match.group(2))
    n_heads = max(1, hidden_size // 64)
    if n_layers < 1 or hidden_size < 1 or hidden_size % n_heads:
        raise ConfigError(OnnxErrors.E160.format(size=size))
    return EncoderSize(n_layers, hidden_size, n_heads, 4 * hidden_size)


def build_tiny_transformer(
    output_dir: Path,
    texts: Iterable[str],
    *,
    size: str = "tiny",
    architecture: Architecture = "bert",
    vocab_size: int = 2000,
    max_length: int = 512,
    seed: int = 0,
) -> Path:
    """Write a Hugging Face model directory to ``output_dir`` and return it.

    output_dir: where ``config.json``, the weights and the tokenizer files go.
    texts: the texts the tokenizer's vocabulary is trained on (a few hundred suffice).
    size: ``"tiny"`` (2 layers x 64) or ``"<layers>x<hidden>"`` such as ``"6x768"``.
    architecture: ``"bert"`` (lower-casing WordPiece, token type ids) or ``"roberta"``
        (byte-level BPE, no token type ids).
    vocab_size: upper bound of the trained vocabulary size.
    max_length: the tokenizer's ``model_max_length`` (wordpieces per window, specials
        included); spacy-transformers truncates longer windows to it.
    seed: seeds the random initialisation of the weights.
    """
    import torch
    from tokenizers import Tokenizer
    from transformers import (
        BertConfig,
        BertModel,
        BertTokenizerFast,
        RobertaConfig,
        RobertaModel,
        RobertaTokenizerFast,
    )

    shape = parse_size(size)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    text_list = [text for text in texts if text.strip()]
    if not text_list:
        raise ConfigError(OnnxErrors.E161)
    torch.manual_seed(seed)
    common: dict[str, Any] = {
        "hidden_size": shape.hidden_size,
        "num_hidden_layers": shape.n_layers,
        "num_attention_heads": shape.n_heads,
        "intermediate_size": shape.intermediate_size,
    }
    fast_tokenizer: Any
    model: Any
    if architecture == "bert":
        backend: Tokenizer = _train_wordpiece(text_list, vocab_size)
        fast_tokenizer = BertTokenizerFast(
            tokenizer_object=backend, model_max_length=max_length, do_lower_case=True
        )
        bert_config = BertConfig(
            vocab_size=backend.get_vocab_size(),
            max_position_embeddings=max_length,
            pad_token_id=backend.token_to_id("[PAD]"),
            **common,
        )
        model = BertModel(bert_config)
    elif architecture == "roberta":
        backend = _train_byte_level_bpe(text_list, vocab_size)
        fast_tokenizer = RobertaTokenizerFast(tokenizer_object=backend, model_max_length=max_length)
        roberta_config = RobertaConfig(
            vocab_size=backend.get_vocab_size(),
            # RoBERTa numbers positions from padding_idx + 1.
            max_position_embeddings=max_length + 2,
            pad_token_id=backend.token_to_id("<pad>"),
            bos_token_id=backend.token_to_id("<s>"),
            eos_token_id=backend.token_to_id("</s>"),
            type_vocab_size=1,
            **common,
        )
        model = RobertaModel(roberta_config)
    else:
        raise ConfigError(OnnxErrors.E162.format(architecture=architecture))
    model.eval()
    model.save_pretrained(output_dir)
    fast_tokenizer.save_pretrained(output_dir)
    return output_dir


def _train_wordpiece(texts: list[str], vocab_size: int) -> Any:
    """A lower-casing BERT WordPiece tokenizer trained on ``texts``."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=BERT_SPECIAL_TOKENS, min_frequency=1
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tokenizer


def _train_byte_level_bpe(texts: list[str], vocab_size: int) -> Any:
    """A RoBERTa-style byte-level BPE tokenizer trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=ROBERTA_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.RobertaProcessing(
        sep=("</s>", tokenizer.token_to_id("</s>")),
        cls=("<s>", tokenizer.token_to_id("<s>")),
        trim_offsets=True,
        add_prefix_space=False,
    )
    return tokenizer
