"""The ONNX component as a spaCy component: serialisation, errors, scoring, pipeline surgery."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
from onnx_testing import EXCLUSIVE_CONFIG, LABELS, PARITY_TEXTS, TRAIN
from spacy.training import Example

from textcat_kit.errors import ConfigError
from textcat_kit.onnx.component import FACTORY_NAME, OnnxTextCategorizer
from textcat_kit.onnx.export import export_onnx_pipeline


def cats(nlp: spacy.Language, texts: list[str]) -> np.ndarray:
    return np.array([[doc.cats[label] for label in LABELS] for doc in nlp.pipe(texts)])


def test_component_bytes_round_trip(exclusive_pipeline: Path, export) -> None:
    nlp = spacy.load(export(exclusive_pipeline))
    component = nlp.get_pipe("textcat")
    assert isinstance(component, OnnxTextCategorizer)
    fresh = spacy.blank("en")
    copy = fresh.add_pipe(
        FACTORY_NAME, name="textcat", config={"window": component.window, "stride": 12}
    )
    assert isinstance(copy, OnnxTextCategorizer)
    copy.from_bytes(component.to_bytes())
    assert copy.labels == component.labels == tuple(LABELS)
    np.testing.assert_allclose(cats(fresh, PARITY_TEXTS), cats(nlp, PARITY_TEXTS), atol=1e-6)


def test_pipeline_disk_round_trip_has_no_pickle_or_absolute_paths(
    exclusive_pipeline: Path, export, tmp_path: Path
) -> None:
    nlp = spacy.load(export(exclusive_pipeline))
    nlp.to_disk(tmp_path / "copy")
    files = sorted(p.name for p in (tmp_path / "copy" / "textcat").iterdir())
    assert files == ["cfg.json", "head.msgpack", "model.onnx", "tokenizer.json"]
    assert not list((tmp_path / "copy").rglob("*.pkl"))
    assert str(tmp_path) not in (tmp_path / "copy" / "textcat" / "cfg.json").read_text()
    reloaded = spacy.load(tmp_path / "copy")
    np.testing.assert_allclose(cats(reloaded, PARITY_TEXTS), cats(nlp, PARITY_TEXTS), atol=1e-6)
    # Saving a pipeline into the directory it was loaded from keeps the model file.
    reloaded.to_disk(tmp_path / "copy")
    np.testing.assert_allclose(
        cats(spacy.load(tmp_path / "copy"), PARITY_TEXTS), cats(nlp, PARITY_TEXTS), atol=1e-6
    )


def test_call_and_pipe_agree_for_every_batch_size(exclusive_pipeline: Path, export) -> None:
    nlp = spacy.load(export(exclusive_pipeline))
    single = np.array([[nlp(text).cats[label] for label in LABELS] for text in PARITY_TEXTS])
    for batch_size in (1, 3, 64):
        docs = nlp.pipe(PARITY_TEXTS, batch_size=batch_size)
        batched = np.array([[doc.cats[label] for label in LABELS] for doc in docs])
        np.testing.assert_allclose(batched, single, atol=1e-5)


def test_labels_exclusivity_and_scores(
    exclusive_pipeline: Path, multilabel_pipeline: Path, export
) -> None:
    exclusive = spacy.load(export(exclusive_pipeline))
    multilabel = spacy.load(export(multilabel_pipeline))
    assert exclusive.get_pipe("textcat").is_exclusive is True
    assert multilabel.get_pipe("textcat_multilabel").is_exclusive is False
    sums = cats(exclusive, PARITY_TEXTS[1:]).sum(axis=1)
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    examples = [
        Example.from_dict(
            exclusive.make_doc(text),
            {"cats": {label: float(label == labels[0]) for label in LABELS}},
        )
        for text, labels in TRAIN
    ]
    trained = spacy.load(exclusive_pipeline)
    got = exclusive.evaluate(examples)
    expected = trained.evaluate(examples)
    assert got["cats_score"] == pytest.approx(expected["cats_score"], abs=1e-9)
    assert got["cats_macro_auc"] == pytest.approx(expected["cats_macro_auc"], abs=1e-3)


def test_unloaded_component_says_how_to_create_it() -> None:
    nlp = spacy.blank("en")
    component = nlp.add_pipe(FACTORY_NAME)
    with pytest.raises(ConfigError, match=r"\[E171\].*export-onnx"):
        nlp("some text")
    with pytest.raises(ConfigError, match=r"\[E171\]"):
        component.to_bytes()
    with pytest.raises(ConfigError, match=r"\[E171\]"):
        nlp.initialize()


@pytest.mark.parametrize(
    "setting",
    [{"window": 0}, {"stride": 0}, {"max_batch_items": 0}, {"max_padding": -0.1}],
)
def test_invalid_windows_and_batching_are_rejected(setting: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=r"\[E174\]"):
        spacy.blank("en").add_pipe(FACTORY_NAME, config=setting)


def test_padding_bound_changes_the_calls_not_the_scores(exclusive_pipeline: Path, export) -> None:
    """max_padding 0 runs every window length on its own; a huge bound pads all into one
    call. Same scores either way; the bound only decides how many encoder calls run."""
    nlp = spacy.load(export(exclusive_pipeline))
    encoder = nlp.get_pipe("textcat").encoder  # type: ignore[attr-defined]
    calls: list[int] = []
    run_batch = encoder.run_batch

    def counted(windows, settings):  # type: ignore[no-untyped-def]
        calls.append(len(windows))
        return run_batch(windows, settings)

    encoder.run_batch = counted
    results = {}
    for max_padding in (0.0, 1e9):
        encoder.max_padding = max_padding
        calls.clear()
        results[max_padding] = cats(nlp, PARITY_TEXTS)
        results[f"calls {max_padding}"] = len(calls)
    np.testing.assert_allclose(results[0.0], results[1e9], atol=1e-5)
    assert results["calls 0.0"] > results["calls 1000000000.0"]


def test_missing_model_file_is_reported(exclusive_pipeline: Path, export, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(export(exclusive_pipeline), broken)
    (broken / "textcat" / "model.onnx").unlink()
    with pytest.raises(ConfigError, match=r"\[E172\].*model\.onnx"):
        spacy.load(broken)


def test_exported_pipeline_metadata_is_torch_free(exclusive_pipeline: Path, export) -> None:
    out = export(exclusive_pipeline)
    meta = json.loads((out / "meta.json").read_text())
    assert not any("transformers" in r or "torch" in r for r in meta["requirements"])
    assert any(r.startswith("onnxruntime") for r in meta["requirements"])
    assert any(r.startswith("spacy-textcat-kit") for r in meta["requirements"])
    config = (out / "config.cfg").read_text()
    assert "spacy-transformers" not in config
    assert f'factory = "{FACTORY_NAME}"' in config


def test_export_refuses_to_overwrite(exclusive_pipeline: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"\[E173\]"):
        export_onnx_pipeline(exclusive_pipeline, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_export_needs_a_transformer_textcat(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat")
    nlp.initialize(lambda: [Example.from_dict(nlp.make_doc("x"), {"cats": {"a": 1.0, "b": 0.0}})])
    nlp.to_disk(tmp_path / "bow")
    with pytest.raises(ConfigError, match=r"\[E165\]"):
        export_onnx_pipeline(tmp_path / "bow", tmp_path / "out")


def test_other_components_are_kept_in_place(exclusive_pipeline: Path, tmp_path: Path) -> None:
    """Calibrator and decision components (fitted by `tune`) survive the export, as does a
    component before the classifier; the final scores and decisions stay the same."""
    from textcat_kit.data.records import Record, write_records
    from textcat_kit.tuning import tune_pipeline

    dev = tmp_path / "dev.spacy"
    write_records([Record(text, labels[:1]) for text, labels in TRAIN * 2], dev, LABELS)
    with pytest.warns(UserWarning, match=r"\[W001\]"):  # few dev examples per label
        tune_pipeline(exclusive_pipeline, dev, tmp_path / "tuned", n_folds=2)
    tuned = spacy.load(tmp_path / "tuned")
    tuned.add_pipe("sentencizer", first=True)
    tuned.to_disk(tmp_path / "tuned")
    export_onnx_pipeline(tmp_path / "tuned", tmp_path / "onnx")
    exported = spacy.load(tmp_path / "onnx")
    expected_names = [n for n in tuned.pipe_names if n != "transformer"]
    assert exported.pipe_names == expected_names
    assert exported.pipe_names.index("textcat") == 1
    for ours, theirs in zip(exported.pipe(PARITY_TEXTS), map(tuned, PARITY_TEXTS), strict=True):
        assert ours.cats == pytest.approx(theirs.cats, abs=1e-4)
        if ours.text.strip():
            assert ours._.decided_labels == theirs._.decided_labels


def test_exported_pipeline_runs_without_torch_in_a_subprocess(
    exclusive_pipeline: Path, export
) -> None:
    """torch, transformers and spacy-transformers made un-importable: same scores."""
    out = export(exclusive_pipeline)
    code = f"""
