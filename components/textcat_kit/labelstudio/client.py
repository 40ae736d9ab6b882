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

import json
import os
import re
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

    def existing_predictions(self, model_version: str) -> dict[int, list[Any]]:
        """The project's predictions tagged ``model_version``, by task id."""
        with self._request(f"the predictions of project {self.project_id}"):
            predictions = self.client.predictions.list(project=self.project_id)
        found: dict[int, list[Any]] = {}
        for prediction in predictions or []:
            if getattr(prediction, "model_version", None) != model_version:
                continue
            task = getattr(prediction, "task", None)
            if task is not None:
                found.setdefault(int(task), []).append(prediction)
        return found

    def update_prediction(self, prediction_id: int, payload: PredictionPayload) -> None:
        """Replace the result and score of an existing prediction."""
        with self._request(f"updating prediction {prediction_id}"):
            self.client.predictions.update(
                id=prediction_id,
                result=payload.result,
                score=payload.score,
                model_version=payload.model_version,
            )

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
                secret = os.environ.get(self.api_key_env, "").strip()
                body = scrub_error_body(getattr(err, "body", ""), secrets=[secret])
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


_SECRET_FIELDS = re.compile(
    r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api[-_]?key|"
    r"access[-_]?token|refresh[-_]?token|token|password|secret|sessionid|csrftoken|"
    r"http_authorization|http_cookie)(['\"]?\s*[:=]\s*)(['\"]?)[^\s'\",;}&]+"
)
_SCHEME_TOKENS = re.compile(r"(?i)\b(token|bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")
_LONG_TOKENS = re.compile(
    r"\beyJ[\w-]+\.[\w-]+\.[\w-]+|\b[0-9a-fA-F]{24,}\b|\b[A-Za-z0-9_-]{40,}\b"
)
_HEADER_KEYS = frozenset(
    {"headers", "request_headers", "request", "meta", "cookies", "environ", "authorization"}
)


def scrub_error_body(body: Any, *, secrets: Sequence[str] = (), limit: int = 300) -> str:
    """A server's error body made safe to print: no headers, cookies, tokens or keys.

    Structured bodies lose header-like entries; HTML pages (a proxy's or a debug page,
    which can list request headers) are reduced to their title; anything that looks like
    a credential (``Authorization: ...``, ``Token ...``, long hex / JWT strings, the API
    key itself) is replaced by ``[redacted]``; the result is cut to ``limit`` characters.
    """
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if str(k).lower() not in _HEADER_KEYS}
        text = json.dumps(body, ensure_ascii=False, default=str)
    elif isinstance(body, bytes):
        text = body.decode("utf-8", errors="replace")
    else:
        text = str(body)
    if "<html" in text[:2000].lower() or "<!doctype" in text[:200].lower():
        title = re.search(r"(?is)<title>(.*?)</title>", text)
        text = f"HTML page '{title.group(1).strip() if title else ''}' ({len(text)} characters)"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _SECRET_FIELDS.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
    text = _SCHEME_TOKENS.sub(lambda m: f"{m.group(1)} [redacted]", text)
    text = _LONG_TOKENS.sub("[redacted]", text)
    return text if len(text) <= limit else text[:limit] + " ..."


