"""Every real export: accounting that matches manifest.json, the same examples from every
format, and bad exports that stop with an error naming the task."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ls_testing import REAL_EXPORTS

from textcat_kit.errors import DataError
from textcat_kit.labelstudio.aggregate import TiePolicy
from textcat_kit.labelstudio.config import (
    LabelingScheme,
    load_labeling_scheme,
    scheme_from_overrides,
)
from textcat_kit.labelstudio.exports import parse_export, read_export
from textcat_kit.labelstudio.importer import TASK_ID_KEY, import_export, import_tasks

PROJECTS = {"banking77_single": "p1_annotation_plan", "goemotions_multi": "p2_annotation_plan"}
EXPORT_FILES = sorted(
    (project, path.name)
    for project in PROJECTS
    for path in (REAL_EXPORTS / project).glob("*")
    if path.name.startswith(("export_", "snapshot_"))
)
# Without the shared data mirror there is no export to parametrize over: say so.
EXPORT_PARAMS = EXPORT_FILES or [
    pytest.param(
        "",
        "",
        marks=pytest.mark.skip(
            reason=f"needs the Label Studio exports of the shared data mirror, not found at "
            f"{REAL_EXPORTS} (set TEXTCAT_KIT_SHARED_DATA)"
        ),
    )
]
SAME_PROJECT_FORMATS = [
    "export_JSON_all_tasks.json",
    "export_JSON_MIN_all_tasks.json",
    "export_CSV_all_tasks.csv",
    "export_TSV_all_tasks.tsv",
    "snapshot_JSON.json",
    "snapshot_CSV.csv",
]


def _manifest() -> dict[str, Any]:
    return json.loads((REAL_EXPORTS / "manifest.json").read_text(encoding="utf-8"))


def _scheme(project: str) -> LabelingScheme:
    return load_labeling_scheme(REAL_EXPORTS / project / "label_config.xml")


def _ids(plan: dict[str, Any], positions: Any) -> list[int]:
    by_position = plan["task_ids_by_position"]
    return sorted(by_position[int(p)] for p in positions)


def expected_accounting(project: str, file_name: str) -> dict[str, Any]:
    """What the manifest's annotation plan implies for one export file (ties dropped)."""
    plan = _manifest()[PROJECTS[project]]
    tabular = not (file_name.endswith(".json") and "JSON_MIN" not in file_name)
    annotated_only = "annotated_only" in file_name
    n_tasks = len(plan["task_ids_by_position"])
    cancelled = len(plan["skipped_pos"])
    empty = len(plan.get("empty_result_pos", []))
    unannotated = len(plan["unannotated_pos"])
    # Each disagreement is one annotator against another: a tie, dropped under "drop".
    dropped = len(plan["user2_disagrees_pos"])
    skipped = {}
    if cancelled and not tabular:  # tabular exports leave cancelled-only tasks out
        skipped["cancelled"] = cancelled
    if empty:
        skipped["empty_result"] = empty
    return {
        "tasks_in": n_tasks
        - (cancelled if tabular else 0)
        - (unannotated if annotated_only else 0),
        "imported": n_tasks - cancelled - empty - unannotated - dropped,
        "unlabelled": 0 if annotated_only else unannotated,
        "skipped": skipped,
        "dropped": dropped,
        "dropped_ids": _ids(plan, plan["user2_disagrees_pos"]),
        "unlabelled_ids": [] if annotated_only else _ids(plan, plan["unannotated_pos"]),
    }


@pytest.mark.parametrize(("project", "file_name"), EXPORT_PARAMS)
def test_accounting_matches_manifest(project: str, file_name: str) -> None:
    result = import_export(REAL_EXPORTS / project / file_name, _scheme(project), ties="drop")
    summary = result.summary
    expected = expected_accounting(project, file_name)
    assert summary.tasks_in == expected["tasks_in"]
    assert summary.imported == expected["imported"]
    assert summary.unlabelled == expected["unlabelled"]
    assert summary.skipped == expected["skipped"]
    assert summary.dropped == expected["dropped"]
    assert summary.is_balanced()
    assert summary.to_dict()["balanced"] is True
    assert sorted(int(i or 0) for i in summary.dropped_task_ids) == expected["dropped_ids"]
    assert sorted(c["task_id"] for c in summary.conflicts) == expected["dropped_ids"]
    assert sorted(int(t.task_id or 0) for t in result.unlabelled) == expected["unlabelled_ids"]
    assert len(result.records) == summary.imported