import json, sys
from textcat_kit.testing.import_blocker import block_imports
block_imports()
import spacy
import textcat_kit.onnx.component  # registers the factory (the entry point does it once installed)
nlp = spacy.load({str(out)!r})
cats = [[d.cats[l] for l in {LABELS!r}] for d in nlp.pipe({PARITY_TEXTS!r})]
stack = ("torch", "transformers", "spacy_transformers")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in stack)
print(json.dumps({{"cats": cats, "loaded": loaded}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["loaded"] == []
    np.testing.assert_allclose(payload["cats"], cats(spacy.load(out), PARITY_TEXTS), atol=1e-5)


def test_cli_exports_and_reports(exclusive_pipeline: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from textcat_kit.onnx.cli import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["export-onnx", str(exclusive_pipeline), str(tmp_path / "int8"), "--quantize", "int8"]
    )
    assert result.exit_code == 0, result.output
    assert "ONNX int8" in result.output and "max |Δ cats|" in result.output
    assert spacy.load(tmp_path / "int8").pipe_names == ["textcat"]
    again = runner.invoke(app, ["export-onnx", str(exclusive_pipeline), str(tmp_path / "int8")])
    assert again.exit_code == 1
    assert "[E173]" in again.output
    bad = runner.invoke(
        app, ["export-onnx", str(exclusive_pipeline), str(tmp_path / "x"), "--quantize", "int4"]
    )
    assert bad.exit_code != 0


def test_config_files_resolve_and_override_the_model_name() -> None:
    config = spacy.util.load_config(
        EXCLUSIVE_CONFIG, overrides={"paths.transformer_name": "some/local-dir"}, interpolate=True
    )
    model = config["components"]["transformer"]["model"]
    assert model["name"] == "some/local-dir"
    assert model["get_spans"]["window"] == 128 and model["get_spans"]["stride"] == 96
    textcat = config["components"]["textcat"]["model"]
    assert textcat["@architectures"] == "spacy.TextCatReduce.v1"
    assert textcat["tok2vec"]["pooling"]["@layers"] == "reduce_mean.v1"