def pull(
    project: LabelStudioProject,
    *,
    ties: TiePolicy = "drop",
    choices_name: str | None = None,
    labels: Sequence[str] | None = None,
    exclusive: bool | None = None,
    text_field: str | None = None,
    raw_export_output: Path | None = None,
    overwrite: bool = False,
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
        from ..safe_write import atomic_file

        with atomic_file(raw_export_output, overwrite=overwrite) as tmp:
            tmp.write_bytes(data)
        config_path = raw_export_output.with_suffix(".label_config.xml")
        with atomic_file(config_path, overwrite=overwrite) as tmp:
            tmp.write_text(config_xml, "utf-8")
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
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_existing: int = 0
    empty_text_task_ids: list[int] = field(default_factory=list)
    duplicate_task_ids: list[int] = field(default_factory=list)
    existing: str = "update"

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "model_version": self.model_version,
            "tasks": self.tasks,
            "pushed": self.pushed,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "kept_existing": self.kept_existing,
            "existing_policy": self.existing,
            "skipped_empty_text": self.empty_text_task_ids,
            "tasks_with_duplicate_predictions": self.duplicate_task_ids,
            "dry_run": self.dry_run,
            "least_confident": self.least_confident,
            "label_counts": self.label_counts,
        }

    def render(self) -> str:
        verb = "would push" if self.dry_run else "pushed"
        lines = [
            f"Label Studio push: project {self.project_id}, model_version "
            f"'{self.model_version}': {verb} {self.created + self.updated} of {self.tasks} "
            f"unlabelled task(s): {self.created} new, {self.updated} updated, {self.unchanged} "
            f"unchanged, {self.kept_existing} kept (--existing {self.existing}), "
            f"{len(self.empty_text_task_ids)} skipped (empty text)",
        ]
        if self.empty_text_task_ids:
            listed = ", ".join(map(str, self.empty_text_task_ids[:20]))
            lines.append(f"  empty text, no prediction: task {listed}")
        if self.duplicate_task_ids:
            listed = ", ".join(map(str, self.duplicate_task_ids[:20]))
            lines.append(
                f"  several predictions of this model_version already on task {listed} (from "
                "earlier pushes); the first was updated, delete the others in the Data Manager"
            )
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
    existing: str = "update",
) -> tuple[PushSummary, list[PredictionPayload]]:
    """Predict unlabelled tasks with ``nlp`` and upload them as pre-annotations.

    ``tasks`` are ``(task_id, text)`` pairs; by default the project's unlabelled tasks are
    found by pulling its export (same definition as the importer's: no annotation at all).
    Predictions are sent least confident first; ``limit`` keeps only the N least confident.

    Pushing is idempotent per ``model_version``: a task that already has a prediction of
    this model version gets it updated (``existing="update"``, unchanged ones are left
    alone) or kept as it is (``"skip"``); only tasks without one get a new prediction.
    Tasks with an empty text get no prediction (a model's guess on nothing would pre-fill
    a label an annotator might accept).
    """
    if existing not in ("update", "skip"):
        raise ConfigError(
            Errors.E013.format(what="--existing", value=existing, options="update, skip")
        )
    config_xml = project.label_config()
    scheme = parse_label_config(
        config_xml,
        source=f"{project.url} project {project.project_id}",
        choices_name=choices_name,
    )
    if tasks is None:
        tasks = unlabelled_tasks_from_server(project, scheme)
    empty = [task_id for task_id, text in tasks if not text.strip()]
    with_text = [(task_id, text) for task_id, text in tasks if text.strip()]
    payloads = predict_tasks(
        nlp, with_text, scheme, model_version=model_version, choose=choose, threshold=threshold
    )
    if limit is not None:
        payloads = payloads[:limit]
    have = project.existing_predictions(model_version)
    new = [p for p in payloads if p.task_id not in have]
    created = len(new) if dry_run else project.import_predictions(new)
    updated = unchanged = kept = 0
    for payload in payloads:
        if payload.task_id not in have:
            continue
        previous = have[payload.task_id][0]
        same = (
            _choices_of(getattr(previous, "result", None)) == _choices_of(payload.result)
            and abs(float(getattr(previous, "score", None) or 0.0) - payload.score) < 1e-6
        )
        if same:
            unchanged += 1
        elif existing == "skip":
            kept += 1
        else:
            if not dry_run:
                project.update_prediction(int(previous.id), payload)
            updated += 1
    pushed = 0 if dry_run else created + updated
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
        created=created,
        updated=updated,
        unchanged=unchanged,
        kept_existing=kept,
        empty_text_task_ids=empty,
        duplicate_task_ids=sorted(t for t, found in have.items() if len(found) > 1),
        existing=existing,
    )
    return summary, payloads


def _choices_of(result: Any) -> list[tuple[Any, ...]]:
    """What a prediction result selects, ignoring keys the server adds (ids, origin)."""
    out = []
    for item in result or []:
        if isinstance(item, dict):
            value = item.get("value") or {}
            choices = value.get("choices") if isinstance(value, dict) else None
            out.append(
                (item.get("from_name"), item.get("to_name"), item.get("type"), tuple(choices or ()))
            )
    return sorted(out, key=repr)


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
