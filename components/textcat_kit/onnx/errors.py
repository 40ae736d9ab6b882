"""Compatibility alias: the ONNX messages live in :mod:`textcat_kit.errors`."""

from __future__ import annotations

from ..errors import Errors as OnnxErrors

__all__ = ["OnnxErrors"]
