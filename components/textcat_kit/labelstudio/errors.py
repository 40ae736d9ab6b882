"""Coded messages of the Label Studio subpackage.

Same contract as :mod:`textcat_kit.errors`: every message says what happened, where (file,
task id, row, tag, label) and what to do. The exception classes are the package's own
(:class:`~textcat_kit.errors.DataError` for exports, :class:`~textcat_kit.errors.ConfigError`
for labeling configs and settings), so callers catch one family of errors.

No message ever contains an API key: the client only names the environment variable.
"""

from __future__ import annotations


class LabelStudioErrors:
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
