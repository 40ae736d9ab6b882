"""Label Studio in and out.

* :mod:`.config` — labeling config (XML / template YAML) → :class:`LabelingScheme`
* :mod:`.exports` — JSON, JSON_MIN, CSV, TSV exports → :class:`Task` / :class:`Annotation`
* :mod:`.aggregate` — several annotators → one label set; agreement (:mod:`.agreement`)
* :mod:`.importer` — accounting, ``.spacy`` corpus, unlabelled tasks as JSONL
* :mod:`.predictions` — pipeline predictions → pre-annotations with ``score``
* :mod:`.client` — ``pull`` / ``push`` against a live server (``label-studio-sdk`` extra)
* :mod:`.cli` — ``textcat-kit labelstudio import | pull | push``
"""

from .aggregate import TIE_POLICIES, Decision, TiePolicy, agreement_report, decide
from .config import (
    LabelingScheme,
    load_labeling_scheme,
    parse_label_config,
    read_label_config,
    scheme_from_overrides,
)
from .exports import (
    EXPORT_FORMATS,
    Annotation,
    Export,
    ExportFormat,
    Task,
    parse_export,
    read_export,
)
from .importer import (
    TASK_ID_KEY,
    ImportResult,
    ImportSummary,
    import_export,
    import_tasks,
    write_import,
    write_unlabelled,
)
from .predictions import (
    PredictionPayload,
    choices_result,
    choose_labels,
    decision_confidence,
    default_label_chooser,
    predict_tasks,
)

__all__ = [
    "EXPORT_FORMATS",
    "TASK_ID_KEY",
    "TIE_POLICIES",
    "Annotation",
    "Decision",
    "Export",
    "ExportFormat",
    "ImportResult",
    "ImportSummary",
    "LabelingScheme",
    "PredictionPayload",
    "Task",
    "TiePolicy",
    "agreement_report",
    "choices_result",
    "choose_labels",
    "decide",
    "decision_confidence",
    "default_label_chooser",
    "import_export",
    "import_tasks",
    "load_labeling_scheme",
    "parse_export",
    "parse_label_config",
    "predict_tasks",
    "read_export",
    "read_label_config",
    "scheme_from_overrides",
    "write_import",
    "write_unlabelled",
]