@pytest.mark.parametrize("project", PROJECTS)
def test_imported_labels_are_the_annotated_ones(project: str) -> None:
    """Round trip against the source label kept in task data (``gold``): every imported
    task has the gold label, except the ones the plan annotated wrongly on purpose."""
    plan = _manifest()[PROJECTS[project]]
    wrong = {
        plan["task_ids_by_position"][int(p)]: label
        for p, label in plan.get("wrong_labels_pos", {}).items()
    }
    path = REAL_EXPORTS / project / "export_JSON_all_tasks.json"
    gold = {t["id"]: t["data"]["gold"] for t in json.loads(path.read_text(encoding="utf-8"))}
    result = import_export(path, _scheme(project))
    for record in result.records:
        task_id = record.meta[TASK_ID_KEY]
        expected = [wrong[task_id]] if task_id in wrong else gold[task_id]
        expected = [expected] if isinstance(expected, str) else expected
        assert sorted(record.labels) == sorted(expected), task_id


def test_ground_truth_flag_is_used_in_json(real_exports: Path) -> None:
    plan = _manifest()["p1_annotation_plan"]
    (gt_id,) = _ids(plan, plan["ground_truth_pos"])
    result = import_export(
        real_exports / "banking77_single" / "export_JSON_all_tasks.json",
        _scheme("banking77_single"),
    )
    resolution = {r.meta[TASK_ID_KEY]: r.meta["ls_resolution"] for r in result.records}
    assert resolution[gt_id] == "ground_truth"


def _examples(project: str, file_name: str, ties: TiePolicy) -> set[tuple[Any, ...]]:
    result = import_export(REAL_EXPORTS / project / file_name, _scheme(project), ties=ties)
    return {
        (
            record.meta[TASK_ID_KEY],
            record.text,
            tuple(sorted(record.cats(result.scheme.labels).items())),
        )
        for record in result.records
    }


@pytest.mark.parametrize("ties", ["drop", "first", "soft"])
@pytest.mark.parametrize("project", PROJECTS)
def test_same_training_examples_from_every_format(project: str, ties: TiePolicy) -> None:
    reference = _examples(project, SAME_PROJECT_FORMATS[0], ties)
    assert reference
    for file_name in SAME_PROJECT_FORMATS[1:]:
        assert _examples(project, file_name, ties) == reference, file_name


def test_tie_policies_on_a_real_multilabel_disagreement() -> None:
    """Task 70: annotator 1 chose amusement+approval (annotation 62), annotator 2 joy (63)."""
    path = REAL_EXPORTS / "goemotions_multi" / "export_CSV_all_tasks.csv"
    scheme = _scheme("goemotions_multi")

    def record_70(ties: str) -> dict[str, float] | None:
        result = import_export(path, scheme, ties=ties)  # type: ignore[arg-type]
        found = [r for r in result.records if r.meta[TASK_ID_KEY] == 70]
        return found[0].cats(scheme.labels) if found else None

    assert record_70("drop") is None
    first = record_70("first")
    assert first is not None
    assert {k for k, v in first.items() if v == 1.0} == {"amusement", "approval"}
    soft = record_70("soft")
    assert soft is not None
    assert {k: v for k, v in soft.items() if v} == {"amusement": 0.5, "approval": 0.5, "joy": 0.5}


def test_multiple_choices_arrive_as_json_in_csv_and_as_object_in_json_min() -> None:
    scheme = _scheme("goemotions_multi")
    for name in ("export_CSV_all_tasks.csv", "export_JSON_MIN_all_tasks.json"):
        export = read_export(REAL_EXPORTS / "goemotions_multi" / name, scheme)
        task_69 = next(t for t in export.tasks if t.task_id == 69)
        assert task_69.annotations[0].choices == ("desire", "optimism")
        task_80 = next(t for t in export.tasks if t.task_id == 80)
        assert task_80.text == 'Three words, no subtlety. "Dude. Stop. Seriously." '


# ------------------------------------------------------------------ bad exports


def _json_export(project: str = "banking77_single") -> list[dict[str, Any]]:
    path = REAL_EXPORTS / project / "export_JSON_all_tasks.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _edited(edit: Callable[[list[dict[str, Any]]], None]) -> bytes:
    tasks = _json_export()
    edit(tasks)
    return json.dumps(tasks, indent=1, ensure_ascii=False).encode("utf-8")


