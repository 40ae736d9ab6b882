"""Pull annotations from and push predictions to a live Label Studio server.

Uses ``label-studio-sdk`` 2.x, an optional extra (``spacy-textcat-kit[labelstudio]``),
imported only when a server is contacted. The API key is read from an environment
variable whose *name* is configurable; the value is handed to the SDK and nowhere else:
it is never printed, logged, written to a file or put into an error message.

``pull`` downloads the project's JSON export (all tasks, so unlabelled and skipped tasks
are accounted for) and its labeling config, and runs the same importer as
``textcat-kit labelstudio import``. ``push`` predicts the project's unlabelled tasks and
uploads the predictions as pre-annotations with ``score`` and ``model_version``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import srsly
from spacy.language import Language

from ..errors import ConfigError, DataError, Errors, LabelStudioError, TextcatKitError
from .aggregate import TiePolicy
from .config import LabelingScheme, parse_label_config
from .exports import parse_export
from .importer import TASK_ID_KEY, ImportResult, import_tasks
from .predictions import LabelChooser, PredictionPayload, predict_tasks

DEFAULT_API_KEY_ENV = "LABEL_STUDIO_API_KEY"


def api_key_from_env(env_var: str = DEFAULT_API_KEY_ENV) -> str:
    """The API key from the environment variable named ``env_var`` (never from an option)."""
    value = os.environ.get(env_var, "").strip()
    if not value:
        raise ConfigError(Errors.E124.format(env_var=env_var))
    return value


@dataclass
class LabelStudioProject:
    """One project on one server, reached through an SDK client.

    ``client`` is a ``label_studio_sdk.LabelStudio`` (or an object with the same
    ``projects`` methods, for tests).
    """

    client: Any
    url: str
    project_id: int
    api_key_env: str = DEFAULT_API_KEY_ENV

    @classmethod
    def connect(
        cls,
        url: str,
        project_id: int,
        *,
        api_key_env: str = DEFAULT_API_KEY_ENV,
        timeout: float = 120.0,
        max_retries: int = 2,
    ) -> LabelStudioProject:
        """An SDK client for ``url`` authenticated with the key in ``$api_key_env``.

        Proxy variables are ignored (``trust_env=False``): the key must go to ``url`` and
        nowhere else.
        """
        try:
            import httpx
            from label_studio_sdk import LabelStudio
        except ImportError as err:
            raise ConfigError(Errors.E125) from err
        client = LabelStudio(
            base_url=url.rstrip("/"),
            api_key=api_key_from_env(api_key_env),
            max_retries=max_retries,
            httpx_client=httpx.Client(trust_env=False, timeout=timeout, follow_redirects=True),
        )
        return cls(
            client=client, url=url.rstrip("/"), project_id=project_id, api_key_env=api_key_env
        )

    def label_config(self) -> str:
        """The project's labeling config XML."""
        with self._request("the project's labeling config"):
            project = self.client.projects.get(id=self.project_id)
        config = getattr(project, "label_config", None)
        if not config:
            raise LabelStudioError(
                Errors.E126.format(
                    url=self.url,
                    status="without a labeling config",
                    what=f"project {self.project_id}",
                    detail="empty label_config",
                    env_var=self.api_key_env,
                )
            )
        return str(config)

    def download_export(self, export_type: str = "JSON") -> bytes:
        """The project's export of all tasks (annotated or not) in ``export_type``."""
        with self._request(f"the {export_type} export of project {self.project_id}"):
            chunks = self.client.projects.exports.download_sync(
                self.project_id, export_type=export_type, download_all_tasks=True
            )
            return b"".join(chunks)

    def import_predictions(self, payloads: Sequence[PredictionPayload]) -> int:
        """Create the predictions in one request; return how many the server created."""
        if not payloads:
            return 0
        from label_studio_sdk import PredictionRequest

        requests = [PredictionRequest(**payload.to_request()) for payload in payloads]
        with self._request(f"importing {len(requests)} predictions"):
            response = self.client.projects.import_predictions(id=self.project_id, request=requests)
        created = getattr(response, "created", None)
        return len(requests) if created is None else int(created)

    @contextmanager
    def _request(self, what: str) -> Iterator[None]:
        """Turn SDK / HTTP failures into coded errors that carry no credentials."""
        try:
            yield
        except TextcatKitError:
            raise
        except Exception as err:  # noqa: BLE001 - SDK and httpx raise many types
            status = getattr(err, "status_code", None)
            if status is not None:
                body = str(getattr(err, "body", ""))[:300]
                message = Errors.E126.format(
                    url=self.url,
                    status=status,
                    what=what,
                    detail=body,
                    env_var=self.api_key_env,
                )
            else:
                message = Errors.E127.format(url=self.url, what=what, detail=type(err).__name__)
            raise LabelStudioError(message) from None


