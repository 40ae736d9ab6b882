"""Labeling config → LabelingScheme, against the real configs and templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from textcat_kit.errors import ConfigError
from textcat_kit.labelstudio.config import (
    load_labeling_scheme,
    parse_label_config,
    read_label_config,
    scheme_from_overrides,
)


def test_banking_config_is_exclusive_with_five_labels(real_exports: Path) -> None:
    scheme = load_labeling_scheme(real_exports / "banking77_single" / "label_config.xml")
    assert scheme.choices_name == "label"
    assert scheme.to_name == "text"
    assert scheme.text_field == "text"
    assert scheme.exclusive is True
    assert scheme.labels == (
        "card_arrival",
        "card_linking",
        "exchange_rate",
        "card_payment_wrong_exchange_rate",
        "extra_charge_on_statement",
    )
    assert scheme.control_names == frozenset({"label"})


def test_goemotions_config_is_multilabel_with_28_labels(real_exports: Path) -> None:
    scheme = load_labeling_scheme(real_exports / "goemotions_multi" / "label_config.xml")
    assert scheme.exclusive is False
    assert len(scheme.labels) == 28
    assert scheme.labels[0] == "admiration" and scheme.labels[-1] == "neutral"


def test_official_template_yaml_config(labelstudio_data: Path) -> None:
    path = labelstudio_data / "label-studio-templates" / "text-classification_config.yml"
    assert read_label_config(path).lstrip().startswith("<View>")
    scheme = load_labeling_scheme(path)
    assert scheme.choices_name == "sentiment"
    assert scheme.labels == ("Positive", "Negative", "Neutral")
    assert scheme.exclusive is True
    assert scheme.text_field == "text"


def test_taxonomy_config_is_refused_naming_the_tag(labelstudio_data: Path) -> None:
    path = labelstudio_data / "label-studio-templates" / "taxonomy_config.xml"
    with pytest.raises(ConfigError, match=r"\[E103\].*<Taxonomy name=\"taxonomy\">.*not supported"):
        load_labeling_scheme(path)
    with pytest.raises(ConfigError, match=r"\[E103\]"):
        load_labeling_scheme(path, choices_name="taxonomy")


def test_two_choices_need_a_name(labelstudio_data: Path) -> None:
    path = (
        labelstudio_data / "awesome-label-studio-configs" / "two-level-sentiment-label-config.xml"
    )
    with pytest.raises(ConfigError, match=r"\[E104\].*'sentiment', 'other-props'"):
        load_labeling_scheme(path)
    sentiment = load_labeling_scheme(path, choices_name="sentiment")
    assert sentiment.exclusive is True
    assert sentiment.labels == ("Positive", "Neutral", "Negative")
    assert sentiment.text_field == "tweet"
    props = load_labeling_scheme(path, choices_name="other-props")
    assert props.exclusive is False
    # The Choice values sit next to a <View><Header/></View> inside the Choices.
    assert props.labels == ("Descriptive", "Emotional", "Mixed", "Ambigous", "Sarcams")
    assert {"sentiment", "other-props"} <= props.control_names


def test_unknown_choices_name_lists_the_real_ones(real_exports: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[E105\].*\"intent\".*'label'"):
        load_labeling_scheme(
            real_exports / "banking77_single" / "label_config.xml", choices_name="intent"
        )


def test_overrides_win_over_the_config(real_exports: Path) -> None:
    scheme = load_labeling_scheme(
        real_exports / "banking77_single" / "label_config.xml",
        exclusive=False,
        labels=["a", "b", "a"],
        text_field="body",
    )
    assert scheme.exclusive is False
    assert scheme.labels == ("a", "b")
    assert scheme.text_field == "body"


def test_alias_is_the_label_and_single_is_the_default() -> None:
    scheme = parse_label_config(
        '<View><Text name="t" value="$body"/><Choices name="c" toName="t">'
        '<Choice value="Long name" alias="short"/><Choice value="other"/></Choices></View>'
    )
    assert scheme.labels == ("short", "other")
    assert scheme.exclusive is True
    assert scheme.text_field == "body"


@pytest.mark.parametrize(
    ("xml", "code"),
    [
        ("<View><Text name='t' value='$x'/>", "E101"),
        ("<View><Text name='t' value='$x'/><TextArea name='a' toName='t'/></View>", "E102"),
        (
            "<View><Image name='i' value='$img'/><Choices name='c' toName='i'>"
            "<Choice value='a'/></Choices></View>",
            "E106",
        ),
        ("<View><Choices name='c' toName='nowhere'><Choice value='a'/></Choices></View>", "E106"),
        (
            "<View><Text name='t' value='static'/><Choices name='c' toName='t'>"
            "<Choice value='a'/></Choices></View>",
            "E107",
        ),
        (
            "<View><Text name='t' value='$x'/><Choices name='c' toName='t' value='$options'/>"
            "</View>",
            "E108",
        ),
        (
            "<View><Text name='t' value='$x'/><Choices name='c' toName='t' choice='several'>"
            "<Choice value='a'/></Choices></View>",
            "E109",
        ),
    ],
)
def test_bad_configs_have_coded_errors(xml: str, code: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[{code}\]"):
        parse_label_config(xml, source="cfg.xml")


def test_dynamic_choices_work_with_a_label_override() -> None:
    scheme = parse_label_config(
        "<View><Text name='t' value='$x'/><Choices name='c' toName='t' value='$options'/></View>",
        labels=["x", "y"],
    )
    assert scheme.labels == ("x", "y")


def test_yaml_without_config_entry(tmp_path: Path) -> None:
    path = tmp_path / "template.yml"
    path.write_text("title: nothing here\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[E110\]"):
        read_label_config(path)


def test_scheme_from_overrides_has_no_control_names() -> None:
    scheme = scheme_from_overrides(
        choices_name="c", text_field="text", labels=["a"], exclusive=True
    )
    assert scheme.control_names == frozenset()
    assert scheme.to_name == "text"
