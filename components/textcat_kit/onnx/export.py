"""Export a trained spacy-transformers text classifier to a torch-free ONNX Runtime pipeline.

``export_onnx_pipeline(model_dir, out_dir)`` loads the trained pipeline, finds the
``transformer`` + ``textcat``/``textcat_multilabel`` pair, and writes a spaCy pipeline
directory in which that pair is replaced by one ``textcat_kit_onnx_textcat`` component with
the same name and position. Every other component (calibrator, decision thresholds, rules)
is kept as it is. The new component holds:

* ``model.onnx`` — the fine-tuned encoder exported with ``torch.onnx.export`` (fp32), or
  its dynamically quantised int8 version (``onnxruntime.quantization.quantize_dynamic``);
* ``tokenizer.json`` — the trained pipeline's fast tokenizer, exactly as configured;
* ``head.msgpack`` — the output layer's weights and the doc reductions;
* ``cfg.json`` — labels, scorer settings, tokenizer settings.

The export then loads the result and compares its ``doc.cats`` with the trained pipeline
on a few check texts (an empty one, one word, and texts longer than a window) and reports
the largest difference; an fp32 export that disagrees by more than ``1e-4`` is an error.

This module needs torch, transformers and spacy-transformers; the exported pipeline does not.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import spacy
from spacy.language import Language

from .. import __version__
from ..errors import ConfigError
from ..errors import Errors as OnnxErrors
from ..pipeline.fitted import OwnsFittedState
from .component import FACTORY_NAME, OnnxTextCategorizer
from .head import ClassifierHead
from .pooling import REDUCTIONS
from .tokenization import TokenizerSettings

LISTENER_ARCHITECTURE = "spacy-transformers.TransformerListener.v1"
STRIDED_SPANS = "spacy-transformers.strided_spans.v1"
TRANSFORMER_MODELS = (
    "spacy-transformers.TransformerModel.v1",
    "spacy-transformers.TransformerModel.v2",
    "spacy-transformers.TransformerModel.v3",
)
REDUCE_ARCHITECTURES = ("spacy.TextCatReduce.v1",)
MEAN_ONLY_ARCHITECTURES = ("spacy.TextCatCNN.v1", "spacy.TextCatCNN.v2")
TORCH_ONLY_REQUIREMENTS = ("spacy-transformers", "torch", "transformers")
RUNTIME_REQUIREMENTS = (
    f"spacy-textcat-kit>={__version__}",
    "onnxruntime>=1.17",
    "tokenizers>=0.15",
)
ONNX_OPSET = 17
FP32_TOLERANCE = 1e-4
ENCODER_TOLERANCE = 1e-3

DEFAULT_CHECK_TEXTS = (
    "",
    "card",
    "My card was declined at the supermarket this morning, why?",
    " ".join(
        [
            "The transfer I made on Monday still has not arrived, and the app shows it as "
            "pending although the money already left my account."
        ]
        * 12
    ),
    "Où est ma carte?  Ça fait 2 semaines… 🤔",
)


class Quantization(str, Enum):
    """Weight quantisation of the exported encoder."""

    int8 = "int8"


@dataclass
class ExportReport:
    """What the export wrote and how close the exported pipeline is to the trained one.

    max_abs_diff: largest ``|Δ doc.cats|`` over the check texts and labels.
    decision_agreement: share of check texts whose decided labels agree (argmax for
        exclusive classes, ``score >= threshold`` per label for multi-label).
    """

    out_dir: Path
    component: str
    labels: list[str]
    exclusive: bool
    quantization: Quantization | None
    model_bytes: int
    max_abs_diff: float
    decision_agreement: float
    kept_components: list[str] = field(default_factory=list)

    def summary(self) -> str:
        kind = self.quantization.value if self.quantization else "fp32"
        return (
            f"Exported '{self.component}' ({len(self.labels)} labels, "
            f"{'exclusive' if self.exclusive else 'multi-label'}) as ONNX {kind} "
            f"({self.model_bytes / 1e6:.1f} MB) to {self.out_dir}; pipeline: "
            f"{self.kept_components}. Check texts: max |Δ cats| = {self.max_abs_diff:.2e}, "
            f"decided labels agree on {self.decision_agreement:.0%}."
        )


@dataclass
class _TransformerTextcat:
    """The pair of components the export replaces, and what it needs from their configs."""

    transformer_name: str
    textcat_name: str
    exclusive: bool
    reductions: tuple[str, ...]
    window: int
    stride: int
    textcat_config: dict[str, Any]


def export_onnx_pipeline(
    model_dir: Path,
    out_dir: Path,
    *,
    quantize: Quantization | None = None,
    optimize: bool = True,
    check_texts: Sequence[str] = DEFAULT_CHECK_TEXTS,
) -> ExportReport:
    """Write the ONNX Runtime version of the pipeline in ``model_dir`` to ``out_dir``.

    model_dir: a trained pipeline (``spacy.load``-able) with a transformer and a textcat
        that listens to it.
    out_dir: a new or empty directory.
    quantize: ``Quantization.int8`` for dynamic int8 weights (smaller and faster on CPU,
        scores move slightly), ``None`` for fp32 (same scores within 1e-4).
    optimize: fuse the graph with ONNX Runtime's transformer optimizer (faster on CPU; the
        model then needs ONNX Runtime, not just any ONNX runtime).
    check_texts: texts on which the exported pipeline is compared with the trained one.
    """
    _require_torch_stack()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(OnnxErrors.E173.format(path=out_dir))
    nlp = spacy.load(model_dir)
    pair = find_transformer_textcat(nlp, model_dir)
    texts = list(check_texts)
    reference = [dict(doc.cats) for doc in (nlp(text) for text in texts)]
    trf_pipe: Any = nlp.get_pipe(pair.transformer_name)
    textcat: Any = nlp.get_pipe(pair.textcat_name)
    hf_tokenizer = trf_pipe.model.tokenizer
    tokenizer_settings = _tokenizer_settings(hf_tokenizer, pair, model_dir)
    head = ClassifierHead(
        exclusive=pair.exclusive,
        reductions=pair.reductions,
        weights=_as_numpy(textcat.model.get_ref("output_layer").get_param("W")),
        bias=_as_numpy(textcat.model.get_ref("output_layer").get_param("b")),
    )
    labels = list(textcat.labels)
    transformer = trf_pipe.model.transformer
    with tempfile.TemporaryDirectory(prefix="textcat-kit-onnx-") as tmp:
        traced_path = Path(tmp) / "encoder.traced.onnx"
        export_encoder(transformer, hf_tokenizer, traced_path, tokenizer_settings)
        verify_encoder(traced_path, transformer, hf_tokenizer, tokenizer_settings)
        fp32_path = traced_path
        if optimize:
            fp32_path = Path(tmp) / "encoder.onnx"
            optimize_encoder(traced_path, fp32_path, transformer)
            verify_encoder(fp32_path, transformer, hf_tokenizer, tokenizer_settings)
        model_path = fp32_path
        if quantize is not None:
            model_path = Path(tmp) / "encoder.int8.onnx"
            quantize_encoder(fp32_path, model_path, quantize)
        component = _replace_pair(nlp, pair)
        component.load_model(
            labels=labels,
            head=head,
            tokenizer_json=hf_tokenizer.backend_tokenizer.to_str(),
            tokenizer_settings=tokenizer_settings,
            model=model_path.read_bytes(),
        )
        if isinstance(textcat, OwnsFittedState):  # tuned: calibration + decisions move along
            component.fitted = textcat.fitted
        nlp.meta["requirements"] = _runtime_requirements(nlp.meta.get("requirements", []))
        nlp.to_disk(out_dir)
    _clean_saved_config(out_dir, removed=[pair.transformer_name])
    exported = spacy.load(out_dir)
    predicted = [dict(doc.cats) for doc in exported.pipe(texts)]
    max_diff, agreement = compare_cats(
        reference, predicted, exclusive=pair.exclusive, threshold=_threshold(textcat)
    )
    report = ExportReport(
        out_dir=out_dir,
        component=pair.textcat_name,
        labels=labels,
        exclusive=pair.exclusive,
        quantization=quantize,
        model_bytes=(out_dir / pair.textcat_name / "model.onnx").stat().st_size,
        max_abs_diff=max_diff,
        decision_agreement=agreement,
        kept_components=list(exported.pipe_names),
    )
    if quantize is None and max_diff > FP32_TOLERANCE:
        raise ConfigError(
            OnnxErrors.E178.format(
                out_dir=out_dir, model_dir=model_dir, max_diff=max_diff, tolerance=FP32_TOLERANCE
            )
        )
    return report


def find_transformer_textcat(nlp: Language, model_dir: Path) -> _TransformerTextcat:
    """Find the textcat fed by a transformer listener and check we can reproduce it.

    Any spaCy ``TextCategorizer`` counts (``textcat``, ``textcat_multilabel`` and
    subclasses such as textcat-kit's weighted textcats) whose ``model.tok2vec`` is a
    ``TransformerListener``.
    """
    from spacy.pipeline import MultiLabel_TextCategorizer, TextCategorizer

    components = nlp.config["components"]
    candidates = [
        name
        for name, pipe in nlp.pipeline
        if isinstance(pipe, TextCategorizer)
        and components[name].get("model", {}).get("tok2vec", {}).get("@architectures")
        == LISTENER_ARCHITECTURE
    ]
    if not candidates:
        raise ConfigError(OnnxErrors.E165.format(model_dir=model_dir, pipe_names=nlp.pipe_names))
    if len(candidates) > 1:
        raise ConfigError(
            OnnxErrors.E166.format(
                model_dir=model_dir, detail=f"{len(candidates)} text classifiers: {candidates}"
            )
        )
    textcat_name = candidates[0]
    textcat_config = components[textcat_name]
    model_config = textcat_config["model"]
    listener = model_config["tok2vec"]
    transformer_name = _upstream_transformer(nlp, listener.get("upstream", "*"), model_dir)
    other_listeners = [
        name for name in nlp.pipe_names if name != textcat_name and _uses_listener(components[name])
    ]
    if other_listeners:
        raise ConfigError(
            OnnxErrors.E179.format(
                name=transformer_name, model_dir=model_dir, others=other_listeners
            )
        )
    exclusive = not isinstance(nlp.get_pipe(textcat_name), MultiLabel_TextCategorizer)
    pooling = listener.get("pooling", {}).get("@layers")
    if pooling != "reduce_mean.v1":
        raise ConfigError(
            OnnxErrors.E167.format(
                name=textcat_name,
                model_dir=model_dir,
                what="listener pooling",
                value=pooling,
                supported="reduce_mean.v1",
            )
        )
    architecture = model_config.get("@architectures")
    if architecture in REDUCE_ARCHITECTURES:
        reductions = tuple(r for r in REDUCTIONS if model_config.get(f"use_reduce_{r}"))
    elif architecture in MEAN_ONLY_ARCHITECTURES:
        reductions = ("mean",)
    else:
        raise ConfigError(
            OnnxErrors.E167.format(
                name=textcat_name,
                model_dir=model_dir,
                what="architecture",
                value=architecture,
                supported=", ".join(REDUCE_ARCHITECTURES + MEAN_ONLY_ARCHITECTURES),
            )
        )
    trf_model = components[transformer_name]["model"]
    if trf_model.get("@architectures") not in TRANSFORMER_MODELS:
        raise ConfigError(
            OnnxErrors.E167.format(
                name=transformer_name,
                model_dir=model_dir,
                what="architecture",
                value=trf_model.get("@architectures"),
                supported=", ".join(TRANSFORMER_MODELS),
            )
        )
    spans = trf_model.get("get_spans", {})
    if spans.get("@span_getters") != STRIDED_SPANS:
        raise ConfigError(
            OnnxErrors.E167.format(
                name=transformer_name,
                model_dir=model_dir,
                what="span getter",
                value=spans.get("@span_getters"),
                supported=STRIDED_SPANS,
            )
        )
    return _TransformerTextcat(
        transformer_name=transformer_name,
        textcat_name=textcat_name,
        exclusive=exclusive,
        reductions=reductions,
        window=int(spans["window"]),
        stride=int(spans["stride"]),
        textcat_config=dict(textcat_config),
    )


def export_encoder(
    transformer: Any, hf_tokenizer: Any, path: Path, settings: TokenizerSettings
) -> None:
    """Export the Hugging Face encoder to ONNX (``last_hidden_state`` only).

    Batch and sequence axes are dynamic. The example batch is padded on purpose: traced on
    an all-ones attention mask, some attention implementations drop the mask altogether.
    """
    import torch

    transformer.eval()
    feeds = _check_feeds(hf_tokenizer, settings)
    input_names = list(feeds)
    wrapper = _LastHiddenState(transformer, input_names).eval()
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    dynamic_axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(torch.from_numpy(feeds[name]) for name in input_names),
            str(path),
            input_names=input_names,
            output_names=["last_hidden_state"],
            dynamic_axes=dynamic_axes,
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def optimize_encoder(fp32_path: Path, out_path: Path, transformer: Any) -> None:
    """Fuse attention, layer norms and GELU with ONNX Runtime's transformer optimizer.

    The fused graph uses ONNX Runtime's contrib operators (``Attention``,
    ``SkipLayerNormalization``, ...), which run faster on CPU than the traced graph of
    primitive operators and quantise into fused int8 attention.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    config = transformer.config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_model(
            str(fp32_path),
            model_type="bert",
            num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
            hidden_size=int(getattr(config, "hidden_size", 0) or 0),
            opt_level=0,
        )
    optimized.save_model_to_file(str(out_path))


