"""From several annotations of a task to one training label set, and agreement reports.

The policy (documented in ``docs/labelstudio.md``):

1. Cancelled (skipped) annotations and annotations with an empty result are excluded and
   counted. A task left with no annotation is *skipped* (reason ``cancelled`` or
   ``empty_result``); a task that never had one is *unlabelled*.
2. If annotations flagged ``ground_truth`` remain, only they vote.
3. Otherwise every remaining annotation votes once. Exclusive tasks: the label with the most
   votes wins. Multi-label tasks: each label is positive when more than half of the
   annotators chose it and negative when fewer than half did. Every annotator chose at
   least one label, so "no label at all" never wins by majority: that case is a tie too.
4. Ties follow the ``ties`` setting: ``drop`` the task (listed and counted), keep the
   ``first`` annotation's answer (lowest annotation id), or keep them as ``soft`` labels
   (the share of annotators who chose each tied label).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from ..errors import ConfigError, Errors
from .agreement import binary_counts, nominal_alpha, observed_agreement
from .exports import Annotation

TiePolicy = Literal["drop", "first", "soft"]
TIE_POLICIES: tuple[str, ...] = get_args(TiePolicy)
TaskStatus = Literal["labelled", "unlabelled", "skipped", "dropped"]


@dataclass(frozen=True)
class Decision:
    """What the policy made of one task's annotations.

    ``resolution`` says how a label set was reached: ``single`` (one annotation),
    ``unanimous``, ``majority``, ``ground_truth``, ``tie_first`` or ``tie_soft``;
    ``tie_dropped`` for dropped tasks. ``votes`` counts, per label, the voting annotations
    that chose it; ``conflict`` is true when the usable annotations were not all the same.
    """

    status: TaskStatus
    labels: tuple[str, ...] = ()
    soft: dict[str, float] | None = None
    resolution: str = ""
    skip_reason: str | None = None
    votes: dict[str, int] = field(default_factory=dict)
    n_voters: int = 0
    conflict: bool = False


def check_tie_policy(ties: str) -> TiePolicy:
    """Validate a tie policy name given on the command line or in a config."""
    if ties not in TIE_POLICIES:
        raise ConfigError(Errors.E130.format(value=ties, options=", ".join(TIE_POLICIES)))
    return ties  # type: ignore[return-value]


def usable_annotations(annotations: Sequence[Annotation]) -> list[Annotation]:
    """Annotations that count: neither cancelled nor empty."""
    return [a for a in annotations if not a.cancelled and a.choices]


def exclusion_reason(annotation: Annotation) -> str | None:
    """Why an annotation does not count (``cancelled`` / ``empty_result``), else ``None``."""
    if annotation.cancelled:
        return "cancelled"
    if not annotation.choices:
        return "empty_result"
    return None


def decide(
    annotations: Sequence[Annotation],
    *,
    labels: Sequence[str],
    exclusive: bool,
    ties: TiePolicy = "drop",
) -> Decision:
    """Apply the annotator policy (module docstring) to one task's annotations."""
    if not annotations:
        return Decision("unlabelled")
    usable = usable_annotations(annotations)
    if not usable:
        reasons = {exclusion_reason(a) for a in annotations}
        reason = "empty_result" if "empty_result" in reasons else "cancelled"
        return Decision("skipped", skip_reason=reason)
    conflict = len({frozenset(a.choices) for a in usable}) > 1
    ground_truth = [a for a in usable if a.ground_truth]
    voters = sorted(ground_truth or usable, key=_annotation_order)
    votes = Counter(label for a in voters for label in a.choices)
    vote_dict = {label: votes[label] for label in labels if votes[label]}
    n_voters = len(voters)

    def outcome(
        resolution: str, labels_: Sequence[str] = (), soft: dict[str, float] | None = None
    ) -> Decision:
        status: TaskStatus = "dropped" if resolution == "tie_dropped" else "labelled"
        return Decision(
            status,
            tuple(labels_),
            soft,
            resolution,
            votes=vote_dict,
            n_voters=n_voters,
            conflict=conflict,
        )

    if exclusive:
        top = max(votes.values())
        winners = [label for label in labels if votes[label] == top]
        if len(winners) == 1:
            resolution = _clear_resolution(voters, bool(ground_truth))
            return outcome(resolution, (winners[0],))
        if ties == "first":
            first = next(a for a in voters if a.choices[0] in winners)
            return outcome("tie_first", first.choices)
        if ties == "soft":
            shares = {label: votes[label] / n_voters for label in vote_dict}
            return outcome("tie_soft", (), shares)
        return outcome("tie_dropped")
    positive = [label for label in labels if 2 * votes[label] > n_voters]
    tied = [label for label in labels if votes[label] and 2 * votes[label] == n_voters]
    if not positive and not tied:
        tied = list(vote_dict)  # everyone chose something, but nothing has a majority
    if not tied:
        resolution = _clear_resolution(voters, bool(ground_truth))
        return outcome(resolution, positive)
    if ties == "first":
        first_choices = set(voters[0].choices)
        chosen = positive + [label for label in tied if label in first_choices]
        ordered = tuple(label for label in labels if label in set(chosen))
        return outcome("tie_first", ordered)
    if ties == "soft":
        shares = {label: votes[label] / n_voters for label in tied}
        return outcome("tie_soft", positive, shares)
    return outcome("tie_dropped")