def pull(
    project: LabelStudioProject,
    *,
    ties: TiePolicy = "drop",
    choices_name: str | None = None,
    labels: Sequence[str] | None = None,
    exclusive: bool | None = None,
    text_field: str | None = None,
    raw_export_output: Path | None = None,
) -> ImportResult:
    """Download the project's JSON export and labeling config and import them.

    ``raw_export_output`` keeps the downloaded export (and the config next to it as
    ``<name>.label_config.xml``) so that the import can be re-run offline.
    """
    config_xml = project.label_config()
    scheme = parse_label_config(
        config_xml,
        source=f"{project.url} project {project.project_id}",
        choices_name=choices_name,
        labels=labels,
        exclusive=exclusive,
        text_field=text_field,
    )
    data = project.download_export("JSON")
    if raw_export_output is not None:
        raw_export_output.parent.mkdir(parents=True, exist_ok=True)
        raw_export_output.write_bytes(data)
        raw_export_output.with_suffix(".label_config.xml").write_text(config_xml, "utf-8")
    source = f"{project.url} project {project.project_id} (JSON export)"
    export = parse_export(data, scheme, source=source, export_format="JSON")
    return import_tasks(export, scheme, ties=ties)


@dataclass
class PushSummary:
    """What ``push`` sent: how many tasks, with which model version, how confident."""

    project_id: int
    model_version: str
    tasks: int
    pushed: int
    dry_run: bool
    least_confident: list[dict[str, Any]] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "model_version": self.model_version,
            "tasks": self.tasks,
            "pushed": self.pushed,
            "dry_run": self.dry_run,
            "least_confident": self.least_confident,
            "label_counts": self.label_counts,
        }

    def render(self) -> str:
        verb = "would push" if self.dry_run else "pushed"
        lines = [
            f"Label Studio push: project {self.project_id}, model_version "
            f"'{self.model_version}': {verb} {self.pushed if not self.dry_run else self.tasks}"
            f" of {self.tasks} unlabelled task(s)",
        ]
        if self.least_confident:
            listed = ", ".join(
                f"{p['task_id']} ({p['score']:.2f})" for p in self.least_confident[:10]
            )
            lines.append(f"  least confident first: {listed}")
        return "\n".join(lines)


def push(
    project: LabelStudioProject,
    nlp: Language,
    *,
    model_version: str,
    tasks: Sequence[tuple[int, str]] | None = None,
    choices_name: str | None = None,
    choose: LabelChooser | None = None,
    threshold: float = 0.5,
    limit: int | None = None,
    dry_run: bool = False,
) -> tuple[PushSummary, list[PredictionPayload]]:
    """Predict unlabelled tasks with ``nlp`` and upload them as pre-annotations.

    ``tasks`` are ``(task_id, text)`` pairs; by default the project's unlabelled tasks are
    found by pulling its export (same definition as the importer's: no annotation at all).
    Predictions are sent least confident first; ``limit`` keeps only the N least confident.
    """
    config_xml = project.label_config()
    scheme = parse_label_config(
        config_xml,
        source=f"{project.url} project {project.project_id}",
        choices_name=choices_name,
    )
    if tasks is None:
        tasks = unlabelled_tasks_from_server(project, scheme)
    payloads = predict_tasks(
        nlp, tasks, scheme, model_version=model_version, choose=choose, threshold=threshold
    )
    if limit is not None:
        payloads = payloads[:limit]
    pushed = 0 if dry_run else project.import_predictions(payloads)
    label_counts: dict[str, int] = {}
    for payload in payloads:
        for label in payload.labels:
            label_counts[label] = label_counts.get(label, 0) + 1
    summary = PushSummary(
        project_id=project.project_id,
        model_version=model_version,
        tasks=len(tasks),
        pushed=pushed,
        dry_run=dry_run,
        least_confident=[
            {"task_id": p.task_id, "score": p.score, "labels": list(p.labels)}
            for p in payloads[:20]
        ],
        label_counts=dict(sorted(label_counts.items())),
    )
    return summary, payloads


def unlabelled_tasks_from_server(
    project: LabelStudioProject, scheme: LabelingScheme
) -> list[tuple[int, str]]:
    """``(task_id, text)`` of the project's tasks that have no annotation at all."""
    data = project.download_export("JSON")
    source = f"{project.url} project {project.project_id} (JSON export)"
    export = parse_export(data, scheme, source=source, export_format="JSON")
    return [
        (t.task_id, t.text) for t in export.tasks if not t.annotations and t.task_id is not None
    ]


def read_unlabelled_jsonl(path: Path) -> list[tuple[int, str]]:
    """``(task_id, text)`` pairs from the unlabelled-tasks JSONL the importer writes."""
    pairs = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = srsly.json_loads(line)
            pairs.append((int(item[TASK_ID_KEY]), str(item["text"])))
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(
                Errors.E131.format(path=path, line=line_number, detail=repr(err))
            ) from None
    return pairs