def test_truncated_json_names_the_broken_task() -> None:
    content = (REAL_EXPORTS / "banking77_single" / "export_JSON_all_tasks.json").read_text(
        encoding="utf-8"
    )
    start = content.index('{"id":23,"annotations"')
    truncated = content[: start + 300]
    with pytest.raises(DataError) as info:
        parse_export(truncated, _scheme("banking77_single"), source="cut.json")
    message = str(info.value)
    assert "[E111]" in message and "cut.json" in message
    assert "task id 23" in message and "after task id 22" in message


def test_json_cut_before_the_task_id_names_the_previous_task() -> None:
    content = (REAL_EXPORTS / "banking77_single" / "export_JSON_all_tasks.json").read_text(
        encoding="utf-8"
    )
    start = content.index('{"id":23,"annotations"')
    with pytest.raises(DataError, match=r"\[E111\].*task id was cut off, after task id 22"):
        parse_export(content[: start + 4], _scheme("banking77_single"), source="cut.json")


def test_unknown_label_names_task_annotation_and_label() -> None:
    def edit(tasks: list[dict[str, Any]]) -> None:
        tasks[4]["annotations"][0]["result"][0]["value"]["choices"] = ["lost_or_stolen_card"]

    with pytest.raises(DataError) as info:
        parse_export(_edited(edit), _scheme("banking77_single"), source="x.json")
    message = str(info.value)
    assert "[E113]" in message
    assert "task id 5" in message and "annotation 6" in message
    assert "'lost_or_stolen_card'" in message and "<Choice" in message


def test_unknown_label_in_csv_names_task_and_line(tmp_path: Path) -> None:
    content = (REAL_EXPORTS / "banking77_single" / "export_CSV_all_tasks.csv").read_bytes()
    edited = content.replace(b'"card_linking",7.5', b'"lost_or_stolen_card",7.5', 1)
    assert edited != content
    path = tmp_path / "bad.csv"
    path.write_bytes(edited)
    with pytest.raises(DataError, match=r"\[E113\].*task id 1 \(line 2\).*lost_or_stolen_card"):
        read_export(path, _scheme("banking77_single"))


def test_missing_text_field_names_the_task() -> None:
    def edit(tasks: list[dict[str, Any]]) -> None:
        del tasks[9]["data"]["text"]

    with pytest.raises(DataError) as info:
        parse_export(_edited(edit), _scheme("banking77_single"), source="x.json")
    message = str(info.value)
    assert "[E112]" in message and "task id 10" in message
    assert "'text'" in message and "gold, source_row" in message


def test_truncated_csv_names_the_line(tmp_path: Path) -> None:
    content = (REAL_EXPORTS / "banking77_single" / "export_CSV_all_tasks.csv").read_bytes()
    path = tmp_path / "cut.csv"
    path.write_bytes(content[: content.index(b"I have been waiting over a week") + 10])
    with pytest.raises(DataError, match=r"\[E111\].*line 5, .*unbalanced quote"):
        read_export(path, _scheme("banking77_single"))


def test_csv_row_with_missing_fields_is_corrupt(tmp_path: Path) -> None:
    path = REAL_EXPORTS / "banking77_single" / "export_CSV_all_tasks.csv"
    lines = path.read_bytes().decode("utf-8").split("\r\n")
    lines[3] = lines[3].rsplit(",", 2)[0]
    path = tmp_path / "short.csv"
    path.write_bytes("\r\n".join(lines).encode("utf-8"))
    with pytest.raises(DataError, match=r"\[E123\].*line 4.*8 fields but the header has 10"):
        read_export(path, _scheme("banking77_single"))


def test_several_choices_in_an_exclusive_project() -> None:
    def edit(tasks: list[dict[str, Any]]) -> None:
        tasks[2]["annotations"][0]["result"][0]["value"]["choices"] = [
            "card_arrival",
            "card_linking",
        ]

    with pytest.raises(DataError, match=r"\[E114\].*task id 3.*--multilabel"):
        parse_export(_edited(edit), _scheme("banking77_single"), source="x.json")


def test_duplicate_task_ids() -> None:
    def edit(tasks: list[dict[str, Any]]) -> None:
        tasks.append(dict(tasks[0]))

    with pytest.raises(DataError, match=r"\[E119\].*task id 1 appears twice"):
        parse_export(_edited(edit), _scheme("banking77_single"), source="x.json")


