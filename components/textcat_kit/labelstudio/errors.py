"""Compatibility alias: the Label Studio messages live in :mod:`textcat_kit.errors`."""

from __future__ import annotations

from ..errors import Errors as LabelStudioErrors

__all__ = ["LabelStudioErrors"]
