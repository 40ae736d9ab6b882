"""Label Studio as the place where the data gets better: review suspected label errors,
annotate the texts the model is least sure of.

``push_issues`` sends the ranked label issues ``textcat-kit cv`` wrote
(``label_issues.jsonl``) to a review project as tasks: the text, the given label(s) shown
above it, and the suggested label(s) as a pre-annotation (prediction) the reviewer accepts
or corrects. The review project's annotations come back like any other project's, through
``textcat-kit labelstudio pull`` / ``import``.

``suggest`` ranks a project's unlabelled tasks by the uncertainty of a pipeline's
calibrated probabilities (:mod:`textcat_kit.maths.active_learning`: margin, entropy or
least-confident, with a cap per predicted label so one confusion cannot fill the batch)
and pushes predictions for the top N with the confidence of the decision as the score,
so sorting the project by prediction score (ascending) shows the least sure first.

Both are idempotent: an issue is identified by a key (hash of text and given labels)
stored in the task data, so re-running pushes only issues the project does not have;
``suggest`` leaves out tasks that already carry a prediction of the same model version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import srsly
import typer
from spacy.language import Language

from ..errors import ConfigError, DataError, Errors, TextcatKitError
from ..maths.active_learning import (
    default_label_cap,
    predicted_label,
    select_diverse,
    uncertainty,
)
from .cli import API_KEY_ENV_HELP
from .client import (
    DEFAULT_API_KEY_ENV,
    LabelStudioProject,
    read_unlabelled_jsonl,
    unlabelled_tasks_from_server,
)
from .config import LabelingScheme, parse_label_config
from .predictions import choices_result, decision_confidence, default_label_chooser

#: Task data field holding the issue's identity (text + given labels): the idempotency key.
ISSUE_KEY = "textcat_kit_issue"
#: Task data field holding the given label(s), shown to the reviewer.
GIVEN_FIELD = "given"


def issue_key(text: str, given: str | Sequence[str]) -> str:
    """Stable identity of an issue: the same text with the same given labels."""
    labels = [given] if isinstance(given, str) else sorted(given)
    payload = srsly.json_dumps({"text": text, "given": labels})
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:16]


def read_issues(path: Path) -> list[dict[str, Any]]:
    """The records of a ``label_issues.jsonl``, validated (E408 names the line)."""
    records = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = srsly.json_loads(line)
        except ValueError as err:
            raise DataError(Errors.E408.format(path=path, line=line_number, detail=err)) from None
        if not isinstance(record, dict):
            raise DataError(
                Errors.E408.format(path=path, line=line_number, detail="not a JSON object")
            )
        missing = [key for key in ("text", "given", "suggested") if key not in record]
        if missing:
            raise DataError(
                Errors.E408.format(path=path, line=line_number, detail=f"missing {missing}")
            )
        record["_line"] = line_number
        records.append(record)
    return records


def review_label_config(labels: Sequence[str], *, exclusive: bool) -> str:
    """Labeling config of a review project: the given label(s) above the text, then the
    label set as Choices (``single`` or ``multiple``)."""
    choices = "\n    ".join(f"<Choice value={quoteattr(label)}/>" for label in labels)
    mode = "single" if exclusive else "multiple"
    return (
        "<View>\n"
        f'  <Header value="Given: ${GIVEN_FIELD}"/>\n'
        '  <Text name="text" value="$text"/>\n'
        f'  <Choices name="label" toName="text" choice="{mode}" showInline="false">\n'
        f"    {choices}\n"
        "  </Choices>\n"
        "</View>"
    )


def find_or_create_project(
    client: Any, url: str, title: str, labels: Sequence[str], *, exclusive: bool
) -> tuple[int, bool]:
    """The id of the project titled ``title`` (created with :func:`review_label_config`
    if there is none) and whether it was created. Several with that title: E410."""
    found = [p for p in client.projects.list(title=title) if getattr(p, "title", None) == title]
    if len(found) > 1:
        ids = ", ".join(str(p.id) for p in found)
        raise ConfigError(Errors.E410.format(url=url, n=len(found), title=title, ids=ids))
    if found:
        return int(found[0].id), False
    project = client.projects.create(
        title=title, label_config=review_label_config(labels, exclusive=exclusive)
    )
    return int(project.id), True


def project_task_data(project: LabelStudioProject) -> list[dict[str, Any]]:
    """Every task of the project as ``{"id", "data", "model_versions"}``."""
    out = []
    with project._request(f"the tasks of project {project.project_id}"):
        for task in project.client.tasks.list(project=project.project_id, fields="all"):
            predictions = getattr(task, "predictions", None) or []
            versions = set()
            for prediction in predictions:
                version = (
                    prediction.get("model_version")
                    if isinstance(prediction, dict)
                    else getattr(prediction, "model_version", None)
                )
                if version:
                    versions.add(str(version))
            out.append(
                {"id": int(task.id), "data": dict(task.data or {}), "model_versions": versions}
            )
    return out


@dataclass
class PushIssuesSummary:
    project_id: int
    created_project: bool
    issues: int
    already_there: int
    pushed: int
    dry_run: bool
    task_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "created_project": self.created_project,
            "issues": self.issues,
            "already_there": self.already_there,
            "pushed": self.pushed,
            "dry_run": self.dry_run,
            "task_ids": self.task_ids,
        }

    def render(self) -> str:
        verb = "would push" if self.dry_run else "pushed"
        created = " (created)" if self.created_project else ""
        return (
            f"Label Studio review project {self.project_id}{created}: {self.issues} issue(s) = "
            f"{self.already_there} already there + {verb} {self.pushed}"
        )


def issue_tasks(
    records: Sequence[dict[str, Any]], scheme: LabelingScheme, model_version: str
) -> list[dict[str, Any]]:
    """Label Studio tasks (with the suggestion as a prediction) for issue records."""
    allowed = set(scheme.labels)
    tasks = []
    for record in records:
        given = record["given"]
        suggested = record["suggested"]
        suggested_list = [suggested] if isinstance(suggested, str) else list(suggested)
        given_list = [given] if isinstance(given, str) else list(given)
        for label in given_list + suggested_list:
            if label not in allowed:
                raise ConfigError(
                    Errors.E409.format(
                        where=f"issue line {record.get('_line', '?')}",
                        label=label,
                        name=scheme.choices_name,
                        labels=", ".join(scheme.labels),
                    )
                )
        data = {
            scheme.text_field: record["text"],
            GIVEN_FIELD: ", ".join(given_list) or "(none)",
            ISSUE_KEY: issue_key(record["text"], given),
            "issue_score": float(record.get("score", 0.0)),
            "issue_rank": int(record.get("rank", 0)),
            "source_id": str(record.get("id", "")),
        }
        tasks.append(
            {
                "data": data,
                "predictions": [
                    {
                        "model_version": model_version,
                        # The prediction's score is how sure we are the given label is wrong.
                        "score": float(record.get("score", 0.0)),
                        "result": choices_result(suggested_list, scheme),
                    }
                ],
            }
        )
    return tasks


def push_issues(
    project: LabelStudioProject,
    records: Sequence[dict[str, Any]],
    *,
    model_version: str = "textcat-kit-cv",
    limit: int | None = None,
    dry_run: bool = False,
    created_project: bool = False,
    choices_name: str | None = None,
) -> PushIssuesSummary:
    """Push issue records (most likely first; ``limit`` keeps the first N) as review tasks
    with the suggestion pre-annotated; issues the project already holds are left out."""
    if limit is not None and limit < 0:
        raise ConfigError(Errors.E411.format(what="--limit", minimum=0, value=limit))
    scheme = parse_label_config(
        project.label_config(),
        source=f"{project.url} project {project.project_id}",
        choices_name=choices_name,
    )
    selected = list(records[:limit] if limit is not None else records)
    existing = {str(task["data"].get(ISSUE_KEY)) for task in project_task_data(project)} - {"None"}
    new = [r for r in selected if issue_key(r["text"], r["given"]) not in existing]
    tasks = issue_tasks(new, scheme, model_version)
    task_ids: list[int] = []
    if tasks and not dry_run:
        with project._request(f"importing {len(tasks)} review tasks"):
            response = project.client.projects.import_tasks(
                id=project.project_id, request=tasks, return_task_ids=True
            )
        task_ids = [int(i) for i in (getattr(response, "task_ids", None) or [])]
    return PushIssuesSummary(
        project_id=project.project_id,
        created_project=created_project,
        issues=len(selected),
        already_there=len(selected) - len(new),
        pushed=0 if dry_run else len(tasks),
        dry_run=dry_run,
        task_ids=task_ids,
    )


@dataclass
class SuggestSummary:
    project_id: int
    model_version: str
    strategy: str
    unlabelled: int
    already_suggested: int
    pushed: int
    max_per_label: int
    dry_run: bool
    picks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def render(self) -> str:
        verb = "would push" if self.dry_run else "pushed"
        lines = [
            f"Label Studio suggest: project {self.project_id}, model_version "
            f"'{self.model_version}', {self.strategy} (at most {self.max_per_label} per "
            f"predicted label): of {self.unlabelled} unlabelled, the "
            f"{self.already_suggested + len(self.picks)} most uncertain = "
            f"{self.already_suggested} already suggested + {verb} {self.pushed}",
        ]
        if self.picks:
            shown = ", ".join(f"{p['task_id']} ({p['uncertainty']:.2f})" for p in self.picks[:10])
            lines.append(f"  most uncertain first: {shown}")
        return "\n".join(lines)


def rank_tasks(
    nlp: Language,
    tasks: Sequence[tuple[int, str]],
    scheme: LabelingScheme,
    *,
    n: int,
    strategy: str = "margin",
    max_per_label: int | None = None,
    batch_size: int = 256,
) -> tuple[list[int], np.ndarray, np.ndarray, list[Any]]:
    """Score ``(task_id, text)`` pairs and choose ``n`` (positions, most uncertain first).

    Returns (chosen positions, uncertainty of every task, probability matrix in the
    scheme's label order, the docs).
    """
    docs = list(nlp.pipe([text for _, text in tasks], batch_size=batch_size))
    probs = np.zeros((len(docs), len(scheme.labels)))
    for i, doc in enumerate(docs):
        missing = [label for label in scheme.labels if label not in doc.cats]
        if missing:
            raise ConfigError(
                Errors.E128.format(
                    label=missing[0],
                    name=scheme.choices_name,
                    present=", ".join(doc.cats) or "nothing",
                )
            )
        probs[i] = [doc.cats[label] for label in scheme.labels]
    scores = uncertainty(np.clip(probs, 0.0, 1.0), exclusive=scheme.exclusive, strategy=strategy)  # type: ignore[arg-type]
    cap = max_per_label or default_label_cap(n, len(scheme.labels))
    chosen = select_diverse(
        scores,
        predicted_label(np.clip(probs, 0, 1), exclusive=scheme.exclusive),
        n,
        max_per_label=cap,
    )
    return chosen.tolist(), scores, probs, docs


def suggest(
    project: LabelStudioProject,
    nlp: Language,
    *,
    n: int,
    model_version: str,
    strategy: str = "margin",
    max_per_label: int | None = None,
    tasks: Sequence[tuple[int, str]] | None = None,
    choices_name: str | None = None,
    threshold: float = 0.5,
    dry_run: bool = False,
) -> SuggestSummary:
    """Push predictions for the ``n`` most uncertain unlabelled tasks (module docstring)."""
    if n < 1:
        raise ConfigError(Errors.E411.format(what="--n", minimum=1, value=n))
    scheme = parse_label_config(
        project.label_config(),
        source=f"{project.url} project {project.project_id}",
        choices_name=choices_name,
    )
    source = "--tasks" if tasks is not None else f"project {project.project_id}"
    if tasks is None:
        tasks = unlabelled_tasks_from_server(project, scheme)
    if not tasks:
        raise ConfigError(Errors.E413.format(source=source))
    cap = max_per_label or default_label_cap(n, len(scheme.labels))
    chosen, scores, probs, docs = rank_tasks(
        nlp, tasks, scheme, n=n, strategy=strategy, max_per_label=cap
    )
    # Idempotent: the same model ranks the same way, and a chosen task that already has a
    # prediction of this model version is not sent again.
    done = {
        task["id"] for task in project_task_data(project) if model_version in task["model_versions"]
    }
    already = [position for position in chosen if tasks[position][0] in done]
    chosen = [position for position in chosen if tasks[position][0] not in done]
    choose = default_label_chooser(scheme.exclusive, threshold)
    payloads: list[dict[str, Any]] = []
    picks = []
    for rank, position in enumerate(chosen, 1):
        task_id = tasks[position][0]
        labels = list(choose(docs[position]))
        cats = {label: float(probs[position, j]) for j, label in enumerate(scheme.labels)}
        payloads.append(
            {
                "task": task_id,
                "model_version": model_version,
                # Confidence of the decision: sort ascending in Label Studio = most uncertain first.
                "score": round(decision_confidence(cats, labels, exclusive=scheme.exclusive), 6),
                "result": choices_result(labels, scheme),
            }
        )
        picks.append(
            {
                "rank": rank,
                "task_id": task_id,
                "uncertainty": round(float(scores[position]), 6),
                "labels": labels,
            }
        )
    if payloads and not dry_run:
        from label_studio_sdk import PredictionRequest

        with project._request(f"importing {len(payloads)} predictions"):
            project.client.projects.import_predictions(
                id=project.project_id, request=[PredictionRequest(**p) for p in payloads]
            )
    return SuggestSummary(
        project_id=project.project_id,
        model_version=model_version,
        strategy=strategy,
        unlabelled=len(tasks),
        already_suggested=len(already),
        pushed=0 if dry_run else len(payloads),
        max_per_label=cap,
        dry_run=dry_run,
        picks=picks,
    )


# --- CLI (mounted by labelstudio/cli.py as `push-issues` and `suggest`) -------------------


def push_issues_command(
    issues: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="label_issues.jsonl written by `textcat-kit cv`"
    ),
    url: str = typer.Option("http://localhost:8080", "--url", help="Label Studio base URL"),
    project_id: int | None = typer.Option(None, "--project-id", help="Review project id"),
    project_title: str | None = typer.Option(
        None, "--project-title", help="Review project title: used if it exists, else created"
    ),
    labels_file: Path | None = typer.Option(
        None,
        "--labels",
        exists=True,
        dir_okay=False,
        help="Label set of a project to create (JSON list; default: cv's labels.json beside "
        "the issues file)",
    ),
    api_key_env: str = typer.Option(DEFAULT_API_KEY_ENV, "--api-key-env", help=API_KEY_ENV_HELP),
    model_version: str = typer.Option(
        "textcat-kit-cv", "--model-version", help="Tag of the suggestions"
    ),
    limit: int | None = typer.Option(None, "--limit", help="Push only the N most likely"),
    choices_name: str | None = typer.Option(None, "--choices-name"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report, upload nothing"),
    summary: Path | None = typer.Option(None, "--summary", help="What was pushed, as JSON"),
) -> None:
    """Push suspected label errors to a review project, the suggestion pre-annotated."""
    try:
        records = read_issues(issues)
        created = False
        if project_id is None:
            if not project_title:
                raise ConfigError(Errors.E414)
            connection = LabelStudioProject.connect(url, 0, api_key_env=api_key_env)
            label_path = labels_file or issues.parent / "labels.json"
            labels = [str(label) for label in srsly.read_json(label_path)]
            exclusive = all(isinstance(r["given"], str) for r in records) if records else True
            with connection._request(f"finding or creating project '{project_title}'"):
                project_id, created = find_or_create_project(
                    connection.client, url, project_title, labels, exclusive=exclusive
                )
            connection.project_id = project_id
            project = connection
        else:
            project = LabelStudioProject.connect(url, project_id, api_key_env=api_key_env)
        result = push_issues(
            project,
            records,
            model_version=model_version,
            limit=limit,
            dry_run=dry_run,
            created_project=created,
            choices_name=choices_name,
        )
    except TextcatKitError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=1) from None
    if summary is not None:
        summary.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(summary, result.to_dict())
    typer.echo(result.render())


def suggest_command(
    model: Path = typer.Argument(..., exists=True, file_okay=False, help="Trained pipeline"),
    url: str = typer.Option("http://localhost:8080", "--url", help="Label Studio base URL"),
    project_id: int = typer.Option(..., "--project-id", help="Project id"),
    n: int = typer.Option(50, "--n", help="How many tasks to suggest"),
    strategy: str = typer.Option("margin", "--strategy", help="margin | entropy | least_confident"),
    max_per_label: int | None = typer.Option(
        None, "--max-per-label", help="Picks per predicted label (default: 2 x an even share)"
    ),
    api_key_env: str = typer.Option(DEFAULT_API_KEY_ENV, "--api-key-env", help=API_KEY_ENV_HELP),
    model_version: str | None = typer.Option(
        None, "--model-version", help="Tag of the predictions (default: pipeline name-version)"
    ),
    tasks: Path | None = typer.Option(
        None,
        "--tasks",
        exists=True,
        dir_okay=False,
        help="Unlabelled-tasks JSONL from import/pull (default: ask the server)",
    ),
    choices_name: str | None = typer.Option(None, "--choices-name"),
    threshold: float = typer.Option(0.5, "--threshold", help="Multi-label decision threshold"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Rank and report, upload nothing"),
    summary: Path | None = typer.Option(None, "--summary", help="What was pushed, as JSON"),
) -> None:
    """Push predictions for the N most uncertain unlabelled tasks (active learning)."""
    import spacy

    try:
        nlp = spacy.load(model)
        version = model_version or f"{nlp.meta.get('name', 'pipeline')}-{nlp.meta.get('version')}"
        project = LabelStudioProject.connect(url, project_id, api_key_env=api_key_env)
        result = suggest(
            project,
            nlp,
            n=n,
            model_version=version,
            strategy=strategy,
            max_per_label=max_per_label,
            tasks=read_unlabelled_jsonl(tasks) if tasks else None,
            choices_name=choices_name,
            threshold=threshold,
            dry_run=dry_run,
        )
    except TextcatKitError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=1) from None
    if summary is not None:
        summary.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(summary, result.to_dict())
    typer.echo(result.render())
