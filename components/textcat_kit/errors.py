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
        "(or pass --format)."
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