def verify_encoder(
    path: Path, transformer: Any, hf_tokenizer: Any, settings: TokenizerSettings
) -> float:
    """Largest |difference| of the ONNX and PyTorch hidden states on a padded check batch."""
    import onnxruntime as ort
    import torch
    import transformers

    feeds = _check_feeds(hf_tokenizer, settings)
    wrapper = _LastHiddenState(transformer, list(feeds)).eval()
    with torch.no_grad():
        expected = wrapper(*(torch.from_numpy(array) for array in feeds.values())).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["last_hidden_state"], feeds)
    mask = feeds["attention_mask"].astype(bool)
    max_diff = float(np.abs(got - expected)[mask].max())
    if max_diff > ENCODER_TOLERANCE:
        raise ConfigError(
            OnnxErrors.E169.format(
                max_diff=max_diff,
                tolerance=ENCODER_TOLERANCE,
                transformers_version=transformers.__version__,
                model_class=type(transformer).__name__,
            )
        )
    return max_diff


def _check_feeds(hf_tokenizer: Any, settings: TokenizerSettings) -> dict[str, np.ndarray]:
    """A padded batch of two windows, as int64 arrays keyed by the encoder's input names."""
    input_names = ["input_ids", "attention_mask"]
    if settings.use_type_ids:
        input_names.append("token_type_ids")
    example = hf_tokenizer(
        ["a short window", "a longer example window with several more words in it, to pad"],
        add_special_tokens=True,
        padding="longest",
        return_tensors="np",
        return_token_type_ids=settings.use_type_ids,
    )
    return {name: np.asarray(example[name], dtype=np.int64) for name in input_names}


