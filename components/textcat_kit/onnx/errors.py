"""Coded errors of the ONNX export and the ONNX Runtime component (codes E150–E179).

Same style as :mod:`textcat_kit.errors`: what happened, where, and what to do.
"""

from __future__ import annotations


class OnnxErrors:
    E150 = (
        "[E150] Unknown transformer size '{size}'. Use 'tiny' or '<layers>x<hidden>', "
        "e.g. '6x768'."
    )
    E151 = "[E151] build_tiny_transformer needs at least one non-empty text."
    E152 = "[E152] Unknown architecture '{architecture}'. Use 'bert' or 'roberta'."
    E153 = (
        "[E153] The {package} package is needed by the ONNX component '{name}' but cannot be "
        "imported ({detail}). Install the extra: pip install 'spacy-textcat-kit[onnx]'."
    )
    E154 = (
        "[E154] Exporting to ONNX needs torch, transformers and spacy-transformers ({detail}). "
        "Install the extra: pip install 'spacy-textcat-kit[transformers,onnx]'."
    )
    E155 = (
        "[E155] Pipeline {model_dir} has no text classifier fed by a transformer: expected a "
        "'textcat' or 'textcat_multilabel' component whose model.tok2vec is "
        "'spacy-transformers.TransformerListener.v1' (pipes: {pipe_names}). Train it with "
        "configs/textcat_transformer.cfg or configs/textcat_multilabel_transformer.cfg."
    )
    E156 = (
        "[E156] Pipeline {model_dir} has {n} text classifiers fed by a transformer "
        "({names}); the export handles exactly one. Remove the others with "
        "`nlp.remove_pipe` and export again."
    )
    E157 = (
        "[E157] Component '{name}' in {model_dir} uses {what} '{value}', which the ONNX "
        "export does not reproduce. Supported: {supported}."
    )
    E158 = (
        "[E158] The transformer '{name}' in {model_dir} has no fast (Rust) tokenizer "
        "(got {tokenizer_class}); the ONNX component needs its tokenizer.json. Train with "
        "`tokenizer_config.use_fast = true` and a model that ships a fast tokenizer."
    )
    E159 = (
        "[E159] The ONNX encoder disagrees with the PyTorch encoder after export: max "
        "|difference| {max_diff:.2e} on the check batch (tolerance {tolerance:.0e}). The "
        "model is probably not traceable; please report the transformers version "
        "({transformers_version}) and the model class ({model_class})."
    )
    E160 = "[E160] Unknown quantisation '{value}'. Choose one of: {options}."
    E161 = (
        "[E161] ONNX component '{name}' has no model loaded. Create it with "
        "`textcat-kit export-onnx MODEL_DIR OUT_DIR` and load the result with spacy.load; "
        "it cannot be trained or initialised."
    )
    E162 = (
        "[E162] {path}: missing file of the ONNX component '{name}' ({detail}). Re-run "
        "`textcat-kit export-onnx` into a fresh directory."
    )
    E163 = (
        "[E163] Output directory {path} is not empty. Choose a new directory or delete this "
        "one first; the export never overwrites."
    )
    E164 = (
        "[E164] Component '{name}': window ({window}) and stride ({stride}) must be positive "
        "and stride <= window, as in spacy-transformers.strided_spans.v1."
    )
    E165 = (
        "[E165] The transformer '{name}' in {model_dir} pads on the '{side}'; the ONNX "
        "component pads on the right, which gives the same scores only with right padding. "
        "Set `tokenizer_config.padding_side = \"right\"` and retrain."
    )