def test_export_of_another_project_is_refused() -> None:
    path = REAL_EXPORTS / "goemotions_multi" / "export_JSON_all_tasks.json"
    with pytest.raises(DataError, match=r"\[E115\].*task id 51.*'emotions'"):
        read_export(path, _scheme("banking77_single"))


def test_wrong_choices_name_on_csv_is_not_silently_empty() -> None:
    scheme = scheme_from_overrides(
        choices_name="intent", text_field="text", labels=["card_arrival"], exclusive=True
    )
    path = REAL_EXPORTS / "banking77_single" / "export_CSV_all_tasks.csv"
    with pytest.raises(DataError, match=r"\[E118\].*40 annotated row\(s\).*'intent'"):
        read_export(path, scheme)


def test_unsupported_suffix_and_empty_export(tmp_path: Path) -> None:
    scheme = _scheme("banking77_single")
    path = tmp_path / "export.xml"
    path.write_text("<xml/>", encoding="utf-8")
    with pytest.raises(DataError, match=r"\[E117\]"):
        read_export(path, scheme)
    with pytest.raises(DataError, match=r"\[E122\]"):
        parse_export(b"[]", scheme, source="empty.json")


# ------------------------------------------------------- small upstream fixtures


def test_template_config_with_its_sdk_export(labelstudio_data: Path) -> None:
    scheme = load_labeling_scheme(
        labelstudio_data / "label-studio-templates" / "text-classification_config.yml"
    )
    result = import_export(labelstudio_data / "label-studio-sdk" / "csv_test_history.json", scheme)
    assert result.summary.imported == 1 and result.summary.is_balanced()
    (record,) = result.records
    assert record.meta[TASK_ID_KEY] == 6141
    assert record.cats(scheme.labels) == {"Positive": 1.0, "Negative": 0.0, "Neutral": 0.0}
    assert record.text.startswith("Calif. wildfires signal")


def test_colliding_keys_fixture(labelstudio_data: Path) -> None:
    """``from_name`` 'text' equals the text field; JSON keeps both apart."""
    scheme = scheme_from_overrides(
        choices_name="text", text_field="text", labels=["positive", "negative"], exclusive=True
    )
    result = import_export(
        labelstudio_data / "label-studio-sdk" / "csv_test_colliding_keys_mixed.json", scheme
    )
    assert (result.summary.imported, result.summary.unlabelled) == (1, 1)
    assert result.records[0].text == "Annotated task"
    assert result.records[0].labels == ["positive"]
    assert result.unlabelled[0].text == "Unannotated task"
    json_min = json.dumps([{"text": "positive", "id": 1, "annotator": 1, "annotation_id": 1}])
    with pytest.raises(DataError, match=r"\[E120\]"):
        parse_export(json_min, scheme, source="min.json", export_format="JSON_MIN")


def test_odd_choice_string_is_kept_byte_for_byte(labelstudio_data: Path) -> None:
    odd = 'Yes " "" \n \t \t а б в \n'
    path = labelstudio_data / "label-studio-sdk" / "csv_test2.json"
    scheme = scheme_from_overrides(
        choices_name="uri_selection", text_field="title", labels=[odd, "No"], exclusive=True
    )
    (record,) = import_export(path, scheme).records
    assert record.labels == [odd]
    assert record.text == "TAN BAI"
    default_field = scheme_from_overrides(
        choices_name="uri_selection", text_field="text", labels=[odd], exclusive=True
    )
    with pytest.raises(DataError, match=r"\[E112\].*task id 4.*'text'.*alternative_titles"):
        read_export(path, default_field)


def test_two_level_sample_data_field_mismatch(labelstudio_data: Path) -> None:
    folder = labelstudio_data / "awesome-label-studio-configs"
    config = folder / "two-level-sentiment-label-config.xml"
    sample = folder / "two-level-sentiment-sample-data.json"
    scheme = load_labeling_scheme(config, choices_name="other-props")
    with pytest.raises(DataError, match=r"\[E112\].*item 1 \(no task id\).*'tweet'.*: text"):
        read_export(sample, scheme)
    fixed = load_labeling_scheme(config, choices_name="other-props", text_field="text")
    result = import_tasks(read_export(sample, fixed), fixed)
    assert (result.summary.tasks_in, result.summary.unlabelled) == (3, 3)