def quantize_encoder(fp32_path: Path, out_path: Path, quantization: Quantization) -> None:
    """Dynamic quantisation: int8 weights, activations quantised on the fly per batch.

    Weights get one scale per output channel (``per_channel``), not one per tensor. On the
    GoEmotions fine-tuned all-MiniLM-L6-v2 (28 labels, tuned thresholds) one scale per
    tensor cost 1.7 points of dev macro-F1 against fp32 (0.4455 vs 0.4624); one per channel
    0.06 (0.4618), at the same speed. Chosen on dev; see docs/encoders.md."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import onnx

    if quantization is not Quantization.int8:
        raise ConfigError(
            OnnxErrors.E170.format(value=quantization, options=[q.value for q in Quantization])
        )
    # quantize_dynamic logs a hint about static-quantisation pre-processing on the root logger.
    with warnings.catch_warnings(), _quiet_root_logger():
        warnings.simplefilter("ignore")
        quantize_dynamic(
            fp32_path,
            out_path,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # Shape inference cannot type the outputs of fused contrib operators.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def compare_cats(
    reference: Sequence[dict[str, float]],
    predicted: Sequence[dict[str, float]],
    *,
    exclusive: bool,
    threshold: float,
) -> tuple[float, float]:
    """Largest ``|Δ score|`` and share of docs with the same decided labels.

    Docs whose reference scores are all 0.0 (spaCy's answer for a doc without tokens) count
    as deciding nothing.
    """
    max_diff = 0.0
    agree = 0
    for ref, pred in zip(reference, predicted, strict=True):
        labels = list(ref)
        ref_scores = np.array([ref[label] for label in labels])
        pred_scores = np.array([pred.get(label, np.nan) for label in labels])
        if labels:
            max_diff = max(max_diff, float(np.nanmax(np.abs(ref_scores - pred_scores))))
            if np.isnan(pred_scores).any():
                max_diff = float("inf")
        agree += int(
            _decide(ref_scores, exclusive, threshold) == _decide(pred_scores, exclusive, threshold)
        )
    return max_diff, agree / max(1, len(reference))


def _decide(scores: np.ndarray, exclusive: bool, threshold: float) -> tuple[int, ...]:
    if len(scores) == 0 or not np.any(scores > 0):
        return ()
    if exclusive:
        return (int(np.argmax(scores)),)
    return tuple(int(i) for i in np.flatnonzero(scores >= threshold))


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _require_torch_stack() -> None:
    try:
        import spacy_transformers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401

        import onnx  # noqa: F401
    except ImportError as error:
        raise ConfigError(OnnxErrors.E164.format(detail=error)) from error


def _uses_listener(config: Any) -> bool:
    """Whether a component config contains a TransformerListener anywhere."""
    if isinstance(config, dict):
        if config.get("@architectures") == LISTENER_ARCHITECTURE:
            return True
        return any(_uses_listener(value) for value in config.values())
    return False


def _upstream_transformer(nlp: Language, upstream: str, model_dir: Path) -> str:
    transformers = [
        name
        for name in nlp.pipe_names
        if nlp.config["components"][name].get("factory") == "transformer"
    ]
    if upstream != "*":
        transformers = [name for name in transformers if name == upstream]
    if len(transformers) != 1:
        raise ConfigError(
            OnnxErrors.E166.format(
                model_dir=model_dir,
                detail=f"listener upstream '{upstream}', transformer components {transformers}",
            )
        )
    return transformers[0]


def _tokenizer_settings(
    hf_tokenizer: Any, pair: _TransformerTextcat, model_dir: Path
) -> TokenizerSettings:
    if not getattr(hf_tokenizer, "is_fast", False):
        raise ConfigError(
            OnnxErrors.E168.format(
                name=pair.transformer_name,
                model_dir=model_dir,
                tokenizer_class=type(hf_tokenizer).__name__,
            )
        )
    if getattr(hf_tokenizer, "padding_side", "right") != "right":
        raise ConfigError(
            OnnxErrors.E175.format(
                name=pair.transformer_name, model_dir=model_dir, side=hf_tokenizer.padding_side
            )
        )
    max_length = int(hf_tokenizer.model_max_length)
    # transformers uses a huge sentinel for "no maximum".
    return TokenizerSettings(
        max_length=max_length if max_length < 1_000_000 else None,
        pad_id=int(hf_tokenizer.pad_token_id or 0),
        pad_type_id=int(getattr(hf_tokenizer, "pad_token_type_id", 0) or 0),
        use_type_ids="token_type_ids" in hf_tokenizer.model_input_names,
    )


def _replace_pair(nlp: Language, pair: _TransformerTextcat) -> OnnxTextCategorizer:
    """Swap transformer + textcat for the ONNX component, keeping name and position."""
    names = nlp.pipe_names
    after_textcat = names[names.index(pair.textcat_name) + 1 :]
    nlp.remove_pipe(pair.transformer_name)
    nlp.remove_pipe(pair.textcat_name)
    config: dict[str, Any] = {
        "window": pair.window,
        "stride": pair.stride,
        "threshold": float(pair.textcat_config.get("threshold", 0.5)),
        "positive_label": pair.textcat_config.get("positive_label"),
    }
    if "scorer" in pair.textcat_config:
        config["scorer"] = pair.textcat_config["scorer"]
    following = [name for name in after_textcat if name in nlp.pipe_names]
    placement: dict[str, Any] = {"before": following[0]} if following else {"last": True}
    component = nlp.add_pipe(FACTORY_NAME, name=pair.textcat_name, config=config, **placement)
    assert isinstance(component, OnnxTextCategorizer)
    return component


def _clean_saved_config(out_dir: Path, removed: Sequence[str]) -> None:
    """Drop removed components from the training section so the config stays consistent."""
    config_path = out_dir / "config.cfg"
    config = spacy.util.load_config(config_path, interpolate=False)
    training = config.get("training", {})
    for key in ("frozen_components", "annotating_components"):
        if key in training:
            training[key] = [name for name in training[key] if name not in removed]
    config.to_disk(config_path)


def _runtime_requirements(requirements: Sequence[str]) -> list[str]:
    kept = [
        requirement
        for requirement in requirements
        if not any(requirement.startswith(name) for name in TORCH_ONLY_REQUIREMENTS)
        and not requirement.startswith("spacy-textcat-kit")
    ]
    return kept + list(RUNTIME_REQUIREMENTS)


def _threshold(textcat: Any) -> float:
    threshold = getattr(textcat, "cfg", {}).get("threshold")
    return 0.5 if threshold is None else float(threshold)


def _as_numpy(array: Any) -> np.ndarray:
    return np.asarray(array.get() if hasattr(array, "get") else array, dtype=np.float32)


def _make_last_hidden_state_class() -> Any:
    import torch

    class LastHiddenState(torch.nn.Module):
        """Positional inputs -> ``last_hidden_state``, the one output the component needs."""

        def __init__(self, model: Any, input_names: Sequence[str]) -> None:
            super().__init__()
            self.model = model
            self.input_names = list(input_names)

        def forward(self, *inputs: Any) -> Any:
            kwargs = dict(zip(self.input_names, inputs, strict=True))
            return self.model(**kwargs, return_dict=True).last_hidden_state

    return LastHiddenState


def _LastHiddenState(model: Any, input_names: Sequence[str]) -> Any:  # noqa: N802
    return _make_last_hidden_state_class()(model, input_names)
