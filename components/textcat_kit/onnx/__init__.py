"""ONNX Runtime export of transformer text classifiers, and the torch-free component that runs it.

* :mod:`.export` — ``export_onnx_pipeline`` (needs torch, transformers, spacy-transformers);
* :mod:`.component` — the ``textcat_kit_onnx_textcat`` spaCy component (needs only
  onnxruntime and tokenizers, imported lazily);
* :mod:`.windows`, :mod:`.alignment`, :mod:`.pooling`, :mod:`.head` — the NumPy maths that
  reproduce spacy-transformers' windows, alignment and pooling and the textcat's output layer;
* :mod:`.tokenization`, :mod:`.encoder` — ``tokenizers`` and ONNX Runtime wrappers;
* :mod:`.cli` — ``textcat-kit export-onnx``.

Nothing is imported here, so that spaCy's entry-point scan stays cheap.
"""
