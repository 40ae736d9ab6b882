"""Reading a Label Studio labeling config into a :class:`LabelingScheme`.

The labeling config (XML, or the ``config:`` entry of an official template's YAML) is the
only place that says which labels exist, which ``<Choices>`` tag holds them, whether the
task is exclusive (``choice="single"``) or multi-label (``choice="multiple"``) and which
task field holds the text (``<Text value="$field">``). Every importer and the pusher read
the same scheme, so a label that the config does not declare is an error everywhere.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import srsly

from ..errors import ConfigError, Errors

#: Object tags whose content is plain text a spaCy tokenizer can read.
TEXT_TAGS = frozenset({"text", "hypertext"})
#: Control tags whose results are hierarchical paths, not flat choices.
HIERARCHICAL_TAGS = frozenset({"taxonomy"})
_EXCLUSIVE_MODES = {"single": True, "single-radio": True, "multiple": False}


@dataclass(frozen=True)
class LabelingScheme:
    """What the importer and the pusher need to know about one ``<Choices>`` tag.

    ``control_names`` lists every control tag of the config (Choices, TextArea, ...): a
    result whose ``from_name`` is not among them means the export and the config do not
    belong together. It is empty when the scheme was built from overrides only, and then
    that check is skipped.
    """

    choices_name: str
    to_name: str
    text_field: str
    labels: tuple[str, ...]
    exclusive: bool
    control_names: frozenset[str] = field(default_factory=frozenset)
    source: str = "<overrides>"

    def with_overrides(
        self,
        *,
        labels: Sequence[str] | None = None,
        exclusive: bool | None = None,
        text_field: str | None = None,
    ) -> LabelingScheme:
        """A copy with the given settings replaced (``None`` keeps the config's value)."""
        return replace(
            self,
            labels=_unique(labels) if labels is not None else self.labels,
            exclusive=self.exclusive if exclusive is None else exclusive,
            text_field=text_field or self.text_field,
        )


def scheme_from_overrides(
    *,
    choices_name: str,
    text_field: str,
    labels: Sequence[str],
    exclusive: bool,
    to_name: str | None = None,
) -> LabelingScheme:
    """A scheme for exports whose labeling config is not at hand (every field given)."""
    return LabelingScheme(
        choices_name=choices_name,
        to_name=to_name or text_field,
        text_field=text_field,
        labels=_unique(labels),
        exclusive=exclusive,
    )


def read_label_config(path: Path) -> str:
    """The labeling config XML from an ``.xml`` file or an official template's YAML."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() not in {".yml", ".yaml"}:
        return text
    data = srsly.yaml_loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("config"), str):
        raise ConfigError(Errors.E110.format(source=path))
    return data["config"]


def load_labeling_scheme(
    path: Path,
    *,
    choices_name: str | None = None,
    labels: Sequence[str] | None = None,
    exclusive: bool | None = None,
    text_field: str | None = None,
) -> LabelingScheme:
    """Read the labeling config at ``path`` and pick the Choices to import (see
    :func:`parse_label_config` for the overrides)."""
    return parse_label_config(
        read_label_config(path),
        source=str(path),
        choices_name=choices_name,
        labels=labels,
        exclusive=exclusive,
        text_field=text_field,
    )


def parse_label_config(
    xml: str,
    *,
    source: str = "<label config>",
    choices_name: str | None = None,
    labels: Sequence[str] | None = None,
    exclusive: bool | None = None,
    text_field: str | None = None,
) -> LabelingScheme:
    """Parse labeling config XML into a :class:`LabelingScheme`.

    ``choices_name`` selects the ``<Choices>`` tag when there are several; ``labels``,
    ``exclusive`` and ``text_field`` override what the config says (``labels`` is required
    for Choices whose options come from the task data, ``value="$options"``).
    """
    try:
        root = ET.fromstring(xml.strip())
    except ET.ParseError as err:
        raise ConfigError(Errors.E101.format(source=source, detail=err)) from err
    tags_by_name = {
        element.attrib["name"]: element for element in root.iter() if "name" in element.attrib
    }
    controls = [element for element in root.iter() if _is_control(element)]
    choices = [element for element in controls if _tag(element) == "choices"]
    hierarchical = [element for element in controls if _tag(element) in HIERARCHICAL_TAGS]
    if choices_name is None:
        if not choices:
            if hierarchical:
                raise ConfigError(_taxonomy_error(hierarchical[0], source))
            found = ", ".join(f"<{c.tag} name={c.attrib['name']!r}>" for c in controls) or "none"
            raise ConfigError(Errors.E102.format(source=source, found=found))
        if len(choices) > 1:
            names = ", ".join(repr(c.attrib["name"]) for c in choices)
            raise ConfigError(Errors.E104.format(source=source, names=names))
        chosen = choices[0]
    else:
        chosen_or_none = tags_by_name.get(choices_name)
        if chosen_or_none is not None and _tag(chosen_or_none) in HIERARCHICAL_TAGS:
            raise ConfigError(_taxonomy_error(chosen_or_none, source))
        if chosen_or_none is None or _tag(chosen_or_none) != "choices":
            names = ", ".join(repr(c.attrib["name"]) for c in choices) or "none"
            raise ConfigError(Errors.E105.format(source=source, name=choices_name, names=names))
        chosen = chosen_or_none
    name = chosen.attrib["name"]
    to_name, config_text_field = _text_target(chosen, tags_by_name, source)
    mode = chosen.attrib.get("choice", "single").strip().lower()
    if exclusive is None:
        if mode not in _EXCLUSIVE_MODES:
            raise ConfigError(Errors.E109.format(source=source, name=name, mode=mode))
        exclusive = _EXCLUSIVE_MODES[mode]
    if labels is None:
        labels = _choice_values(chosen)
        if not labels:
            detail = (
                f"its options come from the task field {chosen.attrib['value']!r}"
                if "value" in chosen.attrib
                else "it has no <Choice> children"
            )
            raise ConfigError(Errors.E108.format(source=source, name=name, detail=detail))
    if text_field is None:
        if config_text_field is None:
            text_tag = tags_by_name[to_name]
            raise ConfigError(
                Errors.E107.format(
                    source=source,
                    tag=text_tag.tag,
                    name=to_name,
                    value=text_tag.attrib.get("value", ""),
                )
            )
        text_field = config_text_field
    return LabelingScheme(
        choices_name=name,
        to_name=to_name,
        text_field=text_field,
        labels=_unique(labels),
        exclusive=exclusive,
        control_names=frozenset(c.attrib["name"] for c in controls),
        source=source,
    )


def _tag(element: ET.Element) -> str:
    return element.tag.lower()


def _is_control(element: ET.Element) -> bool:
    """Control tags (the ones that produce results) have both ``name`` and ``toName``."""
    return "name" in element.attrib and "toName" in element.attrib


def _taxonomy_error(element: ET.Element, source: str) -> str:
    return Errors.E103.format(source=source, tag=element.tag, name=element.attrib.get("name"))


def _text_target(
    choices: ET.Element, tags_by_name: dict[str, ET.Element], source: str
) -> tuple[str, str | None]:
    """The name of the text tag the Choices annotate and the task field it reads."""
    name = choices.attrib["name"]
    targets = [t.strip() for t in choices.attrib["toName"].split(",") if t.strip()]
    missing = [t for t in targets if t not in tags_by_name]
    text_targets = [t for t in targets if t in tags_by_name and _tag(tags_by_name[t]) in TEXT_TAGS]
    if missing or len(text_targets) != 1:
        if missing:
            problem = f"not a tag of the config ({', '.join(missing)})"
        elif not text_targets:
            kinds = ", ".join(f"<{tags_by_name[t].tag}>" for t in targets)
            problem = f"not a text tag ({kinds})"
        else:
            problem = f"several text tags ({', '.join(text_targets)})"
        raise ConfigError(
            Errors.E106.format(
                source=source, name=name, to_name=choices.attrib["toName"], problem=problem
            )
        )
    to_name = text_targets[0]
    value = tags_by_name[to_name].attrib.get("value", "").strip()
    if value.startswith("$") and len(value) > 1:
        return to_name, value[1:]
    return to_name, None


def _choice_values(choices: ET.Element) -> list[str]:
    """The label of each ``<Choice>`` below the Choices tag, in config order.

    Label Studio stores a choice's ``alias`` in the results when it has one, so the alias
    is the label. Choices may sit inside layout ``<View>`` tags, hence ``iter``.
    """
    values = []
    for element in choices.iter():
        if element is choices or _tag(element) != "choice":
            continue
        value = element.attrib.get("alias") or element.attrib.get("value")
        if value is not None:
            values.append(value)
    return values


def _unique(labels: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(labels))
