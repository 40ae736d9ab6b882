"""Label-free monitoring from calibrated outputs: drift of predicted labels and confidence,
abstain rate, CBPE expected accuracy / macro-F1. See docs/monitoring.md."""

from .monitor import MonitorSettings, compare
from .profile import (
    PROFILE_FILE,
    ReferenceProfile,
    build_reference_profile,
    read_reference_profile,
    write_reference_profile,
)

__all__ = [
    "PROFILE_FILE",
    "MonitorSettings",
    "ReferenceProfile",
    "build_reference_profile",
    "compare",
    "read_reference_profile",
    "write_reference_profile",
]
