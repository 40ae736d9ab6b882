"""Frozen pretrained sentence encoders as spaCy text classifier features.

* :mod:`.encoder`: :class:`SentenceEncoder` (mean-pooled, L2-normalised vectors in
  length-sorted batches, serialised without pickle) and :class:`EmbeddingCache`;
* :mod:`.layers`: the thinc layer ``textcat_kit.SentenceEncoder.v1`` and the architecture
  ``textcat_kit.SentenceEmbeddingClassifier.v1`` (registered by entry points);
* :mod:`.assets`: the pinned, checksum-verified offline route to ``all-MiniLM-L6-v2``.

torch / transformers are imported only when an encoder is loaded.
"""

from .encoder import EmbeddingCache, EncoderSettings, SentenceEncoder, mean_pool

__all__ = ["EmbeddingCache", "EncoderSettings", "SentenceEncoder", "mean_pool"]