def agreement_report(
    annotation_sets: Sequence[Sequence[Annotation]],
    *,
    labels: Sequence[str],
    exclusive: bool,
) -> dict[str, Any]:
    """Krippendorff's alpha over the tasks with two or more usable annotations.

    Exclusive tasks: ``alpha`` is nominal alpha over the labels; per label, alpha of the
    one-vs-rest yes/no decision. Multi-label tasks: per label, alpha of the yes/no decision;
    ``alpha`` pools all task × label decisions. Values are ``None`` where alpha is undefined
    (no task with two annotators, or a label nobody chose).
    """
    label_index = {label: i for i, label in enumerate(labels)}
    multi = [usable_annotations(a) for a in annotation_sets]
    multi = [a for a in multi if len(a) >= 2]
    n_labels = len(labels)
    positives = np.zeros((len(multi), n_labels), dtype=np.int64)
    annotators = np.array([len(a) for a in multi], dtype=np.int64)
    for row, task_annotations in enumerate(multi):
        for annotation in task_annotations:
            for label in annotation.choices:
                positives[row, label_index[label]] += 1
    per_label = {
        label: _none_if_nan(nominal_alpha(binary_counts(positives[:, i], annotators)))
        for i, label in enumerate(labels)
    }
    overall_counts: np.ndarray
    if exclusive:
        overall_counts = positives
    else:
        overall_counts = binary_counts(positives.reshape(-1), np.repeat(annotators, n_labels))
    return {
        "method": "krippendorff_alpha_nominal",
        "tasks_with_2plus_annotators": len(multi),
        "alpha": _none_if_nan(nominal_alpha(overall_counts)),
        "observed_agreement": _none_if_nan(observed_agreement(overall_counts)),
        "alpha_per_label": per_label,
    }


def _clear_resolution(voters: Sequence[Annotation], ground_truth: bool) -> str:
    if ground_truth:
        return "ground_truth"
    if len(voters) == 1:
        return "single"
    if len({frozenset(a.choices) for a in voters}) == 1:
        return "unanimous"
    return "majority"


def _annotation_order(annotation: Annotation) -> tuple[int, int]:
    """Earliest first: Label Studio gives annotation ids in creation order."""
    if annotation.annotation_id is None:
        return (1, 0)
    return (0, annotation.annotation_id)


def _none_if_nan(value: float) -> float | None:
    return None if np.isnan(value) else round(value, 6)
