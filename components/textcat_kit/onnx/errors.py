"""Coded errors of the ONNX export and the ONNX Runtime component (codes E160–E179).

Same style as :mod:`textcat_kit.errors`: what happened, where, and what to do.
"""

from __future__ import annotations


class OnnxErrors:
    E160 = (
        "[E160] Unknown transformer size '{size}'. Use 'tiny' or '<layers>x<hidden>' with a "
        "hidden width divisible by 64 (or below 64), e.g. '6x768'."
    )
    E161 = "[E161] build_tiny_transformer needs at least one non-empty text."
    E162 = "[E162] Unknown architecture '{architecture}'. Use 'bert' or 'roberta'."
    E163 = (
        "[E163] The ONNX component '{name}' needs the '{package}' package, which cannot be "
        "imported ({detail}). Install the extra: pip install 'spacy-textcat-kit[onnx]'."
    )
    E164 = (
        "[E164] Exporting to ONNX needs torch, transformers, spacy-transformers and onnx "
        "({detail}). Install the extras: pip install 'spacy-textcat-kit[transformers,onnx]'."
    )
    E165 = (
        "[E165] Pipeline {model_dir} has no text classifier fed by a transformer: expected a "
        "textcat component whose model.tok2vec is 'spacy-transformers.TransformerListener.v1' "
        "(pipes: {pipe_names}). Train it with configs/textcat_transformer.cfg or "
        "configs/textcat_multilabel_transformer.cfg."
    )
    E166 = (
        "[E166] Pipeline {model_dir}: cannot tell which transformer + textcat pair to export "
        "({detail}). The export handles one text classifier listening to one transformer; "
        "remove the other components with `nlp.remove_pipe` or name the listener's upstream."
    )
    E167 = (
        "[E167] Component '{name}' in {model_dir} uses {what} '{value}', which the ONNX "
        "export does not reproduce. Supported: {supported}."
    )
    E168 = (
        "[E168] The transformer '{name}' in {model_dir} has no fast (Rust) tokenizer "
        "(got {tokenizer_class}); the ONNX component needs its tokenizer.json. Train with "
        "`tokenizer_config.use_fast = true` and a model that ships a fast tokenizer."
    )
    E169 = (
        "[E169] The ONNX encoder disagrees with the PyTorch encoder after export: max "
        "|difference| {max_diff:.2e} on the check batch (tolerance {tolerance:.0e}). The "
        "model is probably not traceable; please report the transformers version "
        "({transformers_version}) and the model class ({model_class})."
    )
    E170 = "[E170] Unknown quantisation '{value}'. Choose one of: {options}."
    E171 = (
        "[E171] ONNX component '{name}' has no model loaded. Create it with "
        "`textcat-kit export-onnx MODEL_DIR OUT_DIR` and load the result with spacy.load; "
        "it cannot be trained or initialised."
    )
    E172 = (
        "[E172] {path}: missing file '{detail}' of the ONNX component '{name}'. Re-run "
        "`textcat-kit export-onnx` into a fresh directory."
    )
    E173 = (
        "[E173] Output directory {path} is not empty. Choose a new directory or delete this "
        "one first; the export never overwrites."
    )
    E174 = (
        "[E174] Component '{name}': window ({window}), stride ({stride}) and max_batch_items "
        "({max_batch_items}) must be positive (window and stride as in "
        "spacy-transformers.strided_spans.v1), and max_padding ({max_padding}) >= 0."
    )
    E175 = (
        "[E175] The transformer '{name}' in {model_dir} pads on the '{side}'; the ONNX "
        "component pads on the right, which gives the same scores only with right padding. "
        'Set `tokenizer_config.padding_side = "right"` and retrain.'
    )
    E176 = (
        "[E176] Component '{name}': the output layer has {n_rows} rows but there are "
        "{n_labels} labels ({labels}). The saved state is inconsistent; re-run the export."
    )
    E177 = (
        "[E177] Component '{name}': state format version {found} is not supported (this "
        "version of spacy-textcat-kit reads {expected}). Re-export with it."
    )
    E178 = (
        "[E178] The fp32 export in {out_dir} differs from {model_dir} by up to {max_diff:.2e} "
        "in doc.cats on the check texts (tolerance {tolerance:.0e}). Please report this "
        "with the pipeline's config.cfg."
    )
    E179 = (
        "[E179] The transformer '{name}' in {model_dir} also feeds {others}; the export "
        "replaces a transformer used only by the text classifier. Export a pipeline without "
        "those components."
    )
